"""An independent oracle for the scanner's one claim, from the ``regex`` module's partial matching: a match start
the stream has settled is one where no match can still be in progress, whatever text comes next."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lmforge.compliance import load_policy
from lmforge.compliance.incremental import _pii_specs, _regex_specs
from lmforge.compliance.regex_stream import RegexStream, StreamSpec

regex = pytest.importorskip("regex")

SHIPPED = load_policy(Path(__file__).resolve().parents[2] / "configs" / "policy.yaml")
PIECES = ["bob.smith@example.com", "(202) 555-0143", "+44 20 7946 0958", "4111 1111 1111 1111", "123-45-6789",
          "192.168.10.24", "fe80::1:2:3", "AKIAIOSFODNN7EXAMPLE", "sk-Ab1Ab1Ab1Ab1Ab1Ab1Ab1Ab1", "<script",
          "javascript:", "![x](https://e.x/p.png)", "Project Bluefin", "api_key = 'Zx9fQ2LmP8rT4vW1yB6n'"]


def _text(rng: random.Random) -> str:
    filler = "the harbor was quiet. ships came in at 10 am, "
    return "".join(rng.choice(PIECES) + " " if rng.random() < 0.3 else filler[:rng.randint(3, len(filler))]
                   for _ in range(rng.randint(10, 30)))


def _streams() -> list[tuple[str, StreamSpec]]:
    out = []
    for rule in SHIPPED.rules:
        specs = _pii_specs(rule, SHIPPED.window) if rule.kind == "pii" else _regex_specs(rule, SHIPPED.window)
        out += [(spec.regex.pattern, spec) for _, spec in specs]
    return out


def test_no_match_is_in_progress_at_a_settled_start() -> None:
    rng = random.Random(31)
    texts = [_text(rng) for _ in range(12)]
    checked = 0
    for pattern, spec in _streams():
        oracle = regex.compile(pattern, spec.regex.flags & ~32)  # re.UNICODE is regex's default
        for text in texts:
            stream = RegexStream(spec)
            for n in range(40, len(text), 97):
                prefix = text[:n]
                stream.advance(prefix, final=False)
                # The attempts settled last: each either fails or matches whole on any longer text.
                for t in range(max(0, stream.frontier - 80), stream.frontier + 1):
                    m = oracle.match(prefix, t, partial=True)
                    assert m is None or not m.partial, (pattern, prefix, t, stream.frontier)
                    checked += 1
    assert checked > 10_000
