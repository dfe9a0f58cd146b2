"""The streaming filter releases exactly what whole-text filtering would, for every chunking."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lmforge.compliance import ContentBlocked, StreamFilter, apply_policy, load_policy, parse_policy
from lmforge.compliance.cli import filter_streamed

SHIPPED = load_policy(Path(__file__).resolve().parents[2] / "configs" / "policy.yaml")
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
]
FILLER = ["the harbor was quiet", "ships came in", "at 10 am", "version 2.3.1", "Ge1:1", "in 1999,", "and"]


def _stream(text: str, cuts: list[int], policy=SHIPPED) -> tuple[str, StreamFilter]:
    sf, out, prev = StreamFilter(policy), [], 0
    for cut in [*cuts, len(text)]:
        out.append(sf.feed(text[prev:cut]))
        prev = cut
    out.append(sf.finish())
    return "".join(out), sf


def _random_text(rng: random.Random) -> str:
    n = rng.randint(5, 60)
    words = [rng.choice(PII_SNIPPETS) if rng.random() < 0.3 else rng.choice(FILLER) for _ in range(n)]
    return " ".join(words)


def test_pii_split_at_every_boundary_is_never_released() -> None:
    text = "Write to bob.smith@example.com today, card 4111 1111 1111 1111."
    expected = apply_policy(text, SHIPPED)
    for cut in range(len(text) + 1):
        out, sf = _stream(text, [cut])
        assert out == expected.text and sf.verdicts == expected.verdicts, cut


def test_small_window_policy_releases_early_but_never_a_partial_match() -> None:
    policy = parse_policy(
        {
            "version": 1,
            "rules": [{"id": "ssn", "kind": "pii", "action": "redact", "params": {"kinds": ["SSN"]}}],
        }
    )
    assert policy.window == 11 + 2
    text = "x" * 30 + " 123-45-6789 " + "y" * 30
    sf, released = StreamFilter(policy), ""
    for ch in text:
        released += sf.feed(ch)
        assert "123-45" not in released and "45-6789" not in released
    assert released + sf.finish() == apply_policy(text, policy).text
    assert released.startswith("x" * 30)  # released before the end: the window is small


@pytest.mark.parametrize("seed", range(40))
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


def test_stream_fails_closed_on_filter_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    import lmforge.compliance.policy as policy_mod

    def boom(*_: object, **__: object) -> list:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(policy_mod, "find_pii", boom)
    sf = StreamFilter(SHIPPED)
    with pytest.raises(ContentBlocked, match="fail_closed"):
        sf.feed("x" * 1000)
        sf.finish()
    assert sf.blocked is not None and sf.blocked.category == "filter_error"
