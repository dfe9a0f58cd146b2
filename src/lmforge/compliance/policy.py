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
every match whole (``regex_shape.regex_reach``; ``regex_shape`` also finds what lets the streaming filter hold
back less, see ``lmforge.compliance.incremental``).
A malformed policy raises ``PolicyError`` naming the file, the rule and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lmforge.compliance.regex_shape import regex_reach
from lmforge.compliance.verdict import Action, Verdict
from lmforge.fastre import ascii_twin, faster
from lmforge.pii import MAX_MATCH_CHARS, PII_KINDS, find_pii
from lmforge.re_syntax import UNBOUNDED

# lmforge.pii's detectors look at most this many characters past a match (e.g. ``(?![\w-]|[.,-]\d)``);
# a test walks its regexes to keep this honest.
PII_LOOKAHEAD_CHARS = 2

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
        if regex_reach(regex) >= UNBOUNDED:
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
