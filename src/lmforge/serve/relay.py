"""Filter vLLM's answers on their way to the client: whole JSON bodies and SSE streams.

``filter_body`` runs the policy over each choice of a non-streamed answer; a blocked choice gets empty
content and ``finish_reason="content_filter"``. ``relay_stream`` reads vLLM's SSE body as it arrives, passes
each choice's text through its own ``StreamFilter`` and re-emits only released text; when a block rule fires
it ends the stream with a ``content_filter`` finish and an OpenAI-style error event (the ``openai``
client raises it as ``APIError``). An error event from vLLM itself is passed on and reported through
``on_upstream_error``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from lmforge.compliance import ContentBlocked, Policy, StreamFilter, Verdict, apply_policy
from lmforge.serve.protocol import error_body

Kind = Literal["chat", "completion"]
OnVerdicts = Callable[[list[Verdict]], None]


def filter_body(body: dict[str, Any], kind: Kind, policy: Policy, on_verdicts: OnVerdicts) -> dict[str, Any]:
    for choice in body.get("choices") or []:
        text = _get_text(choice, kind)
        if not text:
            continue
        result = apply_policy(text, policy)
        on_verdicts(result.verdicts)
        _set_text(choice, kind, result.text)
        if result.blocked:
            choice["finish_reason"] = "content_filter"
    return body


async def relay_stream(
    pieces: AsyncIterator[bytes],
    kind: Kind,
    policy: Policy,
    on_verdicts: OnVerdicts,
    on_first_text: Callable[[], None],
    on_upstream_error: Callable[[], None] = lambda: None,
) -> AsyncIterator[bytes]:
    """vLLM's SSE body as it arrives (``pieces``: ``httpx.Response.aiter_bytes()``), filtered. The events of one
    piece leave as one write: a gateway that falls behind finds several chunks of a stream waiting, and sends
    what they release at once instead of paying a write for each."""
    relay = _Relay(kind, policy, on_verdicts, on_first_text, on_upstream_error)
    rest = b""
    async for piece in pieces:
        lines = (rest + piece).splitlines(keepends=True)
        rest = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        out, ended = relay.lines(lines)
        if out:
            yield out
        if ended:
            return
    yield relay.lines([b"data: [DONE]"])[0]  # vLLM ended without [DONE]: release the rest all the same


class _Relay:
    """One stream's filters (one per choice) and what it has passed on so far."""

    def __init__(self, kind: Kind, policy: Policy, on_verdicts: OnVerdicts, on_first_text: Callable[[], None],
                 on_upstream_error: Callable[[], None]) -> None:
        self.kind, self.policy, self.on_verdicts = kind, policy, on_verdicts
        self.on_first_text, self.on_upstream_error = on_first_text, on_upstream_error
        self.filters: dict[int, StreamFilter] = {}
        self.finished: set[int] = set()
        self.template: dict[str, Any] = {}
        self.first = True

    def lines(self, lines: list[bytes]) -> tuple[bytes, bool]:
        """What these SSE lines release, as one write, and whether the stream ends with them."""
        out: list[bytes] = []
        try:
            for line in lines:
                if not line.startswith(b"data:"):
                    continue  # blank separators and SSE comments
                data = line[5:].strip()
                if data == b"[DONE]":
                    return b"".join([*out, *self._finish()]), True
                chunk = json.loads(data.decode())  # a str: json would guess the encoding of bytes, each time
                if "error" in chunk:
                    self.on_upstream_error()
                    return b"".join([*out, sse_event(chunk)]), True
                if event := self._chunk(chunk):
                    out.append(event)
        except ContentBlocked as blocked:
            self.on_verdicts([blocked.verdict])
            return b"".join([*out, *self._blocked(blocked)]), True
        return b"".join(out), False

    def _chunk(self, chunk: dict[str, Any]) -> bytes | None:
        """The event for one upstream chunk, or None when everything in it is held back."""
        kind = self.kind
        self.template = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
        kept = []
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            sf = self.filters.get(index)
            if sf is None:  # not setdefault: building a filter costs ~0.1 ms, once per choice is enough
                sf = self.filters[index] = StreamFilter(self.policy)
            text = sf.feed(_get_text(choice, kind) or "")
            if choice.get("finish_reason") is not None:
                text += sf.finish()
                self.finished.add(index)
                self.on_verdicts(sf.verdicts)
            _set_text(choice, kind, text)
            if text or choice.get("finish_reason") is not None or _has_other_delta(choice, kind):
                kept.append(choice)
        if chunk.get("choices") and not kept:
            return None
        chunk["choices"] = kept
        if self.first and any(_get_text(c, kind) for c in kept):
            self.first = False
            self.on_first_text()
        return sse_event(chunk)

    def _finish(self) -> list[bytes]:
        """The rest of every choice vLLM left unfinished, then ``[DONE]``."""
        out = []
        for index, sf in sorted(self.filters.items()):
            if index not in self.finished:
                text = sf.finish()
                self.on_verdicts(sf.verdicts)
                if text:
                    out.append(sse_event({**self.template, "choices": [_choice(index, self.kind, text, None)]}))
        return [*out, b"data: [DONE]\n\n"]

    def _blocked(self, blocked: ContentBlocked) -> list[bytes]:
        """A ``content_filter`` finish for the blocked choice, the error event, ``[DONE]``."""
        index = next((i for i, sf in self.filters.items() if sf.blocked is not None), 0)
        message = f"{blocked} (policy {self.policy.version}); the response was cut off"
        return [sse_event({**self.template, "choices": [_choice(index, self.kind, "", "content_filter")]}),
                sse_event(error_body(message, "content_filter", "content_blocked")), b"data: [DONE]\n\n"]


def sse_event(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()


def _get_text(choice: dict[str, Any], kind: Kind) -> str | None:
    if kind == "completion":
        return choice.get("text")
    holder = choice.get("message") or choice.get("delta") or {}
    content = holder.get("content")
    return content if isinstance(content, str) else None


def _set_text(choice: dict[str, Any], kind: Kind, text: str) -> None:
    if kind == "completion":
        choice["text"] = text
    else:
        key = "message" if "message" in choice else "delta"
        choice.setdefault(key, {})["content"] = text


def _has_other_delta(choice: dict[str, Any], kind: Kind) -> bool:
    """A chat delta that carries a role or tool calls must still go out even when its text is held."""
    delta = choice.get("delta") or {}
    return kind == "chat" and any(v for k, v in delta.items() if k != "content")


def _choice(index: int, kind: Kind, text: str, finish: str | None) -> dict[str, Any]:
    if kind == "completion":
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
    return {"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": finish}
