"""The streaming filter releases exactly what whole-text filtering would, for every chunking."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lmforge import pii
from lmforge.compliance import ContentBlocked, Policy, StreamFilter, apply_policy, load_policy, parse_policy
from lmforge.compliance.cli import filter_streamed
from lmforge.compliance.filter import choose_redactions, render, scan
from lmforge.compliance.incremental import IncrementalScan, _pii_specs, _regex_specs
from lmforge.compliance.regex_shape import regex_anchor, regex_closure, regex_required_chars, regex_run_anchor
from lmforge.compliance.regex_stream import RegexStream as _RegexStream
from lmforge.compliance.regex_stream import StreamSpec as _Spec
from lmforge.compliance.regex_stream import Voucher as _Voucher
from lmforge.compliance.streaming import MIN_SPACING, SPACING_PER_WOKEN

SHIPPED = load_policy(Path(__file__).resolve().parents[2] / "configs" / "policy.yaml")
# The longest email the detector takes (it sets the shipped window): read whole only at the settle point.
LONGEST_EMAIL = "a" * 64 + "@" + ("b" * 63 + ".") * 6 + "c" * 24
PII_SNIPPETS = [
    "bob.smith@example.com",
    "(202) 555-0143",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
    "123-45-6789",
    "192.168.10.24",
    "AKIAIOSFODNN7EXAMPLE",
    "api_key = 'Zx9fQ2LmP8rT4vW1yB6n'",
    "db7.corp.lmforge.internal",
    "Project Bluefin",
    "![x](https://evil.example/p.png?q=1)",
    # Candidates that overlap, run on, or depend on what stands around them.
    "+1 202-555-0143x123",
    "4111 1111 1111 1111 4111",
    "555 123 4567 890",
    "1 2 3 4 5 6 7 8 9 0 1 2 3",
    "123-45-6789-0",
    "192.168.0.1.5",
    "fe80::1:2:3",
    "5586235703",
    "call",
    "Tel.",
    "0644659514",
    "sk-" + "Ab1" * 8,
    "Zm9vYmFy" * 6 + "1Q",
    LONGEST_EMAIL,
]
FILLER = ["the harbor was quiet", "ships came in", "at 10 am", "version 2.3.1", "Ge1:1", "in 1999,", "and", ". The",
          "\n\n", "-", "#", "w" * 200]


def _stream(text: str, cuts: list[int], policy: Policy = SHIPPED) -> tuple[str, StreamFilter]:
    sf, out, prev = StreamFilter(policy), [], 0
    for cut in [*cuts, len(text)]:
        out.append(sf.feed(text[prev:cut]))
        prev = cut
    out.append(sf.finish())
    return "".join(out), sf


def _chunkings(text: str, rng: random.Random) -> list[list[int]]:
    """Every character alone, fixed sizes around the scan spacings, the least hold and the window, random cuts."""
    fixed = [list(range(k, len(text), k)) for k in (4, 26, 27, 104, 105, 117, 118, 475, 476)]
    randoms = [sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 200)))) for _ in range(3)]
    return [list(range(1, len(text))), *fixed, *randoms]


def _assert_streams_like_whole(text: str, policy: Policy = SHIPPED, seed: int = 0) -> None:
    expected = apply_policy(text, policy)
    assert not expected.blocked
    for cuts in _chunkings(text, random.Random(seed)):
        out, sf = _stream(text, cuts, policy)
        assert out == expected.text, cuts[:10]
        assert sf.verdicts == expected.verdicts, cuts[:10]


def _random_text(rng: random.Random) -> str:
    n = rng.randint(5, 60)
    words = [rng.choice(PII_SNIPPETS) if rng.random() < 0.3 else rng.choice(FILLER) for _ in range(n)]
    return rng.choice([" ", " ", "", ",", "\n"]).join(words)


def _policy(*rules: dict) -> Policy:
    return parse_policy({"version": 1, "rules": list(rules)})


def test_pii_split_at_every_boundary_is_never_released() -> None:
    text = "Write to bob.smith@example.com today, card 4111 1111 1111 1111."
    expected = apply_policy(text, SHIPPED)
    for cut in range(len(text) + 1):
        out, sf = _stream(text, [cut])
        assert out == expected.text and sf.verdicts == expected.verdicts, cut


def test_small_window_policy_releases_early_but_never_a_partial_match() -> None:
    policy = _policy({"id": "ssn", "kind": "pii", "action": "redact", "params": {"kinds": ["SSN"]}})
    assert policy.window == 11 + 2
    text = "x" * 30 + " 123-45-6789 " + "y" * 30
    sf, released = StreamFilter(policy), ""
    for ch in text:
        released += sf.feed(ch)
        assert "123-45" not in released and "45-6789" not in released
    assert released + sf.finish() == apply_policy(text, policy).text
    assert released.startswith("x" * 30)  # released before the end: the window is small


@pytest.mark.parametrize("seed", range(120))
def test_random_chunkings_equal_whole_text(seed: int) -> None:
    rng = random.Random(seed)
    text = _random_text(rng)
    expected = apply_policy(text, SHIPPED)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 40))))
        out, sf = _stream(text, cuts)
        assert out == expected.text
        assert sf.verdicts == expected.verdicts
    assert filter_streamed(text, SHIPPED, 1) == expected


def _digit_noise(n: int) -> str:
    rng = random.Random(n)
    return "".join(rng.choice("0123456789  -.") for _ in range(n))


def _phone_cues() -> str:
    # A bare NANP number counts only beside a phone word at most CUE_CHARS away in the same sentence, so the
    # verdict reads up to 40 characters before and after the number; the distances cross that bound.
    parts = []
    for gap in range(pii.CUE_CHARS - 10, pii.CUE_CHARS - 2):  # "call" + gap + number: counts up to gap 34
        parts += [f"Please call {'x' * gap} 5586235703 today.", f"The 8566246292 {'y' * gap} phone.",
                  f"We called. Then {'z ' * (gap // 2)}2025550143 came.", "w" * (gap * 9)]
    return " ".join(parts)


ADVERSARIAL = {
    "cards back to back": "4111 1111 1111 1111 " * 40,
    "spaced digits": "1 2 3 4 5 6 7 8 9 0 " * 60,
    "phones and cards run together": "555 123 4567 " * 60 + "536-22-1234-" * 30,
    "digit noise": _digit_noise(2500),
    "phone cues near the bound": _phone_cues(),
    "longest emails straddle the settle point": " ".join(["w" * k + " " + LONGEST_EMAIL for k in (0, 1, 117, 300)]),
    "gates show up late": "the harbor was quiet " * 150 + "4111 1111 1111 1111, bob@example.com, 123-45-6789, "
                          "GB82 WEST 1234 5698 7654 32, 192.168.0.1 and call 5586235703.",
    "overlapping candidates": " ".join(["+1 202-555-0143x123", "4111-1111-1111-1111", "192.168.0.1.5", "fe80::1:2:3",
                                        "Tel. 15586235703", "001-202-555-0143", "0131 496 0900", "03 58 96 36 51",
                                        "api_key=Zx9fQ2LmP8rT4vW1yB6nQ2LmP8rT4vW1yB6n1aB/"] * 12),
    "redactions every ~window": ("x" * 440 + " Project Bluefin db7.corp.lmforge.internal ") * 6,
    # Streams asleep on prose wake for a character their voucher needs: non-ASCII digits, a blob's run, an '@'.
    "sleepers wake": " ".join(["the harbor was quiet " * 12 + tail for tail in (
        "\u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661",
        "Zm9vYmFy" * 6 + "1Q", "x" * 39 + " " + "y" * 41, "bob@example.com", "\u0663\u0665\u0665-0143 call",
        "sk-" + "Ab1" * 8, "fe80::1:2:3", "key: Zx9fQ2LmP8rT4vW1yB6n", "<b>", "AKIAIOSFODNN7EXAMPLE")]),
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_adversarial_texts_equal_whole_text(name: str) -> None:
    _assert_streams_like_whole(ADVERSARIAL[name])


@pytest.mark.parametrize("kinds", [["PHONE"], ["CREDIT_CARD", "SSN", "PHONE"], ["EMAIL", "IBAN", "SECRET"]])
def test_small_window_pii_policies_equal_whole_text(kinds: list[str]) -> None:
    # A small window means frequent scans and gates that vouch for little: every detector path runs often.
    policy = _policy({"id": "pii", "kind": "pii", "action": "redact", "params": {"kinds": kinds}})
    for name in ("phones and cards run together", "phone cues near the bound", "gates show up late",
                 "overlapping candidates"):
        _assert_streams_like_whole(ADVERSARIAL[name], policy)


def test_patterns_that_match_empty_keep_the_whole_text_alignment() -> None:
    # finditer steps past an empty match differently from a non-empty one; a resumed scan must match that.
    policy = _policy(
        {"id": "xy", "kind": "pattern", "action": "redact", "params": {"regex": r"x{0,3}?y?"}},
        {"id": "ab", "kind": "pattern", "action": "flag", "params": {"regex": r"(?<=a)b{0,2}|\bab{1,3}\b"}},
        {"id": "run", "kind": "pattern", "action": "redact", "params": {"regex": r"(?:ab|a){0,3}(?!c)"}},
        {"id": "terms", "kind": "term", "action": "redact", "params": {"terms": ["ab", "ab ab", "b a"]}},
    )
    _assert_streams_like_whole("xxyxyy ab aab abbb abc a b a " * 60, policy)


def test_end_anchors_wait_for_the_end() -> None:
    # "$" also matches before a final newline, so a stream must not take "foo\n" as the end of the text.
    policy = _policy({"id": "end", "kind": "pattern", "action": "redact", "params": {"regex": r"foo$|bar\Z"}})
    _assert_streams_like_whole("a foo\nb bar\n" * 20 + "end foo\n", policy)


# Matches whose last character or lookahead decides them ("536-22-1234.5" is no SSN), candidates of several
# detectors on one span, and cue words: settled at every length, each meets the settle point exactly.
EDGES = ["536-22-1234.5", "536-22-1234.", "192.168.0.1.5", "10.0.0.1.", "202-555-0143.5", "202-555-0143-9",
         "(202) 555-0143x12345", "4111 1111 1111 1111-1", "4111111111111111x", "4111-1111-1111-1111",
         "GB82 WEST 1234 5698 7654 32-", LONGEST_EMAIL + "x", LONGEST_EMAIL + "-", LONGEST_EMAIL + ".",
         "Operation Nightjars", "Operation Nightjar.", "Project Bluefin_", "a" * 40 + ".corp.lmforge.internalx",
         "b" * 40 + ".corp.lmforge.internal", "call 5586235703", "5586235703 " + "y" * 34 + " phone",
         "+44 20 7946 0958 0", "0644659514.5", "555 123 4567 890 1234", "api_key=" + "Zx9fQ2LmP8rT4vW1" * 8 + "A"]
EDGE_TEXT = "".join(f"{' ' * pad}{edge} " for pad in range(4) for edge in EDGES)


def test_each_regex_stream_replays_finditer_and_never_returns_a_match_it_vouched_absent() -> None:
    # Grown one character at a time and advanced each time, so every tail and gate bound meets every match and
    # gate edge; a match may come late only if it starts past what the stream vouched for.
    pii_rule = next(rule for rule in SHIPPED.rules if rule.kind == "pii")
    texts = [" ".join(EDGES)] + [f"{'w ' * 40}{edge} more" for edge in EDGES]
    streams = [(detector.confirm, spec) for detector, spec in _pii_specs(pii_rule, SHIPPED.window)]
    streams += [(lambda _, m: m.span(), spec) for rule in SHIPPED.rules if rule.kind != "pii"
                for _, spec in _regex_specs(rule, SHIPPED.window)]
    for confirm, spec in streams:
        for text in texts:
            stream, found = _RegexStream(spec), []
            for n in range(1, len(text) + 1):
                vouched, prefix = stream.frontier, text[:n]
                new = [m for m in stream.advance(prefix, final=n == len(text)) if confirm(prefix, m)]
                assert all(m.start() > vouched for m in new), (spec.regex.pattern, text)
                found += new
            whole = [m for m in spec.regex.finditer(text) if confirm(text, m)]
            assert [m.span() for m in found] == [m.span() for m in whole], (spec.regex.pattern, text)


def test_a_stream_jumps_only_to_a_voucher_in_every_raw_match() -> None:
    # "ab" is a raw match without the gate "q" (a check would drop it), and it keeps "bq" from matching: a search
    # started a gate's offset before the "q" would find "bq", which finditer never yields.
    regex = re.compile("ab|bq")
    for raw, expected in ((False, [(0, 2)]), (True, [(1, 3)])):
        spec = _Spec(regex, 2, (_Voucher(re.compile("q"), 1, 1, raw=raw),))
        assert spec.jump == (0 if raw else -1)
        assert [m.span() for m in _RegexStream(spec).advance("abq", final=True)] == expected
    email, = (spec for d, spec in _pii_specs(next(r for r in SHIPPED.rules if r.kind == "pii"), SHIPPED.window)
              if d.kind == "EMAIL")
    assert email.vouchers[email.jump].regex.pattern == "@" and email.vouchers[email.jump].offset == 64
    assert _Spec(re.compile("(?:a@)?"), 2, (_Voucher(re.compile("@"), 1, 1),)).jump == -1  # it may match empty


@pytest.mark.parametrize("policy", [
    SHIPPED,
    _policy({"id": "ssn", "kind": "pii", "action": "redact", "params": {"kinds": ["SSN"]}}),
    _policy({"id": "ip", "kind": "pii", "action": "redact", "params": {"kinds": ["IP_ADDRESS"]}}),
    _policy({"id": "email", "kind": "pii", "action": "redact", "params": {"kinds": ["EMAIL"]}}),
    _policy({"id": "card", "kind": "pii", "action": "redact", "params": {"kinds": ["CREDIT_CARD", "IBAN"]}}),
    _policy({"id": "numbers", "kind": "pii", "action": "flag", "params": {"kinds": ["PHONE", "CREDIT_CARD", "SSN"]}}),
    _policy({"id": "secret", "kind": "pii", "action": "flag", "params": {"kinds": ["SECRET"]}}),
    _policy({"id": "terms", "kind": "term", "action": "redact",
             "params": {"terms": ["Operation Nightjar", "Project Bluefin"]}}),
    _policy({"id": "host", "kind": "pattern", "action": "flag",
             "params": {"regex": r"\b[a-z0-9-]{1,40}\.corp\.lmforge\.internal\b"}}),
], ids=lambda p: p.rules[0].id)
def test_settling_at_every_length_equals_whole_text(policy: Policy) -> None:
    inc, settled = IncrementalScan(policy), []
    for n in range(policy.window + 1, len(EDGE_TEXT)):
        settled += inc.settle(EDGE_TEXT[:n], n - policy.window)
    settled += inc.settle(EDGE_TEXT, len(EDGE_TEXT), final=True)
    assert settled == apply_policy(EDGE_TEXT, policy).verdicts


@pytest.mark.parametrize("policy", [
    SHIPPED,
    _policy({"id": "email", "kind": "pii", "action": "redact", "params": {"kinds": ["EMAIL"]}}),
    _policy({"id": "secret", "kind": "pii", "action": "flag", "params": {"kinds": ["SECRET"]}}),
    _policy({"id": "host", "kind": "pattern", "action": "flag",
             "params": {"regex": r"\b[a-z0-9-]{1,40}\.corp\.lmforge\.internal\b"}}),
    _policy({"id": "hazards", "kind": "hazard", "action": "redact",
             "params": {"hazards": ["external_image", "event_handler", "javascript_url"]}}),
], ids=lambda p: p.rules[0].id)
def test_settling_as_far_as_the_vouchers_allow_at_every_length_equals_whole_text(policy: Policy) -> None:
    text = EDGE_TEXT + " ".join(["x@", "![a](", "<b ", "sk-", ":=", "javascript"] * 3) + EDGE_TEXT[:600] + \
        ADVERSARIAL["sleepers wake"][:1200]
    inc, settled, upto = IncrementalScan(policy), [], -1
    for n in range(1, len(text)):
        settled += inc.settle(text[:n])
        assert upto <= inc.settled_to < n  # it never goes back, nor settles the end before the end
        upto = inc.settled_to
    settled += inc.settle(text, final=True)
    assert settled == apply_policy(text, policy).verdicts


def test_anchors_are_rare_literals_in_every_match_at_a_bounded_offset() -> None:
    email = next(d.pattern for d in pii.detectors_for(["EMAIL"]))
    anchor = regex_anchor(email)
    assert anchor is not None and anchor.regex.pattern == "@" and (anchor.offset, anchor.reach) == (64, 1)
    found = {pattern: regex_anchor(re.compile(pattern)) for pattern in [
        r"(?<!\w)sk-[a-z]{20}", r"(?i)(?:api|token)\s{0,3}[:=]\s{0,3}(\w{16})", r"(?i)\bjavascript:",
        r"(ab)c{1,3}!x", r"\d{3}[ .-]\d{4}", r"(?:a@|b@)", r"x+@", r"on[a-z]{3}", r"[^a]@"]}
    got = {p: (a.regex.pattern, a.offset) if a else None for p, a in found.items()}
    assert got == {
        r"(?<!\w)sk-[a-z]{20}": (re.escape("sk-"), 0),
        r"(?i)(?:api|token)\s{0,3}[:=]\s{0,3}(\w{16})": ("[:=]", 8),  # "token" + 3 spaces before it
        r"(?i)\bjavascript:": ("javascript:", 0),
        r"(ab)c{1,3}!x": ("!x", 5),  # a plain group counts inline
        r"\d{3}[ .-]\d{4}": None,  # a class with a space in it is no rare anchor
        r"(?:a@|b@)": None,  # inside a branch: not in every match
        r"x+@": None,  # no bound on where it starts
        r"on[a-z]{3}": None,  # two letters: common in prose
        r"[^a]@": ("@", 1),
    }
    case_blind = found[r"(?i)\bjavascript:"]
    assert case_blind is not None and case_blind.regex.search("JavaScript:")  # the regex's flags carry over


def test_closures_end_a_match_at_the_first_stop_character_after_its_anchor() -> None:
    email = next(d.pattern for d in pii.detectors_for(["EMAIL"]))
    closure = regex_closure(email)
    assert closure is not None and (closure.anchor.pattern, closure.offset, closure.lookahead) == ("@", 64, 1)
    assert closure.stop.match(" ") and closure.stop.match(",") and not closure.stop.match(".")
    text = "x" * 100 + "write to bob@example.com"
    at = text.index("@")
    assert closure.settled(text, 0) == at - 65  # the domain may go on: attempts that reach this '@' wait
    assert closure.settled(text + ",", 0) == at - 65  # the lookahead after the "," is not known yet
    assert closure.settled(text + ", x", 0) == len(text + ", x") - 65  # ended: only a later '@' could matter
    shapes = {p: regex_closure(re.compile(p)) for p in [
        r"(?<!\w)sk-[a-z]{20,40}(?!\w)", r"[a@]{0,3}@x{1,5}", r"a{0,3}@.{1,5}", r"(a){0,3}@(?:x|\1)",
        r"\d{3}[ .-]\d{4}", r"a@[^b]{1,4}"]}
    assert {p: c and (c.anchor.pattern, c.offset, c.stop.pattern) for p, c in shapes.items()} == {
        r"(?<!\w)sk-[a-z]{20,40}(?!\w)": (re.escape("-"), 2, r"[^a-z]"),
        r"[a@]{0,3}@x{1,5}": None,  # the part before the '@' may hold one: which '@' a match uses is open
        r"a{0,3}@.{1,5}": None, r"(a){0,3}@(?:x|\1)": None,  # any character, a back-reference: no stop
        r"\d{3}[ .-]\d{4}": None, r"a@[^b]{1,4}": None,  # no punctuation anchor; a negated class
    }


@pytest.mark.parametrize("pattern", [
    *(d.pattern.pattern for d in pii._DETECTORS if regex_closure(d.pattern) is not None),
    r"(?<![\w.])[a-z]{1,5}\.@[a-z0-9]{1,8}(?:\.[a-z]{2,4}){1,3}\b", r"x{0,2}=(?:ab|c)d{0,9}(?=e)",
])
def test_closure_settles_only_attempts_that_read_known_text(pattern: str) -> None:
    regex = re.compile(pattern)
    closure = regex_closure(regex)
    assert closure is not None
    rng = random.Random(5)
    pieces = ["bob@ex.com", "a.@b1.cd", "x=abd", "sk-", "ghp_", "xoxb-", "-----BEGIN ", "api_key=", "+44 20",
              "@", "=", "-", "_", ".", " ", ",", "e", "d", "ab", "Zz9", "KEY-----", "PRIVATE"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) + rng.choice(["", "", "a", "1", "-"]) for _ in range(rng.randint(1, 30)))
        whole = {m.start(): (m.span(), m.groups()) for m in regex.finditer(text)}
        for n in range(len(text) + 1):
            prefix, start = text[:n], rng.randint(0, n)
            for t in range(start, closure.settled(prefix, start) + 1):
                m = regex.match(prefix, t)
                if t in whole or m is not None:  # finditer's matches are matches at their start; others fail
                    m2 = regex.match(text, t)
                    assert m is not None and m2 is not None and (m.span(), m.groups()) == (m2.span(), m2.groups()), \
                        (pattern, text, n, t)


def test_run_anchors_and_required_characters() -> None:
    run = regex_run_anchor(re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{40,100}={0,2}"))
    assert run is not None and (run.regex.pattern, run.offset, run.reach) == (r"[A-Za-z0-9\+/]{40}", 0, 40)
    assert run.regex.search("x" * 40) and not run.regex.search(("x" * 39 + " ") * 3)
    assert regex_run_anchor(re.compile(r"gh_[A-Za-z0-9]{36,80}")).offset == 3  # after "gh_"
    assert regex_run_anchor(re.compile(r"[a-z]{3,30}")) is None  # too short a run to be rare
    assert regex_run_anchor(re.compile(r"(?:x|y)z{1,5}[0-9]{30}")).offset == 6  # past elements of bounded width
    assert regex_run_anchor(re.compile(r"x+[0-9]{30}")) is None  # unbounded before it
    required = {p: regex_required_chars(re.compile(p, f)) for p, f in [
        ("@", 0), (r"\d\d\d[ .-]\d{4}", 0), ("sk-", 0), ("[:=]", 0), ("javascript", re.IGNORECASE),
        ("<", re.IGNORECASE), ("[2-9]", 0), (r"[^a]b", 0), (r"(?:ab|cd)", 0)]}
    assert required == {
        "@": (frozenset("@"), False),
        r"\d\d\d[ .-]\d{4}": (frozenset(), True),  # a digit is rarer than a space, a dot or a dash
        "sk-": (frozenset("-"), False),
        "[:=]": (frozenset(":="), False),
        "javascript": None,  # case-blind letters: (?i)k also matches the Kelvin sign
        "<": (frozenset("<"), False),
        "[2-9]": (frozenset("23456789"), False),
        r"[^a]b": (frozenset("b"), False),
        r"(?:ab|cd)": None,  # a branch: neither is in every match
    }


def test_on_prose_most_streams_sleep_and_wake_for_what_they_need() -> None:
    inc = IncrementalScan(SHIPPED)
    assert inc.woken == 0 and inc._seen.sleeping >= 15  # before any text, every voucher that needs a character
    prose = "The harbor was quiet and the ships came in with the tide before dawn. " * 6
    inc.settle(prose)
    asleep = [s for s in inc._streams if s.asleep]
    assert len(asleep) >= 15
    email = next(s for s in inc._streams if s.spec.vouchers and s.spec.vouchers[0].regex.pattern == "@")
    assert email.asleep
    inc.settle(prose + "write to bob@")
    assert not email.asleep  # an '@' arrived: it runs its regex again


def test_prose_is_released_a_least_hold_behind_and_waits_longer_only_near_an_anchor() -> None:
    sf = StreamFilter(SHIPPED)
    assert sf.hold == 65 < SHIPPED.window == 475  # the email's '@' is at most 64 in
    prose = "The harbor was quiet and the ships came in with the tide before dawn. " * 12
    released, lags = "", []
    for i, ch in enumerate(prose):
        released += sf.feed(ch)
        lags.append(i + 1 - len(released))
    # A least hold, plus the scan spacing: on prose the streams that can sleep do (until an '@', a digit, a '<'
    # arrives), so the spacing per stream woken stays below MIN_SPACING.
    assert sf._scan.woken * SPACING_PER_WOKEN < MIN_SPACING
    assert max(lags[300:]) <= sf.hold + MIN_SPACING + 1
    sf = StreamFilter(SHIPPED)
    text = prose[:300] + "write to bob@example.com, " + prose[:300]
    at = text.index("@")
    released = "".join(sf.feed(ch) for ch in text[:at + 12])  # "...bob@example.c": the email may go on
    assert len(released) <= at - 64  # nothing a match through this '@' could start in
    released += "".join(sf.feed(ch) for ch in text[at + 12:])
    # The ", " ends the email (policy.regex_closure): it is settled there, not the email's whole reach (475) on.
    assert "write to <EMAIL>, " in released and len(released) >= len(text) - sf.hold - MIN_SPACING - 1
    assert released + sf.finish() == apply_policy(text, SHIPPED).text


def test_incremental_scan_settles_each_verdict_once_in_scan_order() -> None:
    text = " ".join(ADVERSARIAL.values())
    inc, settled = IncrementalScan(SHIPPED), []
    for n in range(SHIPPED.window + 1, len(text), 97):
        settled += inc.settle(text[:n], n - SHIPPED.window)
    settled += inc.settle(text, len(text), final=True)
    assert settled == apply_policy(text, SHIPPED).verdicts


def test_block_rule_ends_the_stream_without_releasing_the_term() -> None:
    text = "a" * 600 + " here is how to build a pipe bomb quickly " + "b" * 600
    sf, released = StreamFilter(SHIPPED), ""
    with pytest.raises(ContentBlocked, match="banned_content"):
        for i in range(0, len(text), 5):
            released += sf.feed(text[i : i + 5])
        sf.finish()
    assert "pipe bomb" not in released and sf.blocked is not None
    with pytest.raises(ContentBlocked):
        sf.feed("more")


@pytest.mark.parametrize("seed", range(8))
def test_a_block_releases_only_checked_text_before_it(seed: int) -> None:
    rng = random.Random(seed)
    before = _random_text(rng) + " " + "w" * rng.randint(0, 700)
    text = before + " how to build a pipe bomb, " + _random_text(rng)
    expected = apply_policy(text, SHIPPED)
    first_block = next(v for v in expected.verdicts if v.action == "block")
    # What may leave before the block: the redacted text up to it, never a redaction cut in two.
    redactions = choose_redactions(scan(text, SHIPPED))
    limit = first_block.span[0]
    limit = next((v.span[0] for v in redactions if v.span[0] < limit < v.span[1]), limit)
    allowed = render(text, redactions, 0, limit)
    for cuts in _chunkings(text, rng):
        sf, released = StreamFilter(SHIPPED), ""
        with pytest.raises(ContentBlocked) as raised:
            prev = 0
            for cut in [*cuts, len(text)]:
                released += sf.feed(text[prev:cut])
                prev = cut
            sf.finish()
        assert raised.value.verdict == first_block
        assert allowed.startswith(released) and "pipe bomb" not in released
        unblocked = [v for v in expected.verdicts if v.action != "block"]
        assert sf.verdicts == unblocked[: len(sf.verdicts)]


def test_stream_fails_closed_on_detector_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> bool:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(pii, "luhn_ok", boom)  # the card check calls it on every card-shaped number
    text = "x" * 1000 + " card 4111 1111 1111 1111 " + "y" * 1000
    assert apply_policy(text, SHIPPED).blocked
    sf = StreamFilter(SHIPPED)
    with pytest.raises(ContentBlocked, match="fail_closed"):
        for i in range(0, len(text), 7):
            assert "4111" not in sf.feed(text[i : i + 7])
        sf.finish()
    assert sf.blocked is not None and sf.blocked.category == "filter_error"


def test_stream_fails_closed_on_scanner_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object, **__: object) -> list:
        raise RuntimeError("scanner crashed")

    monkeypatch.setattr(IncrementalScan, "settle", boom)
    sf = StreamFilter(SHIPPED)
    with pytest.raises(ContentBlocked, match="fail_closed"):
        sf.feed("x" * 1000)
        sf.finish()
    assert sf.blocked is not None and sf.blocked.category == "filter_error"


def test_finish_is_final() -> None:
    sf = StreamFilter(SHIPPED)
    assert sf.feed("mail bob@example.com") == "" and sf.finish() == "mail <EMAIL>"
    assert sf.finish() == "" and sf.feed("") == ""
    with pytest.raises(ContentBlocked, match="fail_closed"):  # text after the end was never checked with it
        sf.feed("more")


def test_streaming_costs_about_what_whole_text_filtering_costs() -> None:
    # Each character is searched a small constant number of times, so the ratio stays flat as texts grow
    # (re-scanning the whole text on each scan cost ~30x on 16 KB). Loose: the cores may be busy.
    text = ("For details write to jane.doe@example.com or call (202) 555-0143; the ledger lives on "
            "db7.corp.lmforge.internal. Ships came in with the tide and left at night. ") * 200  # ~32 KB

    def cpu_seconds(run: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(3):
            began = time.process_time()
            run()
            best = min(best, time.process_time() - began)
        return best

    def streamed() -> None:
        sf = StreamFilter(SHIPPED)
        for i in range(0, len(text), 4):
            sf.feed(text[i : i + 4])
        sf.finish()

    assert cpu_seconds(streamed) < 5 * cpu_seconds(lambda: apply_policy(text, SHIPPED))
