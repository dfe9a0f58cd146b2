"""fast_compile: the hoisted lookbehind finds exactly what the pattern as written finds, on every pattern shipped."""

from __future__ import annotations

import random
import re

import pytest

from lmforge import pii
from lmforge.compliance.policy import HAZARDS, parse_policy
from lmforge.fastre import _FOLDS, ascii_twin, fast_compile, faster, hoist_lookbehind


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}", r"\d(?<!(?:[\w-])\d)\d{2}([- ])\d{2}\1\d{4}"),
    (r"(?<![\w-])(?:\d[ -]?){11,18}\d", r"\d(?<!(?:[\w-])\d)[ -]?(?:\d[ -]?){10,17}\d"),
    (r"(?<![\w.])(?:\d{1,3}\.){3}\d", r"\d(?<!(?:[\w.])\d)\d{0,2}\.(?:\d{1,3}\.){2}\d"),
    (r"(?<![\w-])sk-(?:a|b)?x", r"sk-(?<!(?:[\w-])sk-)(?:a|b)?x"),
    (r"(?<=a)b+?c", r"b(?<=(?:a)b)b{0,}?c"),
    (r"(?<!a|b)[]x]{2,}y", r"[]x](?<!(?:a|b)[]x])[]x]{1,}y"),
    (r"(?i)(?<!q)ab", r"(?i)ab(?<!(?:q)ab)"),
    (r"(?<!\w)(?:ab|\-c|d(?:e|f))(?!\w)", r"[\-ad](?<!(?:\w)(?s:.))(?:(?<=a)b|(?<=\-)c|(?<=d)(?:e|f))(?!\w)"),
    (r"(?i)(?<=a|b)(?:sk|Ok)x", r"(?i)(?-i:[OSosſ])(?<=(?:a|b)(?s:.))(?:(?<=s)k|(?<=O)k)x"),
    # Branches led by a class or a repeated atom: the class takes them in, the first copy is hoisted.
    (r"(?<!\w)(?:a|[bc])", r"[abc](?<!(?:\w)(?s:.))(?:(?<=a)|(?<=[bc]))"),
    (r"(?<![\w+])(?:\+1 ?x|\(\d{3}\)y|\d{3}z)",
     r"[\(\+\d](?<!(?:[\w+])(?s:.))(?:(?<=\+)1 ?x|(?<=\()\d{3}\)y|(?<=\d)\d{2}z)"),
    (r"(?<!\w)(?:\d{2,}?x|b)", r"[b\d](?<!(?:\w)(?s:.))(?:(?<=\d)\d{1,}?x|(?<=b))"),
])
def test_hoists_what_every_match_opens_with(pattern: str, expected: str) -> None:
    assert hoist_lookbehind(pattern, only_rare=False) == expected


def test_hoists_only_an_opening_that_is_rare_in_prose() -> None:
    email = r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    assert hoist_lookbehind(email) == email and hoist_lookbehind(email, only_rare=False) != email
    assert hoist_lookbehind(r"(?<!\w)X-\d") == r"X-\d(?<!(?:\w)X-\d)"


@pytest.mark.parametrize("pattern", [
    r"(?<!\w)(?:a|b?c)", r"(?<!\w)(?:a|b)+", r"(?<!\w)(?:a|\bc)", r"(?<!\w)(?:a|b++)",  # branches not led by one
    r"(?<!\w)(?:[^a]|b)", r"(?<!\w)(?:[-a]|b)", r"(?<!\w)(?:[a-]|b)", r"(?<!\w)(?:[]a]|b)",  # classes that would
    r"(?i)(?<!\w)(?:[a-c]|d)",  # not mean the same in one class; a class's folds under IGNORECASE
    r"(?<!\w)(?:a|)",  # literal, or an empty one
    r"(?<!a)b?c", r"(?<!a)b*c", r"(?<!a)(?:b?c)+d",  # optional first atoms
    r"(?<!a)b++c", r"(?<!a)(?:bc){2}+d",  # possessive
    r"(?<!a)\bc", r"(?<!a).c", r"(?<!a)\x41", r"(?<!a)b{}c",  # \b, any, escapes not handled, a literal "{}"
    r"(?x)(?<!a) b", r"\d(?<!a)", r"(?i:(?<!a)b)",  # verbose, no leading lookbehind, a scoped flag group
])
def test_leaves_other_shapes_as_written(pattern: str) -> None:
    assert hoist_lookbehind(pattern, only_rare=False) == pattern
    assert fast_compile(pattern).pattern == pattern


def test_branches_hoist_under_the_flags_they_are_compiled_with() -> None:
    terms = r"(?<!\w)(?:kb|ic)(?!\w)"
    assert hoist_lookbehind(terms, only_rare=False, flags=re.IGNORECASE).startswith("(?-i:[IKikİıK])")
    assert hoist_lookbehind(terms, only_rare=False).startswith("[ik]")
    assert hoist_lookbehind(r"(?<!\w)(?:éa|b)", only_rare=False, flags=re.IGNORECASE) == r"(?<!\w)(?:éa|b)"
    common = r"(?<!\w)(?:ea|ta|oa|ia|na|sa|ra|ha)"  # most letters of prose: the scan would not pay
    assert hoist_lookbehind(common) == common != hoist_lookbehind(common, only_rare=False)


