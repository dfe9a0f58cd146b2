"""Compile a regex that opens with a lookbehind so that ``re`` can skip ahead to where a match may start.

    fast_compile(r"(?<![\\w-])\\d{3}([- ])\\d{2}\\1\\d{4}")
    # re.compile(r"\\d(?<!(?:[\\w-])\\d)\\d{2}([- ])\\d{2}\\1\\d{4}"): the same matches, found faster

CPython's ``re`` searches fast only when a pattern opens with a literal or a character class: it then scans
for that character in C and tries the pattern only there. A pattern that opens with a lookbehind (the PII
detectors' ``(?<![\\w-])``, which keep "x555-0143" from matching) gets no such scan, so the whole pattern
is tried at every position. ``fast_compile`` moves the lookbehind after the pattern's leading characters:

    (?<!B)H REST  ->  H(?<!(?:B)H) REST

``H`` is what every match opens with: single-character atoms (``\\d``, ``[A-Z]``, ``s``, ``\\+``), the first
copy of a repeated one (``\\d{3}`` gives ``\\d`` and leaves ``\\d{2}``), or the first atom of a repeated
group of them (``(?:\\d[ -]?){11,18}`` gives ``\\d`` and leaves ``[ -]?(?:\\d[ -]?){10,17}``). After ``H``
matched at ``t``, the new lookbehind reads ``text[t - width(B) : t + len(H)]``; its last ``len(H)``
characters are those ``H`` matched, so it holds exactly when ``(?<!B)`` held at ``t``. Everything else is
unchanged and tried in the same order, so every search returns the same match, groups included. Patterns of
other shapes, and those whose opening characters are common in prose (an email's ``[A-Za-z0-9]``), where
the scan would not pay, are compiled as they are.

``ascii_twin`` compiles a regex with ``re.ASCII`` where that matches the same on ASCII text (most replies are
ASCII): ``re`` then tests ``\\d``, ``\\w`` and case by table instead of by Unicode database (figures:
``benchmarks/README.md``).
"""

from __future__ import annotations

import re

from lmforge import re_syntax

_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")  # global inline flags, which must stay first
# A quantifier, then its mode: "?" lazy, "+" possessive.
_QUANTIFIER = re.compile(r"(?:\{(\d*)(,)?(\d*)\}|([?*+]))([?+]?)")
_CATEGORIES = "dDwWsS"


