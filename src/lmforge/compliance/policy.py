"""A versioned YAML compliance policy compiled into rules that each return verdicts.

    policy = load_policy(Path("configs/policy.yaml"))
    policy.version, policy.window      # "2026.11.1", 475: the most characters a streaming filter holds back
    [v for rule in policy.rules for v in rule.scan(text)]

Rule kinds (``params`` per kind):

* ``pii``: ``kinds`` (default all of ``lmforge.pii.PII_KINDS``); redacts to ``<EMAIL>`` etc.
* ``term``: ``terms`` (list), ``case_sensitive`` (false); whole words/phrases only.
* ``pattern``: ``regex``, ``flags`` (``IGNORECASE``...). The regex must be bounded (``{1,64}``, not ``+``):
  an unbounded one is rejected, since no hold-back window could then see a streamed match whole.
* ``hazard``: ``hazards`` from ``HAZARDS`` (output-handling risks: script tags, iframes, HTML event
  handlers, ``javascript:`` URLs, markdown images that fetch external URLs).

Every rule knows its ``reach``: how many characters past a match start it can read (longest match plus
lookahead). The policy window is the largest reach, the smallest hold-back that lets a streaming filter see
every match whole; ``regex_anchor`` finds the rare literal a regex's every match holds near its start, which
lets the streaming filter hold back less where that literal is absent (see ``lmforge.compliance.streaming``).
A malformed policy raises ``PolicyError`` naming the file, the rule and what is wrong.
"""

from __future__ import annotations

import re
import re._parser as re_parser  # stdlib regex parser: (min, max) width of a pattern
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lmforge.compliance.verdict import Action, Verdict
from lmforge.fastre import ascii_twin, faster
from lmforge.pii import MAX_MATCH_CHARS, PII_KINDS, find_pii

# lmforge.pii's detectors look at most this many characters past a match (e.g. ``(?![\w-]|[.,-]\d)``);
# a test walks its regexes to keep this honest.
PII_LOOKAHEAD_CHARS = 2
_UNBOUNDED = 1 << 16  # widths at or above this count as unbounded (re reports MAXREPEAT-sized numbers)

# Output-handling hazards: each is a bounded regex (so a streaming filter can hold back enough).
HAZARDS: dict[str, str] = {
    "script_tag": r"(?i)<\s{0,8}/?\s{0,8}script\b",
    "iframe": r"(?i)<\s{0,8}(?:iframe|object|embed)\b",
    "event_handler": r"(?i)<[a-z][a-z0-9-]{0,15}\s[^<>]{0,200}?\bon[a-z]{3,24}\s{0,4}=",
    "javascript_url": r"(?i)\bjavascript\s{0,4}:",
    # ![alt](http://host/?q=<data>) renders as an image fetch that can carry data out; redact through the URL.
    "external_image": r"!\[[^\]\n]{0,100}\]\(\s{0,4}<?(?:https?:)?//[^\s)>]{1,256}",
}


class PolicyError(ValueError):
    """The policy file is missing, not YAML, or not a valid policy."""


