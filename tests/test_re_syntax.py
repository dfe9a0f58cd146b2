"""lmforge.re_syntax: the shapes of re's private parse tree that lmforge relies on, pinned (a Python upgrade that
changes them fails here first), and no other module reaching into re's internals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lmforge import re_syntax

SRC = Path(__file__).resolve().parents[1] / "src" / "lmforge"


def test_only_the_adapter_imports_re_internals() -> None:
    private = re.compile(r"^\s*(?:import|from)\s+(?:re\._parser|re\._constants|sre_parse|sre_constants)\b", re.M)
    users = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if private.search(p.read_text()))
    assert users == ["re_syntax.py"]


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"abc", (3, 3)), (r"\d{3}-\d{4}", (8, 8)), (r"a?b{2,5}", (2, 6)), (r"(?<!\w)x(?=y)", (1, 1)),
    (r"a|bcd", (1, 3)), (r"\bx\b", (1, 1)),
])
def test_width_is_min_and_max_characters_consumed(pattern: str, expected: tuple[int, int]) -> None:
    assert re_syntax.width(re.compile(pattern)) == expected


def test_unbounded_repeats_are_at_least_unbounded() -> None:
    for pattern in (r"a+", r"a*", r"a{2,}", r"(?:ab)+c"):
        assert re_syntax.width(re.compile(pattern))[1] >= re_syntax.UNBOUNDED


def test_elements_have_the_argument_shapes_the_module_docstring_lists() -> None:
    tree = re_syntax.parse(re.compile(r"a[^b-d\d]x{2,3}?(?i:y)(?:pa|qb)(?<=z)\b"))
    ops = [op for op, _ in tree.data]
    assert ops == [re_syntax.LITERAL, re_syntax.IN, re_syntax.MIN_REPEAT, re_syntax.SUBPATTERN, re_syntax.BRANCH,
                   re_syntax.ASSERT, re_syntax.AT]
    (_, a), (_, klass), (_, rep), (_, group), (_, branch), (_, behind), (_, at) = tree.data
    assert a == ord("a")
    assert klass[0] == (re_syntax.NEGATE, None) and (re_syntax.RANGE, (ord("b"), ord("d"))) in klass
    assert any(o is re_syntax.CATEGORY and str(v) == "CATEGORY_DIGIT" for o, v in klass)
    assert rep[:2] == (2, 3) and rep[2].data == [(re_syntax.LITERAL, ord("x"))]
    assert group[0] is None and group[1] == re.IGNORECASE and group[3].data == [(re_syntax.LITERAL, ord("y"))]
    assert [[c for _, c in alt.data] for alt in branch[1]] == [[ord("p"), ord("a")], [ord("q"), ord("b")]]
    assert behind[0] == -1 and behind[1].data == [(re_syntax.LITERAL, ord("z"))]
    assert str(at) == "AT_BOUNDARY"
    assert re_syntax.parse(re.compile(r"(?=y)")).data[0][1][0] == 1  # a lookahead's direction
    assert re_syntax.parse(re.compile(r"x++")).data[0][0] is re_syntax.POSSESSIVE_REPEAT
    assert re_syntax.parse(re.compile(r"(a)")).data[0][1][0] == 1  # a capturing group's number


def test_sequence_width_and_subtrees() -> None:
    tree = re_syntax.parse(re.compile(r"ab{2,4}(?:c|de)"))
    assert re_syntax.sequence_width(tree, tree.data[:2]) == (3, 5)
    assert re_syntax.sequence_width(tree, tree.data[2:]) == (1, 2)
    _, branch = tree.data[2]
    assert [t.data for t in re_syntax.subtrees(branch)] == [alt.data for alt in branch[1]]
    _, rep = tree.data[1]
    assert re_syntax.subtrees(rep) == [rep[2]] and re_syntax.subtrees(tree.data[0][1]) == []
