"""relay_stream reads vLLM's SSE body in whatever pieces the socket hands it: however the bytes are cut (an
event split in two, many events in one piece, CRLF line ends), the client gets what whole-text filtering
gives, and what one piece releases leaves as one write."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lmforge.compliance import apply_policy, load_policy
from lmforge.serve.relay import relay_stream

POLICY = load_policy(Path(__file__).resolve().parents[2] / "configs" / "policy.yaml")
WORDS = ["The harbor", " was quiet;", " write to", " bob.smith@example.com", " or call (202) 555-0143", " today.",
         " Ships came", " in at 10", " am", " and left", " at night", " from db7.corp.lmforge.internal", "\n"]


def _sse(text_pieces: list[str], newline: bytes = b"\n") -> bytes:
    """vLLM's streamed completion: one chunk per piece, the last with a finish_reason, a usage chunk, [DONE]."""
    head = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m"}
    events = [{**head, "choices": [{"index": 0, "text": piece, "logprobs": None,
                                    "finish_reason": "length" if i == len(text_pieces) - 1 else None}]}
              for i, piece in enumerate(text_pieces)]
    events.append({**head, "choices": [], "usage": {"completion_tokens": len(text_pieces)}})
    lines = [b"data: " + json.dumps(e).encode() for e in events] + [b"data: [DONE]"]
    return b"".join(line + newline + newline for line in lines)


def _relay(body: bytes, cuts: list[int]) -> list[bytes]:
    async def pieces() -> AsyncIterator[bytes]:
        for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
            yield body[start:end]

    async def run() -> list[bytes]:
        return [w async for w in relay_stream(pieces(), "completion", POLICY, lambda v: None, lambda: None)]

    return asyncio.run(run())


def _events(writes: list[bytes]) -> list[dict | str]:
    blocks = b"".join(writes).split(b"\n\n")
    assert blocks[-1] == b""
    return [b[6:].decode() if b == b"data: [DONE]" else json.loads(b[6:]) for b in blocks[:-1]]


@pytest.mark.parametrize("seed", range(12))
def test_any_cut_of_the_bytes_releases_the_whole_text_filter(seed: int) -> None:
    rng = random.Random(seed)
    text_pieces = [rng.choice(WORDS) for _ in range(rng.randint(1, 40))]
    body = _sse(text_pieces, rng.choice([b"\n", b"\r\n"]))
    cuts = sorted(rng.sample(range(1, len(body)), rng.randint(0, min(60, len(body) - 1))))
    events = _events(_relay(body, cuts))
    assert events[-1] == "[DONE]" and "usage" in events[-2]
    chunks = [e for e in events if isinstance(e, dict) and e["choices"]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == apply_policy("".join(text_pieces), POLICY).text
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["id"] == "cmpl-1" for c in chunks)
    # One event per piece of the socket's (the old line-by-line relay) gives the same events.
    one_by_one = [i for i in range(1, len(body)) if body[i - 1:i] == b"\n"]
    assert _events(_relay(body, one_by_one)) == events


def test_what_one_piece_releases_leaves_as_one_write() -> None:
    text_pieces = ["word " * 3] * 40  # prose: released a hold-back behind, in steps
    body = _sse(text_pieces)
    writes = _relay(body, [])  # the whole body in one piece, as a gateway that fell behind would read it
    assert len(writes) == 1 and len(_events(writes)) > 3


def test_a_block_mid_piece_keeps_what_was_released_before_it() -> None:
    text_pieces = ["The harbor was quiet. "] * 12 + ["Here: <script>x()</script>"] + ["more"] * 3
    body = _sse(text_pieces)
    events = _events(_relay(body, []))
    released = "".join(e["choices"][0]["text"] for e in events[:-3] if isinstance(e, dict) and e["choices"])
    assert released and ("The harbor was quiet. " * 12).startswith(released)
    assert events[-3]["choices"][0]["finish_reason"] == "content_filter"
    assert events[-2]["error"]["code"] == "content_blocked" and events[-1] == "[DONE]"