@dataclass(frozen=True)
class Rule:
    """One compiled policy rule: a list of (category, regex) or the PII detectors."""

    id: str
    kind: str
    action: Action
    reach: int
    regexes: tuple[tuple[str, re.Pattern[str]], ...] = ()
    pii_kinds: tuple[str, ...] = ()
    replacement: str = "[redacted]"
    # ``regexes`` compiled to search faster (lmforge.fastre), the same matches: what scans run, and on ASCII
    # text their ASCII twins (``ascii_regexes``).
    search_regexes: tuple[tuple[str, re.Pattern[str]], ...] = field(init=False, repr=False, compare=False)
    ascii_regexes: tuple[tuple[str, re.Pattern[str]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "search_regexes", tuple((c, faster(r)) for c, r in self.regexes))
        object.__setattr__(self, "ascii_regexes", tuple((c, ascii_twin(r)) for c, r in self.search_regexes))

    def scan(self, text: str) -> list[Verdict]:
        if self.kind == "pii":
            return [self.verdict(f"pii.{m.kind}", (m.start, m.end)) for m in find_pii(text, self.pii_kinds)]
        found = []
        for category, regex in self.ascii_regexes if text.isascii() else self.search_regexes:
            for m in regex.finditer(text):
                if m.end() > m.start():  # an empty match redacts nothing
                    found.append(self.verdict(category, m.span()))
        return found

    def verdict(self, category: str, span: tuple[int, int]) -> Verdict:
        """This rule's verdict on ``span`` (one constructor for whole-text and streamed scans)."""
        replacement = None
        if self.action == "redact":
            replacement = f"<{category.removeprefix('pii.')}>" if self.kind == "pii" else self.replacement
        return Verdict(self.action == "flag", category, self.id, self.action, span, replacement)


@dataclass(frozen=True)
class Policy:
    version: str
    rules: tuple[Rule, ...]
    source: str = "<memory>"
    window: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", max((r.reach for r in self.rules), default=0))


class _RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    kind: str
    action: Action
    params: dict[str, Any] = Field(default_factory=dict)


class _PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str | int | float
    rules: list[_RuleSpec] = Field(min_length=1)


def load_policy(path: Path) -> Policy:
    """Read and compile a policy YAML; raise ``PolicyError`` with the reason on anything malformed."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise PolicyError(f"policy {path}: cannot read it ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise PolicyError(f"policy {path}: not valid YAML ({err})") from err
    return parse_policy(raw, source=str(path))


def parse_policy(raw: Any, source: str = "<memory>") -> Policy:
    if not isinstance(raw, dict):
        raise PolicyError(f"policy {source}: expected a mapping with 'version' and 'rules'")
    try:
        spec = _PolicySpec.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise PolicyError(f"policy {source}: {problems}") from err
    ids = [r.id for r in spec.rules]
    if len(ids) != len(set(ids)):
        raise PolicyError(f"policy {source}: duplicate rule ids in {ids}")
    rules = []
    for r in spec.rules:
        try:
            rules.append(compile_rule(r.id, r.kind, r.action, r.params))
        except (ValueError, TypeError, KeyError, re.error) as err:
            raise PolicyError(f"policy {source}: rule {r.id!r}: {err}") from err
    return Policy(str(spec.version), tuple(rules), source)


def compile_rule(rule_id: str, kind: str, action: Action, params: dict[str, Any]) -> Rule:
    """Build one rule from its YAML fields (raises ValueError with a one-line reason)."""
    replacement = str(params.get("replacement", "[redacted]"))
    if kind == "pii":
        _allow(params, {"kinds"})
        kinds = tuple(params.get("kinds") or PII_KINDS)
        if unknown := set(kinds) - set(PII_KINDS):
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {list(PII_KINDS)}")
        reach = max(MAX_MATCH_CHARS[k] for k in kinds) + PII_LOOKAHEAD_CHARS
        return Rule(rule_id, kind, action, reach, pii_kinds=kinds)
    if kind == "term":
        _allow(params, {"terms", "case_sensitive", "replacement"})
        terms = [str(t) for t in params.get("terms") or []]
        if not terms or any(not t.strip() for t in terms):
            raise ValueError("'terms' must be a non-empty list of non-empty strings")
        flags = 0 if params.get("case_sensitive") else re.IGNORECASE
        # Longest first so "bomb recipe" wins over "bomb"; \w-boundaries keep "classic" from matching "ass".
        body = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
        regex = re.compile(rf"(?<!\w)(?:{body})(?!\w)", flags)
        return Rule(rule_id, kind, action, regex_reach(regex), (("term", regex),), replacement=replacement)
    if kind == "pattern":
        _allow(params, {"regex", "flags", "replacement"})
        if not isinstance(params.get("regex"), str):
            raise ValueError("'regex' (a string) is required")
        flags = 0
        for name in params.get("flags") or []:
            flags |= re.RegexFlag[str(name).upper()]
        regex = re.compile(params["regex"], flags)
        if regex_reach(regex) >= _UNBOUNDED:
            # Without a bound no hold-back window is safe: a streamed match could always be longer.
            raise ValueError(f"regex {regex.pattern!r} has no length bound (+, *, {{n,}}): write bounded "
                             "repeats such as {1,64} so streaming can hold back enough")
        return Rule(rule_id, kind, action, regex_reach(regex), (("pattern", regex),), replacement=replacement)
    if kind == "hazard":
        _allow(params, {"hazards", "replacement"})
        names = list(params.get("hazards") or HAZARDS)
        if unknown := set(names) - set(HAZARDS):
            raise ValueError(f"unknown hazards {sorted(unknown)}; known: {list(HAZARDS)}")
        regexes = tuple((f"hazard.{n}", re.compile(HAZARDS[n])) for n in names)
        reach = max(regex_reach(r) for _, r in regexes)
        return Rule(rule_id, kind, action, reach, regexes, replacement=replacement)
    raise ValueError(f"unknown kind {kind!r}; known: pii, term, pattern, hazard")


def _allow(params: dict[str, Any], known: set[str]) -> None:
    if extra := set(params) - known:
        raise ValueError(f"unknown params {sorted(extra)}; allowed: {sorted(known)}")


def regex_reach(regex: re.Pattern[str]) -> int:
    """Characters past a match start that ``regex`` may read: its longest match plus lookahead."""
    tree = re_parser.parse(regex.pattern, regex.flags)
    width = min(tree.getwidth()[1], _UNBOUNDED)
    return width + _lookahead(tree)


@dataclass(frozen=True)
class Anchor:
    """A rare literal (or class of rare literals) in every match, starting at most ``offset`` past its start."""

    regex: re.Pattern[str]
    reach: int  # characters an anchor match reads
    offset: int


def regex_anchor(regex: re.Pattern[str]) -> Anchor | None:
    """The anchor of ``regex`` that bounds a match's start closest, or None.

    A candidate is an element of the pattern's top-level sequence (groups without flags count as inline), so
    every match contains it, after elements of bounded width: a run of literals with a character that is not
    a letter, digit or space, or of three or more characters (``@``, ``![``, ``sk-``, ``script``), or a class
    of such characters (``[:=]``). A streaming scan that sees no anchor where a match could start knows the
    match cannot start there, with no need to wait for the regex's whole reach.
    """
    tree = re_parser.parse(regex.pattern, regex.flags)
    items = _flat_sequence(tree)
    flags = regex.flags & (re.IGNORECASE | re.ASCII)
    best: Anchor | None = None
    offset, i = 0, 0
    while i < len(items) and offset < _UNBOUNDED:
        op, av = items[i]
        found: tuple[str, int, int] | None = None  # (pattern, reach, items used)
        if op is re_parser.LITERAL:
            j = i
            while j < len(items) and items[j][0] is re_parser.LITERAL:
                j += 1
            run = "".join(chr(c) for _, c in items[i:j])
            if len(run) >= 3 or any(not (ch.isalnum() or ch.isspace()) for ch in run):
                found = (re.escape(run), len(run), j - i)
        elif op is re_parser.IN and (chars := _anchor_chars(op, av)) is not None:
            found = ("[" + "".join(map(re.escape, chars)) + "]", 1, 1)
        if found is not None and (best is None or offset + found[1] < best.offset + best.reach):
            best = Anchor(re.compile(found[0], flags), found[1], offset)
        step = found[2] if found is not None else 1
        offset += min(re_parser.SubPattern(tree.state, items[i:i + step]).getwidth()[1], _UNBOUNDED)
        i += step
    return best


@dataclass(frozen=True)
class Closure:
    """How an anchored regex's matches end: at the first ``stop`` character after the anchor.

    Every match's ``anchor`` starts at most ``offset`` past the match's start and is the first occurrence of
    the anchor there (nothing before it in the match can start one), and the match holds no ``stop``
    character after it; lookaheads read at most ``lookahead`` characters further. So an attempt at ``t``
    whose anchor is followed, in the known text, by a ``stop`` character and ``lookahead`` more reads only
    known text: an email is settled at the space after its domain, not 400 characters on."""

    anchor: re.Pattern[str]  # one character
    offset: int
    stop: re.Pattern[str]  # one character the match cannot hold past its anchor
    lookahead: int

    def settled(self, text: str, start: int) -> int:
        """The last attempt start at or after ``start`` up to which every attempt reads only ``text``."""
        n, pos = len(text), start
        while (a := self.anchor.search(text, pos)) is not None:
            end = self.stop.search(text, a.end())
            if end is None or end.start() + self.lookahead >= n:
                return a.start() - self.offset - 1  # attempts reaching this anchor may read on
            pos = a.start() + 1
        return n - self.offset - 1  # an anchor for a later attempt would be known by then


def regex_closure(regex: re.Pattern[str]) -> Closure | None:
    """``regex``'s ``Closure``, or None when its shape does not give one.

    The anchor is an element of the top-level sequence as in ``regex_anchor`` (a literal run or a class of
    punctuation). Before it: literals, classes, groups and bounded repeats of them (and lookbehinds), none of
    which can match the anchor's first character. After it: the same kinds of elements, branches, and
    lookaheads; ``stop`` is any character none of them consumes."""
    tree = re_parser.parse(regex.pattern, regex.flags)
    items = _flat_sequence(tree)
    flags = regex.flags & (re.IGNORECASE | re.ASCII)
    offset = 0
    for i, (op, av) in enumerate(items):
        if offset >= _UNBOUNDED:
            return None
        first = _anchor_chars(op, av)
        if first is not None:
            before = _consumed(items[:i])
            after = _consumed(items[i + 1:], lookahead_ok=True)
            if before is None or after is None:
                return None
            if before and any(re.match(f"[{before}]", ch, flags) for ch in first):
                return None
            stop = re.compile(f"[^{after}]" if after else "(?s:.)", flags)
            return Closure(re.compile(_class_source(op, av) or "", flags), offset, stop, _lookahead(items[i + 1:]))
        offset += min(re_parser.SubPattern(tree.state, [(op, av)]).getwidth()[1], _UNBOUNDED)
    return None


def _anchor_chars(op: Any, av: Any) -> list[str] | None:
    """The characters a one-character anchor element may be: a punctuation literal or class of them."""
    if op is re_parser.LITERAL and not (chr(av).isalnum() or chr(av).isspace()):
        return [chr(av)]
    if op is re_parser.IN and all(o is re_parser.LITERAL and not (chr(c).isalnum() or chr(c).isspace())
                                  for o, c in av):
        return [chr(c) for _, c in av]
    return None


def _consumed(items: Any, lookahead_ok: bool = False) -> str | None:
    """The body of a class holding every character ``items`` can consume, or None if that is not simple:
    literals, non-negated classes, groups, branches and repeats of them; lookbehinds (and lookaheads, if
    ``lookahead_ok``) consume nothing."""
    parts: list[str] = []
    for op, av in items:
        if op is re_parser.LITERAL or op is re_parser.IN:
            source = _class_source(op, av)
            if source is None or source.startswith("[^"):
                return None
            parts.append(source[1:-1] if source.startswith("[") else source)
            continue
        if op in _REPEATS:
            sub = _consumed(av[2].data, lookahead_ok)
        elif op is re_parser.SUBPATTERN:
            sub = _consumed(av[3].data, lookahead_ok)
        elif op is re_parser.BRANCH:
            subs = [_consumed(alt.data, lookahead_ok) for alt in av[1]]
            sub = None if any(x is None for x in subs) else "".join(subs)  # type: ignore[arg-type]
        elif op in (re_parser.ASSERT, re_parser.ASSERT_NOT) and (av[0] == -1 or lookahead_ok):
            sub = ""
        elif op is re_parser.AT and lookahead_ok:
            sub = ""  # \b and the like read one character on: _lookahead counts it
        else:
            return None
        if sub is None:
            return None
        parts.append(sub)
    return "".join(parts)


# A run of this many characters of one class (a base64 blob's [A-Za-z0-9+/]{40,100}) is rare in prose.
RUN_ANCHOR_MIN = 24
_CATEGORIES = {"CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s",
               "CATEGORY_NOT_SPACE": r"\S", "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W"}
_REPEATS = (re_parser.MAX_REPEAT, re_parser.MIN_REPEAT, re_parser.POSSESSIVE_REPEAT)


def regex_run_anchor(regex: re.Pattern[str]) -> Anchor | None:
    """A long run of one character class that every match of ``regex`` holds near its start, or None.

    A candidate is a repeat in the top-level sequence of one class at least ``RUN_ANCHOR_MIN`` times, after
    elements of bounded width: ``[A-Za-z0-9+/]{40,100}`` gives ``[A-Za-z0-9+/]{40}``. Prose seldom has such
    a run, so where it is absent no match can start, as with ``regex_anchor``'s literals.
    """
    tree = re_parser.parse(regex.pattern, regex.flags)
    offset = 0
    for op, av in _flat_sequence(tree):
        if offset >= _UNBOUNDED:
            return None
        if op in _REPEATS and av[0] >= RUN_ANCHOR_MIN and len(av[2].data) == 1 and \
                (body := _class_source(*av[2].data[0])) is not None:
            return Anchor(re.compile(f"{body}{{{av[0]}}}", regex.flags & (re.IGNORECASE | re.ASCII)), av[0], offset)
        offset += min(re_parser.SubPattern(tree.state, [(op, av)]).getwidth()[1], _UNBOUNDED)
    return None


def _class_source(op: Any, av: Any) -> str | None:
    """A parsed one-character element (a literal or a class) written back as a pattern, or None."""
    if op is re_parser.LITERAL:
        return re.escape(chr(av))
    if op is not re_parser.IN:
        return None
    parts = []
    for o, a in av:
        if o is re_parser.NEGATE:
            parts.append("^")
        elif o is re_parser.LITERAL:
            parts.append(re.escape(chr(a)))
        elif o is re_parser.RANGE:
            parts.append(f"{re.escape(chr(a[0]))}-{re.escape(chr(a[1]))}")
        elif o is re_parser.CATEGORY and str(a) in _CATEGORIES:
            parts.append(_CATEGORIES[str(a)])
        else:
            return None
    return "[" + "".join(parts) + "]"


def regex_required_chars(regex: re.Pattern[str]) -> tuple[frozenset[str], bool] | None:
    """Characters one of which every match of ``regex`` contains, and whether any decimal digit (``\\d``) is
    one of them; None if no element of its top-level sequence gives a small set.

    Of the sequence's literals and classes (or repeats of one, at least once), the rarest in prose counts:
    an ``@`` before a letter, a digit before a space. A scan that has seen none of them at or after a
    position knows ``regex`` matches nowhere there, without running it. Case-insensitive letters are left
    out (``(?i)k`` also matches the Kelvin sign), and so are negated and wide classes.
    """
    best: tuple[int, frozenset[str], bool] | None = None
    for op, av in _flat_sequence(re_parser.parse(regex.pattern, regex.flags)):
        if op in _REPEATS and av[0] >= 1 and len(av[2].data) == 1:
            op, av = av[2].data[0]
        found = _element_chars(op, av, bool(regex.flags & re.IGNORECASE))
        if found is not None:
            score = sum(_rarity(ch) for ch in found[0]) + (5 if found[1] else 0)
            if best is None or score < best[0]:
                best = (score, *found)
    return None if best is None else (best[1], best[2])


def _element_chars(op: Any, av: Any, ignorecase: bool) -> tuple[frozenset[str], bool] | None:
    items = [(op, av)] if op is re_parser.LITERAL else av if op is re_parser.IN else None
    if items is None:
        return None
    chars: set[str] = set()
    digit = False
    for o, a in items:
        if o is re_parser.LITERAL:
            chars.add(chr(a))
        elif o is re_parser.RANGE and a[1] - a[0] < 16:
            chars.update(chr(c) for c in range(a[0], a[1] + 1))
        elif o is re_parser.CATEGORY and str(a) == "CATEGORY_DIGIT":
            digit = True
        else:
            return None  # a negated or wide class, another category
    if len(chars) > 16 or ignorecase and any(not ch.isascii() or ch.isalpha() for ch in chars):
        return None
    return frozenset(chars), digit


def _rarity(ch: str) -> int:
    """How common a character is in prose, roughly: the cost of choosing it as a required character."""
    return 20 if ch.isspace() else 10 if ch.isalpha() else 8 if ch in ".," else 5 if ch.isdigit() else 1


def _flat_sequence(tree: Any) -> list[tuple[Any, Any]]:
    """The top-level elements of a parsed pattern, the contents of plain groups inline (each matches once)."""
    items = []
    for op, av in tree.data:
        if op is re_parser.SUBPATTERN and av[1] == av[2] == 0:  # (group, add_flags, del_flags, pattern)
            items += _flat_sequence(av[3])
        else:
            items.append((op, av))
    return items


def _lookahead(tree: Any) -> int:
    """An upper bound on how far lookaheads and \\b / $ checks read past where they stand."""
    reach = 0
    for op, av in tree.data if hasattr(tree, "data") else tree:
        name = str(op)
        if name in ("ASSERT", "ASSERT_NOT") and av[0] == 1:  # direction 1: lookahead
            reach = max(reach, min(av[1].getwidth()[1], _UNBOUNDED) + _lookahead(av[1]))
        elif name == "AT":  # \b, \B, \Z look at the next character; $ at the one after it too ("x\n" ends it)
            reach = max(reach, 2 if str(av) == "AT_END" else 1)
        for sub in _children(av):
            reach = max(reach, _lookahead(sub))
    return reach


def _children(av: Any) -> Iterable[Any]:
    items = av if isinstance(av, tuple | list) else (av,)
    for item in items:
        if isinstance(item, re_parser.SubPattern):
            yield item
        elif isinstance(item, list | tuple):
            yield from _children(item)
