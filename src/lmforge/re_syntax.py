"""The one door to CPython's private regex parser (``re._parser``, ``re._constants``).

    tree = parse(regex)                 # the pattern as re parses it: a sequence of (op, argument) pairs
    width(regex)                        # (min, max) characters a match may consume; max >= UNBOUNDED: no bound
    for op, av in tree.data: ...        # op is one of the opcodes below (LITERAL, IN, MAX_REPEAT, ...)

The compliance scanner and ``lmforge.fastre`` reason about a pattern's shape: how long its matches can be, what
every match holds, which characters it can consume. ``re`` exposes that only through its private parser,
which may change between Python versions; everything lmforge uses of it is named here, and
``tests/test_re_syntax.py`` pins the shapes lmforge relies on, so an upgrade that changes them fails there
first. The argument's shape per opcode (``av``):

* ``LITERAL`` / ``NOT_LITERAL``: a code point (``int``).
* ``IN``: a list of ``(op, av)``: ``NEGATE``, ``LITERAL`` code point, ``RANGE`` ``(lo, hi)``, ``CATEGORY``.
* ``MAX_REPEAT`` / ``MIN_REPEAT`` / ``POSSESSIVE_REPEAT``: ``(min, max, body)``.
* ``SUBPATTERN``: ``(group, add_flags, del_flags, body)``; ``BRANCH``: ``(None, [alternatives])``.
* ``ASSERT`` / ``ASSERT_NOT``: ``(direction, body)``, direction 1 ahead and -1 behind.
* ``AT``: where (``AT_BOUNDARY``, ``AT_END``, ...). ``ATOMIC_GROUP``: body. ``GROUPREF_EXISTS``: ``(group, yes, no)``.
"""

from __future__ import annotations

import re
import re._constants as _constants
import re._parser as _parser
from typing import Any

Tree = _parser.SubPattern  # a parsed (sub)pattern: ``.data`` is its list of (op, av)
UNBOUNDED = 1 << 16  # widths at or above this count as unbounded (re reports MAXREPEAT-sized numbers)

LITERAL = _constants.LITERAL
NOT_LITERAL = _constants.NOT_LITERAL
IN = _constants.IN
NEGATE = _constants.NEGATE
RANGE = _constants.RANGE
CATEGORY = _constants.CATEGORY
CATEGORY_SPACE = _constants.CATEGORY_SPACE
CATEGORY_NOT_SPACE = _constants.CATEGORY_NOT_SPACE
MAX_REPEAT = _constants.MAX_REPEAT
MIN_REPEAT = _constants.MIN_REPEAT
POSSESSIVE_REPEAT = _constants.POSSESSIVE_REPEAT
REPEATS = (MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT)
SUBPATTERN = _constants.SUBPATTERN
BRANCH = _constants.BRANCH
ASSERT = _constants.ASSERT
ASSERT_NOT = _constants.ASSERT_NOT
AT = _constants.AT
ATOMIC_GROUP = _constants.ATOMIC_GROUP
GROUPREF_EXISTS = _constants.GROUPREF_EXISTS


def parse(regex: re.Pattern[str]) -> Tree:
    """``regex``'s pattern as ``re`` parses it, under its flags."""
    return _parser.parse(regex.pattern, regex.flags)


def width(regex: re.Pattern[str]) -> tuple[int, int]:
    """(min, max) characters a match of ``regex`` consumes (lookarounds consume none)."""
    return parse(regex).getwidth()


def sequence_width(tree: Tree, items: list[tuple[Any, Any]]) -> tuple[int, int]:
    """(min, max) characters the elements ``items`` of ``tree`` consume, one after the other."""
    return _parser.SubPattern(tree.state, items).getwidth()


def subtrees(av: Any) -> list[Tree]:
    """The parsed sub-patterns inside an element's argument (a repeat's body, a branch's alternatives...)."""
    found: list[Tree] = []
    for item in av if isinstance(av, tuple | list) else (av,):
        if isinstance(item, _parser.SubPattern):
            found.append(item)
        elif isinstance(item, list | tuple):
            found += subtrees(item)
    return found
