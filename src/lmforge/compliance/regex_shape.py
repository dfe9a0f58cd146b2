"""What a regex's shape tells a streaming scanner: how far a match reads, and what every match holds.

    regex_reach(re.compile(r"\\d{3}-\\d{4}\\b"))   # 9: the longest match (8) plus the \\b's look at the next
    regex_anchor(email).regex.pattern           # "@": in every match, at most 64 characters past its start
    regex_closure(email)                        # after the "@", only [A-Za-z0-9.-] until the match ends

Read from ``re``'s parse of the pattern (through ``lmforge.re_syntax``), once per rule; ``lmforge.compliance.
incremental`` uses these to decide how much of a growing text is final. Every function errs on the safe side:
where a shape is not understood it answers None (no anchor, no closure) or the longest reach.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lmforge import re_syntax
from lmforge.re_syntax import UNBOUNDED


def regex_reach(regex: re.Pattern[str]) -> int:
    """Characters past a match start that ``regex`` may read: its longest match plus lookahead."""
    tree = re_syntax.parse(regex)
    width = min(tree.getwidth()[1], UNBOUNDED)
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
    tree = re_syntax.parse(regex)
    items = _flat_sequence(tree)
    flags = regex.flags & (re.IGNORECASE | re.ASCII)
    best: Anchor | None = None
    offset, i = 0, 0
    while i < len(items) and offset < UNBOUNDED:
        op, av = items[i]
        found: tuple[str, int, int] | None = None  # (pattern, reach, items used)
        if op is re_syntax.LITERAL:
            j = i
            while j < len(items) and items[j][0] is re_syntax.LITERAL:
                j += 1
            run = "".join(chr(c) for _, c in items[i:j])
            if len(run) >= 3 or any(not (ch.isalnum() or ch.isspace()) for ch in run):
                found = (re.escape(run), len(run), j - i)
        elif op is re_syntax.IN and (chars := _anchor_chars(op, av)) is not None:
            found = ("[" + "".join(map(re.escape, chars)) + "]", 1, 1)
        if found is not None and (best is None or offset + found[1] < best.offset + best.reach):
            best = Anchor(re.compile(found[0], flags), found[1], offset)
        step = found[2] if found is not None else 1
        offset += min(re_syntax.sequence_width(tree, items[i:i + step])[1], UNBOUNDED)
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
    tree = re_syntax.parse(regex)
    items = _flat_sequence(tree)
    flags = regex.flags & (re.IGNORECASE | re.ASCII)
    offset = 0
    for i, (op, av) in enumerate(items):
        if offset >= UNBOUNDED:
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
        offset += min(re_syntax.sequence_width(tree, [(op, av)])[1], UNBOUNDED)
    return None


def _anchor_chars(op: Any, av: Any) -> list[str] | None:
    """The characters a one-character anchor element may be: a punctuation literal or class of them."""
    if op is re_syntax.LITERAL and not (chr(av).isalnum() or chr(av).isspace()):
        return [chr(av)]
    if op is re_syntax.IN and all(o is re_syntax.LITERAL and not (chr(c).isalnum() or chr(c).isspace())
                                  for o, c in av):
        return [chr(c) for _, c in av]
    return None


def _consumed(items: Any, lookahead_ok: bool = False) -> str | None:
    """The body of a class holding every character ``items`` can consume, or None if that is not simple:
    literals, non-negated classes, groups, branches and repeats of them; lookbehinds (and lookaheads, if
    ``lookahead_ok``) consume nothing."""
    parts: list[str] = []
    for op, av in items:
        if op is re_syntax.LITERAL or op is re_syntax.IN:
            source = _class_source(op, av)
            if source is None or source.startswith("[^"):
                return None
            parts.append(source[1:-1] if source.startswith("[") else source)
            continue
        if op in re_syntax.REPEATS:
            sub = _consumed(av[2].data, lookahead_ok)
        elif op is re_syntax.SUBPATTERN:
            sub = _consumed(av[3].data, lookahead_ok)
        elif op is re_syntax.BRANCH:
            subs = [_consumed(alt.data, lookahead_ok) for alt in av[1]]
            sub = None if any(x is None for x in subs) else "".join(subs)  # type: ignore[arg-type]
        elif op in (re_syntax.ASSERT, re_syntax.ASSERT_NOT) and (av[0] == -1 or lookahead_ok):
            sub = ""
        elif op is re_syntax.AT and lookahead_ok:
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


def regex_run_anchor(regex: re.Pattern[str]) -> Anchor | None:
    """A long run of one character class that every match of ``regex`` holds near its start, or None.

    A candidate is a repeat in the top-level sequence of one class at least ``RUN_ANCHOR_MIN`` times, after
    elements of bounded width: ``[A-Za-z0-9+/]{40,100}`` gives ``[A-Za-z0-9+/]{40}``. Prose seldom has such
    a run, so where it is absent no match can start, as with ``regex_anchor``'s literals.
    """
    tree = re_syntax.parse(regex)
    offset = 0
    for op, av in _flat_sequence(tree):
        if offset >= UNBOUNDED:
            return None
        if op in re_syntax.REPEATS and av[0] >= RUN_ANCHOR_MIN and len(av[2].data) == 1 and \
                (body := _class_source(*av[2].data[0])) is not None:
            return Anchor(re.compile(f"{body}{{{av[0]}}}", regex.flags & (re.IGNORECASE | re.ASCII)), av[0], offset)
        offset += min(re_syntax.sequence_width(tree, [(op, av)])[1], UNBOUNDED)
    return None


def _class_source(op: Any, av: Any) -> str | None:
    """A parsed one-character element (a literal or a class) written back as a pattern, or None."""
    if op is re_syntax.LITERAL:
        return re.escape(chr(av))
    if op is not re_syntax.IN:
        return None
    parts = []
    for o, a in av:
        if o is re_syntax.NEGATE:
            parts.append("^")
        elif o is re_syntax.LITERAL:
            parts.append(re.escape(chr(a)))
        elif o is re_syntax.RANGE:
            parts.append(f"{re.escape(chr(a[0]))}-{re.escape(chr(a[1]))}")
        elif o is re_syntax.CATEGORY and str(a) in _CATEGORIES:
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
    for op, av in _flat_sequence(re_syntax.parse(regex)):
        if op in re_syntax.REPEATS and av[0] >= 1 and len(av[2].data) == 1:
            op, av = av[2].data[0]
        found = _element_chars(op, av, bool(regex.flags & re.IGNORECASE))
        if found is not None:
            score = sum(_rarity(ch) for ch in found[0]) + (5 if found[1] else 0)
            if best is None or score < best[0]:
                best = (score, *found)
    return None if best is None else (best[1], best[2])


def _element_chars(op: Any, av: Any, ignorecase: bool) -> tuple[frozenset[str], bool] | None:
    items = [(op, av)] if op is re_syntax.LITERAL else av if op is re_syntax.IN else None
    if items is None:
        return None
    chars: set[str] = set()
    digit = False
    for o, a in items:
        if o is re_syntax.LITERAL:
            chars.add(chr(a))
        elif o is re_syntax.RANGE and a[1] - a[0] < 16:
            chars.update(chr(c) for c in range(a[0], a[1] + 1))
        elif o is re_syntax.CATEGORY and str(a) == "CATEGORY_DIGIT":
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
        if op is re_syntax.SUBPATTERN and av[1] == av[2] == 0:  # (group, add_flags, del_flags, pattern)
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
            reach = max(reach, min(av[1].getwidth()[1], UNBOUNDED) + _lookahead(av[1]))
        elif name == "AT":  # \b, \B, \Z look at the next character; $ at the one after it too ("x\n" ends it)
            reach = max(reach, 2 if str(av) == "AT_END" else 1)
        for sub in re_syntax.subtrees(av):
            reach = max(reach, _lookahead(sub))
    return reach
