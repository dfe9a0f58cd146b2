"""PII detectors: adversarial positive formats, prose negatives, checksums and the bounded-width contract."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest

from lmforge import pii
from lmforge.pii import MAX_MATCH_CHARS, PII_KINDS, find_pii, iban_ok, luhn_ok, scrub_pii

POSITIVES = [
    ("EMAIL", "write to bob.smith+news@mail.example.co.uk today", "bob.smith+news@mail.example.co.uk"),
    ("EMAIL", "(x_y%z@sub-domain.io)", "x_y%z@sub-domain.io"),
    ("PHONE", "call (202) 555-0143 now", "(202) 555-0143"),
    ("PHONE", "call 202.555.0143.", "202.555.0143"),
    ("PHONE", "call +1 202-555-0143", "+1 202-555-0143"),
    ("PHONE", "london +44 20 7946 0958", "+44 20 7946 0958"),
    ("PHONE", "paris +33612345678", "+33612345678"),
    ("PHONE", "berlin +49 (30) 1234567", "+49 (30) 1234567"),
    # Formats the Faker benchmark (benchmarks/bench_data.py) found missing: extensions, 001, bare, national.
    ("PHONE", "desk (729)973-4667x05750 ok", "(729)973-4667x05750"),
    ("PHONE", "desk +1-277-385-0501 ext. 77 ok", "+1-277-385-0501 ext. 77"),
    ("PHONE", "from abroad 001-781-999-9740.", "001-781-999-9740"),
    ("PHONE", "edinburgh 0131 496 0900", "0131 496 0900"),
    ("PHONE", "berlin (0306) 9990087", "(0306) 9990087"),
    ("PHONE", "lyon 03 58 96 36 51.", "03 58 96 36 51"),
    # Bare digit runs: a national number with its trunk 0 needs nothing more; a bare NANP number needs a phone
    # word in its sentence (before or after it).
    ("PHONE", "paris 0644659514.", "0644659514"),
    ("PHONE", "leeds (01134960123)", "01134960123"),
    ("PHONE", "Call me on 5586235703 tomorrow", "5586235703"),
    ("PHONE", "use 8566246292, as discussed on the phone.", "8566246292"),
    ("PHONE", "Tel. 15586235703", "15586235703"),
    ("CREDIT_CARD", "maestro 6759 1661 7888 ok", "6759 1661 7888"),
    ("CREDIT_CARD", "jcb 180001232452193 ok", "180001232452193"),
    ("CREDIT_CARD", "visa 4111 1111 1111 1111 ok", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "mc 5500-0000-0000-0004", "5500-0000-0000-0004"),
    ("CREDIT_CARD", "amex 378282246310005", "378282246310005"),
    ("IBAN", "pay GB82 WEST 1234 5698 7654 32 now", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN", "pay DE89370400440532013000", "DE89370400440532013000"),
    ("SSN", "ssn 536-22-1234.", "536-22-1234"),
    ("SSN", "ssn 536 22 1234", "536 22 1234"),
    ("IP_ADDRESS", "host 192.168.0.1.", "192.168.0.1"),
    ("IP_ADDRESS", "v6 2001:0db8:85a3::8a2e:0370:7334 up", "2001:0db8:85a3::8a2e:0370:7334"),
    ("SECRET", "key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("SECRET", "OPENAI sk-proj-abc123DEF456ghi789JKL012", "sk-proj-abc123DEF456ghi789JKL012"),
    ("SECRET", "gh ghp_" + "a1B2" * 9, "ghp_" + "a1B2" * 9),
    ("SECRET", 'api_key = "Zx9fQ2mL8vR4tY7uP3kW"', "Zx9fQ2mL8vR4tY7uP3kW"),
    ("SECRET", "TOKEN: 9f8e7d6c5b4a39281706abcdefXYZ", "9f8e7d6c5b4a39281706abcdefXYZ"),
    ("SECRET", "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----"),
    ("SECRET", "MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi8qVGnHx4kX2aZ1Yb0sPq", None),
]

NEGATIVES = [
    "In 1790, Congress met; in 1861-1865 the war went on.",
    "Ge1:1 In the beginning God created the heaven and the earth. Ex20:13 Thou shalt not kill.",
    "Python 3.11.2 and release v1.2.3.4 and numpy 1.26.4.",
    "slice x[1::2] and std::cout and 12:30:45 and ratio 3:2:1",
    "dates 2023-01-15 and 15.01.2023, pages 100-200, 1234567890, order #4111111111111112",
    "ssn-like but invalid: 000-12-3456, 666-12-3456, 900-12-3456, 123-00-4567",
    "not an ip 999.1.1.1 and 1.2.3.4.5",
    "card with a bad checksum 4111 1111 1111 1112; sk-learn is a library; token: short",
    "password: aaaaaaaaaaaaaaaaaaaa (no entropy)",
    "The sum was $1,234,567.89 and 3,000,000 people voted.",
    "IBAN-like GB00 WEST 1234 5698 7654 32 fails mod-97",
    "timestamps 1700000000 and 1700000000123, a 12-digit id 123456789012, coordinates 0.1275, 51.5072",
    # False positives the shipped sample showed: decimals, integers, digit strings, microsecond timestamps.
    "Decimal('2.7182818285'), 351364.18288201344, 2**32 = 4294967296 and b'0123456789'",
    "function_2:5 156641360591757 function-entry",
    # Bare runs that stay numbers: no phone word in the same sentence, not a NANP number (1234567890), code.
    "Call it what you like. The total was 4294967296 in the end, and a total of 5586235703 later.",
    "a phone number has ten digits, like 1234567890",
    "zero-padded 0000012345 and 00000000001; id '0644659514', ref #0644659514, path /0644659514/x",
]


@pytest.mark.parametrize(("kind", "text", "expected"), POSITIVES)
def test_detects_adversarial_formats(kind: str, text: str, expected: str | None) -> None:
    matches = find_pii(text)
    assert [m.kind for m in matches] == [kind], matches
    assert expected is None or matches[0].text == expected
    assert text[matches[0].start:matches[0].end] == matches[0].text


@pytest.mark.parametrize("text", NEGATIVES)
def test_ordinary_prose_numbers_are_not_pii(text: str) -> None:
    assert find_pii(text) == []


def test_scrub_replaces_and_counts_each_kind() -> None:
    text = ("Mail a@b.io or c@d.org, call (202) 555-0143, card 4111-1111-1111-1111, "
            "api_key=Zx9fQ2mL8vR4tY7uP3kW")
    scrubbed, counts = scrub_pii(text)
    assert scrubbed == "Mail <EMAIL> or <EMAIL>, call <PHONE>, card <CREDIT_CARD>, api_key=<SECRET>"
    assert counts == {"EMAIL": 2, "PHONE": 1, "CREDIT_CARD": 1, "SECRET": 1}
    assert find_pii(scrubbed) == []


def test_matches_sorted_non_overlapping_and_filtered_by_kind() -> None:
    text = "x 4111 1111 1111 1111 y bob@example.com z 10.0.0.1"
    matches = find_pii(text)
    assert [m.kind for m in matches] == ["CREDIT_CARD", "EMAIL", "IP_ADDRESS"]
    assert all(a.end <= b.start for a, b in zip(matches, matches[1:], strict=False))
    assert [m.kind for m in find_pii(text, kinds=["EMAIL"])] == ["EMAIL"]
    with pytest.raises(ValueError, match="unknown PII kinds"):
        find_pii(text, kinds=["NAME"])


def test_checksums() -> None:
    assert luhn_ok("4539 1488 0343 6467") and not luhn_ok("4539 1488 0343 6468")
    assert iban_ok("FR1420041010050500013M02606") and not iban_ok("FR1420041010050500013M02607")


def test_faker_generated_pii_is_found() -> None:
    faker = pytest.importorskip("faker").Faker()
    faker.seed_instance(7)
    for _ in range(20):
        for kind, value in [("EMAIL", faker.email()), ("IP_ADDRESS", faker.ipv4()),
                            ("CREDIT_CARD", faker.credit_card_number(card_type="visa16")),
                            ("IBAN", faker.iban()), ("SSN", faker.ssn())]:
            matches = find_pii(f"record: {value}.")
            assert [(m.kind, m.text) for m in matches] == [(kind, value)], (kind, value)


def test_gates_only_skip_texts_without_a_match() -> None:
    # A detector skips a text without its gate, which is sound only if every match it confirms has the gate.
    faker = pytest.importorskip("faker").Faker()
    faker.seed_instance(11)
    texts = [text for _, text, _ in POSITIVES] + NEGATIVES + [
        f"{faker.sentence()} {value} {faker.sentence()}" for _ in range(30)
        for value in (faker.phone_number(), faker.iban(), faker.credit_card_number(), faker.ipv6(),
                      faker.sha1(), faker.password(length=44), "0" + faker.msisdn()[:10])]
    for detector in pii._DETECTORS:
        ungated = dataclasses.replace(detector, gate="")
        for text in texts:
            assert list(detector.find(text)) == list(ungated.find(text)), (detector.pattern.pattern, text)


def test_every_confirmed_match_holds_its_gate() -> None:
    # The streaming filter goes further than skipping a whole text: until a detector's gate shows up it takes
    # every match that would end before the gate search's frontier as absent, so the gate must lie inside it.
    texts = [text for _, text, _ in POSITIVES] + NEGATIVES + [
        "mobile 5586235703 and tel 15586235703; card 4111-1111-1111-1111, ssn 536 22 1234",
        "v6 fe80::1:2:3 and ::ffff:10.0.0.1; blob " + "Zm9vYmFy1Q" * 6 + ", " + "1aB/" * 15]
    for detector in pii.detectors_for():
        if not detector.gate:
            continue
        gate = re.compile(detector.gate)
        for text in texts:
            for m in detector.pattern.finditer(text):
                if detector.confirm(text, m) is not None:
                    assert gate.search(text, m.start(), m.end()), (detector.pattern.pattern, m.group())


def test_anchored_search_finds_what_finditer_finds() -> None:
    # A detector with an anchor searches from the next anchor less its offset: sound only if every raw match
    # holds it that near its start, which the streaming filter's own anchor analysis must agree with.
    from lmforge.compliance.regex_shape import regex_anchor

    rng = random.Random(29)
    local, tail = "a.b_c%d+e-f9", ["@ex.com", "@a.b.cc", "@@", "@x", " @ y.org", ".@", "@-x.io"]
    texts = ["".join(rng.choice([rng.choice(tail), "".join(rng.choices(local, k=rng.randint(0, 70))), " ", "\n"])
                     for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    texts += ["a" * 64 + "@ex.com", "a" * 65 + "@ex.com", " " + "b" * 63 + "@x.io", "x@y.zz" * 5]
    anchored = [d for d in pii._DETECTORS if d.anchor]
    assert [d.kind for d in anchored] == ["EMAIL"]
    for detector in anchored:
        found = regex_anchor(detector.pattern)
        assert found is not None and found.regex.pattern == re.escape(detector.anchor)
        assert found.offset <= detector.anchor_offset
        for text in texts:
            expected = [m.span() for m in detector.search_pattern.finditer(text)]
            assert [m.span() for m in pii._anchored(detector.search_pattern, text, detector.anchor,
                                                    detector.anchor_offset)] == expected, text


def test_detectors_for_keeps_find_pii_order_and_rejects_unknown_kinds() -> None:
    assert pii.detectors_for() == pii._DETECTORS
    assert [d.kind for d in pii.detectors_for(["SSN", "EMAIL"])] == ["EMAIL", "SSN"]
    with pytest.raises(ValueError, match="unknown PII kinds"):
        pii.detectors_for(["DNA"])


def test_a_phone_cue_counts_only_in_the_same_sentence_and_nearby() -> None:
    assert find_pii("Please call. Then 5586235703 arrived.") == []
    assert find_pii("call " + "x" * pii.CUE_CHARS + " 5586235703") == []
    assert [m.text for m in find_pii("mobile: 5586235703")] == ["5586235703"]
    # The cue after a number is read too, so the streaming hold-back (MAX_MATCH_CHARS) must cover it.
    assert MAX_MATCH_CHARS["PHONE"] >= len("15586235703") + pii.CUE_CHARS


def test_max_match_chars_bounds_every_kind() -> None:
    assert set(MAX_MATCH_CHARS) == set(PII_KINDS)
    assert all(0 < n < 1000 for n in MAX_MATCH_CHARS.values())
    long_email = "a" * 64 + "@" + "b" * 60 + ".com"
    (match,) = find_pii(long_email)
    assert len(match.text) <= MAX_MATCH_CHARS["EMAIL"]
    assert re.fullmatch(r"<EMAIL>", scrub_pii(long_email)[0])