def test_folds_list_every_character_an_ascii_literal_matches_ignoring_case() -> None:
    # Exhaustive: what an ASCII literal matches under IGNORECASE beyond its two cases is in _FOLDS.
    any_ascii = re.compile(r"[\x00-\x7f]", re.IGNORECASE)
    beyond = [chr(c) for c in range(128, 0x110000) if any_ascii.fullmatch(chr(c))]
    for ch in beyond:
        literals = [a for a in map(chr, range(128)) if re.fullmatch(re.escape(a), ch, re.IGNORECASE)]
        assert literals and all(ch in _FOLDS.get(a.lower(), "") for a in literals), (hex(ord(ch)), literals)


def test_term_branches_match_exactly_as_written() -> None:
    rng = random.Random(5)
    alphabet = "abcikostKSIO -_\nſKİıx"
    for terms in (["kill it", "iron", "sarin", "Operation Nightjar", "sk-1"], ["a-b", "-x", " y", "\\z"]):
        pattern = rf"(?<!\w)(?:{'|'.join(re.escape(t) for t in terms)})(?!\w)"
        for flags in (0, re.IGNORECASE, re.IGNORECASE | re.ASCII):
            regex, fast = re.compile(pattern, flags), re.compile(hoist_lookbehind(pattern, False, flags), flags)
            assert fast.pattern != pattern
            for _ in range(3000):
                text = "".join(rng.choice(terms) if rng.random() < 0.3 else
                               "".join(rng.choices(alphabet, k=rng.randint(0, 5))) for _ in range(rng.randint(1, 6)))
                text = "".join(ch.swapcase() if rng.random() < 0.3 else ch for ch in text)
                pos = rng.randint(0, len(text))
                expected = [m.span() for m in regex.finditer(text, pos)]
                assert [m.span() for m in fast.finditer(text, pos)] == expected, (pattern, flags, text)


def test_nanp_phones_written_as_branches_match_as_the_compact_form() -> None:
    # The NANP detector spells out its optional country prefix so that fastre can hoist it (see pii._NANP_AREA).
    nanp = next(d for d in pii._DETECTORS if d.kind == "PHONE")
    compact = re.compile(pii.NANP_COMPACT)
    assert nanp.search_pattern.pattern.startswith(r"[\(\+01\d](?<!")
    rng = random.Random(19)
    for text in _texts(rng, 4000) + ["+1 202-555-0143x123", "1 (202) 555-0143", "001-202-555-0143", "1202.555.0143"]:
        pos = rng.randint(0, len(text))
        expected = [(m.span(), m.groups()) for m in compact.finditer(text, pos)]
        assert [(m.span(), m.groups()) for m in nanp.pattern.finditer(text, pos)] == expected, text
        assert [(m.span(), m.groups()) for m in nanp.search_pattern.finditer(text, pos)] == expected, text


def test_verbose_flag_and_errors_keep_the_pattern_as_written() -> None:
    assert fast_compile(r"(?<!a)b", re.VERBOSE).pattern == r"(?<!a)b"
    with pytest.raises(re.error, match="look-behind requires fixed-width"):
        fast_compile(r"(?<!a+)b")


def _shipped() -> list[re.Pattern[str]]:
    rules = parse_policy({"version": 1, "rules": [
        {"id": "t", "kind": "term", "action": "block", "params": {"terms": ["bad word", "x-1"]}},
        {"id": "h", "kind": "hazard", "action": "block", "params": {}},
    ]}).rules
    return [d.pattern for d in pii._DETECTORS] + [r for rule in rules for _, r in rule.regexes] + \
        [re.compile(h) for h in HAZARDS.values()]


def _texts(rng: random.Random, n: int) -> list[str]:
    """Short texts dense in what the patterns hinge on: digits, separators, word edges, letters of each case."""
    alphabet = "0123456789" * 4 + " -.,:+()/@_=#'\"\n" * 2 + "aAbBkKsSxXgGhHpPtTiIoO" + "é٣"
    pieces = ["555-0143", "(202) ", "+44 20 ", "sk-", "ghp_", "xoxb-", "AKIA", "@ex.com", "db7.corp", "DE89 ",
              "123-45-6789", "4111 1111 1111 1111", "192.168.", "::1", "api_key=", "<script", "javascript:"]
    out = []
    for _ in range(n):
        parts = [rng.choice(pieces) if rng.random() < 0.3 else "".join(rng.choices(alphabet, k=rng.randint(1, 8)))
                 for _ in range(rng.randint(1, 12))]
        out.append("".join(parts))
    return out