def fast_compile(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern, flags)``, the lookbehind moved after the leading characters where that is exact."""
    regex = re.compile(pattern, flags)  # errors as re reports them, on the pattern as written
    if regex.flags & re.VERBOSE:
        return regex  # whitespace and comments: not parsed here
    rewritten = hoist_lookbehind(pattern, flags=flags)
    if rewritten == pattern:
        return regex
    try:
        fast = re.compile(rewritten, flags)
    except re.error:
        return regex
    # The hoist adds no group and no width: a pattern it misread would differ here, and keeps its own form.
    same = (fast.groups, fast.groupindex, _width(fast)) == (regex.groups, regex.groupindex, _width(regex))
    return fast if same else regex


def faster(regex: re.Pattern[str]) -> re.Pattern[str]:
    """The same search as ``regex``, compiled by ``fast_compile`` (``regex`` itself where nothing is hoisted)."""
    fast = fast_compile(regex.pattern, regex.flags)
    return regex if fast.pattern == regex.pattern else fast


def ascii_twin(regex: re.Pattern[str]) -> re.Pattern[str]:
    """``regex`` compiled with ``re.ASCII``, which ``re`` runs faster (``\\d``, ``\\w`` and case folding by table):
    on ASCII text it finds the same matches. ``regex`` itself where that is not certain.

    On ASCII characters the two agree on ``\\d``, ``\\w``, ``\\b`` and on letters' cases, but not on ``\\s``
    (Unicode counts ``\\x1c``-``\\x1f`` as space) nor, under IGNORECASE, on a non-ASCII literal or range (the
    Kelvin sign matches "k"): a pattern with either keeps its one form. Use the twin only on text where
    ``str.isascii()``; a prefix that is ASCII will do, for a search that reads only that prefix."""
    tree = re_syntax.parse(regex)
    if regex.flags & re.ASCII or not _ascii_alike(tree, bool(regex.flags & re.IGNORECASE)):
        return regex
    try:
        return re.compile(regex.pattern, (regex.flags & ~re.UNICODE) | re.ASCII)
    except (re.error, ValueError):  # an inline (?u)
        return regex


def _ascii_alike(tree: re_syntax.Tree, ignorecase: bool) -> bool:
    """True if nothing in ``tree`` matches an ASCII character differently under ``re.ASCII``."""
    for op, av in tree.data:
        if op in (re_syntax.LITERAL, re_syntax.NOT_LITERAL):
            if ignorecase and av > 127:
                return False
        elif op is re_syntax.IN:
            for item, value in av:
                if item is re_syntax.CATEGORY and value in _SPACES:
                    return False
                if ignorecase and (item is re_syntax.LITERAL and value > 127
                                   or item is re_syntax.RANGE and value[1] > 127):
                    return False
        elif op is re_syntax.SUBPATTERN:
            _, add, remove, sub = av
            if not _ascii_alike(sub, (ignorecase or bool(add & re.IGNORECASE)) and not remove & re.IGNORECASE):
                return False
        else:
            subs = av[-1] if op in (re_syntax.BRANCH, re_syntax.MAX_REPEAT, re_syntax.MIN_REPEAT,
                                    re_syntax.POSSESSIVE_REPEAT, re_syntax.ASSERT, re_syntax.ASSERT_NOT) \
                else av[1:] if op is re_syntax.GROUPREF_EXISTS else [av] if op is re_syntax.ATOMIC_GROUP else []
            for sub in subs if isinstance(subs, list | tuple) else [subs]:
                if sub is not None and not _ascii_alike(sub, ignorecase):
                    return False
    return True


_SPACES = (re_syntax.CATEGORY_SPACE, re_syntax.CATEGORY_NOT_SPACE)


def _width(regex: re.Pattern[str]) -> tuple[int, int]:
    return re_syntax.width(regex)


def hoist_lookbehind(pattern: str, only_rare: bool = True, flags: int = 0) -> str:
    """``pattern`` with a leading lookbehind moved past what every match opens with (the module's docstring),
    or ``pattern`` itself where it is not of that shape (or, ``only_rare``, that opening is common in prose).
    ``flags``: those it is compiled with (IGNORECASE widens what a branch's first literal matches)."""
    lead = m.group() if (m := _FLAGS.match(pattern)) else ""
    body = pattern[len(lead):]
    if "x" in lead or not body.startswith(("(?<!", "(?<=")) or (close := _group_end(body, 0)) is None:
        return pattern
    ignorecase = bool(flags & re.IGNORECASE) or "i" in lead
    if (branched := _hoist_into_branches(lead, body[:close + 1], body[close + 1:], ignorecase, only_rare)):
        return branched
    head, rest = _split_head(body[close + 1:])
    if not head or only_rare and not _rare(lead + head):
        return pattern
    return f"{lead}{head}{body[:4]}(?:{body[4:close]}){head}){rest}"


# Where a match may start is where its head matches; the scan for it pays only if that is seldom in text.
_SAMPLE = ("The committee met on Tuesday to review the harbor budget, and the clerk noted each ship in a book. "
           "Write to the office or call; Ships came in with the tide and left at night (as they do).")


def _rare(head: str, per: int = 20) -> bool:
    """True if ``head`` starts a match at fewer than 1 in ``per`` positions of ordinary prose."""
    probe = re.compile(head)
    return sum(probe.match(_SAMPLE, i) is not None for i in range(len(_SAMPLE))) * per < len(_SAMPLE)


# What an ASCII literal matches under IGNORECASE besides its two cases (the re docs list these four).
_FOLDS = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}


def _hoist_into_branches(lead: str, behind: str, rest: str, ignorecase: bool, only_rare: bool) -> str | None:
    """``(?<!B)(?:a1|b2|...)REST -> [ab...](?<!(?:B)(?s:.))(?:(?<=a)1|(?<=b)2|...)REST`` where each branch opens
    with one character atom at least once (a term rule's literals; a phone's ``\\+``, ``\\(`` and ``\\d{3}``,
    which gives ``(?<=\\d)\\d{2}``), else None.

    The class holds every character a branch's first atom matches (a literal under IGNORECASE: its cases and
    folds, with the flag off inside the class so that ``re`` scans for it in C; a class or ``\\d``-like atom
    as it is, not under IGNORECASE, whose folds of ranges are not listed here). Past it, the lookbehind reads
    the same characters as before plus the one the class matched, and each branch checks that character
    against its atom as written, in the same order: the same matches. It pays where those characters are not
    most of the text: a third of prose positions at most."""
    end = _group_end(rest, 0) if rest.startswith("(?:") else None
    if end is None or _quantifier_at(rest, end + 1)[3] != end + 1:
        return None  # not a group, or a repeated one
    alternatives = _alternatives(rest[3:end])
    if alternatives is None or len(alternatives) < 2:
        return None
    heads: set[str] = set()
    sets: list[str] = []  # class atoms' insides and \d-like atoms, as they go into the class
    branches = []
    for alt in alternatives:
        atom_end = _atom_end(alt, 0) if alt else None
        if atom_end is None:
            return None
        low, high, mode, end_q = _quantifier_at(alt, atom_end)
        if low < 1 or mode == "+":
            return None  # optional, or possessive
        atom = alt[:atom_end]
        again = "" if high == 1 else atom + _quantifier(low - 1, high, mode)
        if atom[0] == "[" or atom[0] == "\\" and atom[1] in _CATEGORIES:
            inside = atom[1:-1] if atom[0] == "[" else atom
            if ignorecase or not _joinable(inside):
                return None
            sets.append(inside)
        else:
            literal = atom[-1]
            if ignorecase and not literal.isascii():
                return None  # its folds are not listed here
            heads |= {literal, literal.lower(), literal.upper(), *_FOLDS.get(literal.lower(), "")} \
                if ignorecase else {literal}
        branches.append(f"(?<={atom}){again}{alt[end_q:]}")
    chars = "[" + "".join(re.escape(ch) for ch in sorted(heads)) + "".join(sets) + "]"
    head = f"(?-i:{chars})" if ignorecase else chars
    if only_rare and not _rare(lead + head, per=3):
        return None
    return f"{lead}{head}{behind[:4]}(?:{behind[4:-1]})(?s:.))(?:{'|'.join(branches)}){rest[end + 1:]}"


_SET_OPERATORS = re.compile(r"--|&&|~~|\|\|")  # what re may read as set operations one day (FutureWarning)


def _joinable(inside: str) -> bool:
    """True if a class's inside (or a ``\\d``-like atom) means the same beside others in one class."""
    if inside[:1] in ("^", "]", "-") or "[" in inside or _SET_OPERATORS.search(inside):
        return False  # negated, a leading "]" or "-" (literal only there), a nested or operator look
    if inside.endswith("-"):  # a literal "-" last; beside the next item it would make a range
        return inside.endswith("\\-") and not inside.endswith("\\\\-")
    return True


def _alternatives(s: str) -> list[str] | None:
    """``s`` split at its top-level ``|`` (None if a group or class in it is not closed)."""
    out, start, i = [], 0, 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "[(":
            end = _atom_end(s, i) if ch == "[" else _group_end(s, i)
            if end is None:
                return None
            i = end + (ch == "(")
            continue
        if ch == "|":
            out.append(s[start:i])
            start = i + 1
        i += 1
    return out + [s[start:]]


def _split_head(s: str) -> tuple[str, str]:
    """(the atoms every match of ``s`` opens with, what ``s`` becomes without them); ("", s) if none."""
    head, i = "", 0
    while i < len(s):
        if s.startswith("(?:", i):  # a group of plain atoms, repeated at least once: hoist from its first copy
            close = _group_end(s, i)
            if head or close is None or any(ch in s[i + 3:close] for ch in "()|"):
                break
            low, high, mode, end = _quantifier_at(s, close + 1)
            inner = s[i + 3:close]
            inner_head, inner_rest = _split_head(inner)
            if low < 1 or mode == "+" or not inner_head:
                break
            again = "" if high == 1 else f"(?:{inner}){_quantifier(low - 1, high, mode)}"
            return inner_head, inner_rest + again + s[end:]
        atom_end = _atom_end(s, i)
        if atom_end is None:
            break
        low, high, mode, end = _quantifier_at(s, atom_end)
        if end == atom_end:  # exactly once: hoist it and go on
            head, i = head + s[i:atom_end], atom_end
            continue
        if low < 1 or mode == "+":
            break
        again = "" if high == 1 else s[i:atom_end] + _quantifier(low - 1, high, mode)
        return head + s[i:atom_end], again + s[end:]
    return head, s[i:]


def _quantifier_at(s: str, i: int) -> tuple[int, int | None, str, int]:
    """(min, max (None: unbounded), mode, end) of the quantifier at ``s[i]``; (1, 1, "", i) if there is none."""
    q = _QUANTIFIER.match(s, i)
    if q is None:
        return 1, 1, "", i
    if q.group(4):
        low, high = {"?": (0, 1), "*": (0, None), "+": (1, None)}[q.group(4)]
    elif not q.group(1) and not q.group(2):
        return 0, 0, "", q.end()  # "{}" is a literal brace pair: stop there
    else:
        low = int(q.group(1) or 0)
        high = low if q.group(2) is None else (int(q.group(3)) if q.group(3) else None)
    return low, high, q.group(5), q.end()


def _quantifier(low: int, high: int | None, mode: str) -> str:
    """The quantifier for one copy fewer than ``{low,high}``."""
    high = None if high is None else high - 1
    core = f"{{{low}}}" if low == high else f"{{{low},{'' if high is None else high}}}"
    return core + mode


def _atom_end(s: str, i: int) -> int | None:
    """End of the one-character atom at ``s[i]`` (a literal, an escaped literal, \\d-like, a class), else None."""
    ch = s[i]
    if ch == "\\":
        if i + 1 < len(s) and (s[i + 1] in _CATEGORIES or not s[i + 1].isalnum()):
            return i + 2
        return None  # \\b, \\A, a back-reference, \\x41...: not handled
    if ch == "[":
        j = i + 1
        if j < len(s) and s[j] == "^":
            j += 1
        if j < len(s) and s[j] == "]":
            j += 1
        while j < len(s) and s[j] != "]":
            j += 2 if s[j] == "\\" else 1
        return j + 1 if j < len(s) else None
    if ch in "()|?*+{}^$.":
        return None
    return i + 1


def _group_end(s: str, i: int) -> int | None:
    """Index of the ``)`` that closes the group opening at ``s[i]``, or None."""
    depth, j = 0, i
    while j < len(s):
        ch = s[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "[":
            if (end := _atom_end(s, j)) is None:
                return None
            j = end
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return None