def test_hoisted_patterns_match_exactly_as_written() -> None:
    rng = random.Random(7)
    texts = _texts(rng, 3000)
    hoisted = 0
    for regex in _shipped():
        fast = faster(regex)
        hoisted += fast is not regex
        for text in texts:
            for pos in (0, rng.randint(0, len(text))):  # a search that resumes mid-text keeps the text before it
                expected = [(m.span(), m.groups()) for m in regex.finditer(text, pos)]
                assert [(m.span(), m.groups()) for m in fast.finditer(text, pos)] == expected, (regex.pattern, text)
    assert hoisted >= 8  # most PII detectors open with a lookbehind and a digit, a literal or a class


def _random_pattern(rng: random.Random, branched: bool) -> str:
    """A lookbehind, then a run of random atoms or (``branched``) a group of 2-4 branches of them and a tail."""
    atoms = [r"\d", "[a-c]", "b", r"\-", r"[^a]", r"\w", "(?:ab)", "(?:a|b)", "(c)", r"\s"] + \
        ([r"\(", "[1-]"] if branched else [])
    quantifiers = ["", "", "?", "+", "*", "{2}", "{1,3}", "{2,}", "+?", "{1,2}?"]
    behinds = [r"(?<!a)", r"(?<=\d)", r"(?<![\w-])", r"(?<!ab|c\d)", r"(?<=[^b])"]

    def run(most: int) -> str:
        return "".join(rng.choice(atoms) + rng.choice(quantifiers) for _ in range(rng.randint(1, most)))

    if not branched:
        return rng.choice(behinds) + run(4)
    branches = "|".join(run(3) for _ in range(rng.randint(2, 4)))
    return rng.choice(behinds) + f"(?:{branches})" + rng.choice(["", r"\d", "(?!b)", "x?"])


@pytest.mark.parametrize(("branched", "least"), [(False, 100), (True, 40)])
def test_random_patterns_match_exactly_as_written(branched: bool, least: int) -> None:
    rng = random.Random(11 + branched)
    texts = ["".join(rng.choices("aabbc-12 _x(\n", k=rng.randint(0, 14))) for _ in range(400)]
    changed = 0
    for _ in range(300 + 100 * branched):
        pattern = _random_pattern(rng, branched)
        try:
            regex = re.compile(pattern)
        except re.error:
            continue
        fast = re.compile(hoist_lookbehind(pattern, only_rare=False))  # the rewrite itself, common heads too
        changed += fast.pattern != pattern
        for text in texts:
            expected = [(m.span(), m.groups()) for m in regex.finditer(text)]
            assert [(m.span(), m.groups()) for m in fast.finditer(text)] == expected, (pattern, fast.pattern, text)
    assert changed > least


def test_detectors_and_rules_run_the_fast_form_and_analyse_the_written_one() -> None:
    ssn = next(d for d in pii._DETECTORS if d.kind == "SSN")
    assert ssn.pattern.pattern.startswith("(?<!") and ssn.search_pattern.pattern.startswith(r"\d")
    rule = parse_policy({"version": 1, "rules": [{"id": "p", "kind": "pattern", "action": "redact",
                                                  "params": {"regex": r"(?<!\w)X-\d{4}"}}]}).rules[0]
    assert rule.regexes[0][1].pattern == r"(?<!\w)X-\d{4}"
    assert rule.search_regexes[0][1].pattern == r"X-\d(?<!(?:\w)X-\d)\d{3}"
    assert [v.span for v in rule.scan("id X-1234, aX-1234")] == [(3, 9)]


def test_ascii_twins_match_exactly_as_written_on_ascii_text() -> None:
    rng = random.Random(13)
    texts = [text.encode("ascii", "replace").decode() + rng.choice(["", "\x1c", "\x1f ", "\t"])
             for text in _texts(rng, 2000)]
    gates = [re.compile(d.gate) for d in pii._DETECTORS if d.gate]
    twins = 0
    for regex in [faster(r) for r in _shipped()] + gates:
        twin = ascii_twin(regex)
        twins += twin is not regex
        for text in texts:
            pos = rng.randint(0, len(text))
            expected = [(m.span(), m.groups()) for m in regex.finditer(text, pos)]
            assert [(m.span(), m.groups()) for m in twin.finditer(text, pos)] == expected, (regex.pattern, text)
    assert twins >= 30  # all but those with \s


@pytest.mark.parametrize(("pattern", "flags", "twinned"), [
    (r"(?<!\w)\d{3}-\d{4}\b", 0, True),
    (r"(?-i:[sſ])x", re.IGNORECASE, True),  # a non-ASCII literal where case is not ignored
    (r"a\sb", 0, False), (r"[^\S]", 0, False),  # Unicode counts \x1c-\x1f as space
    ("\u212aelvin", re.IGNORECASE, False), (r"(?i:[\u0100-\u0200])", 0, False),  # the Kelvin sign folds to k
    ("\u212aelvin", 0, True), (r"(?u)\d", 0, False), (r"\d", re.ASCII, False),
])
def test_ascii_twin_only_where_ascii_text_matches_the_same(pattern: str, flags: int, twinned: bool) -> None:
    regex = re.compile(pattern, flags)
    twin = ascii_twin(regex)
    assert (twin is not regex) == twinned
    if twinned:
        assert twin.flags & re.ASCII and twin.pattern == pattern
