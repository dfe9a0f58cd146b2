"""Filter vLLM's answers on their way to the client: whole JSON bodies and SSE streams.

``filter_body`` runs the policy over each choice of a non-streamed answer; a blocked choice gets empty
content and ``finish_reason="content_filter"``. ``relay_stream`` reads vLLM's SSE lines, passes each
choice's text through its own ``StreamFilter`` and re-emits only released text; when a block rule fires
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
    lines: AsyncIterator[str],
    kind: Kind,
    policy: Policy,
    on_verdicts: OnVerdicts,
    on_first_text: Callable[[], None],
    on_upstream_error: Callable[[], None] = lambda: None,
) -> AsyncIterator[bytes]:
    filters: dict[int, StreamFilter] = {}
    finished: set[int] = set()
    template: dict[str, Any] = {}
    first = True
    try:
        async for line in lines:
            if not line.startswith("data:"):
                continue  # blank separators and SSE comments
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                on_upstream_error()
                yield sse_event(chunk)
                return
            template = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
            kept = []
            for choice in chunk.get("choices") or []:
                index = choice.get("index", 0)
                sf = filters.setdefault(index, StreamFilter(policy))
                text = sf.feed(_get_text(choice, kind) or "")
                if choice.get("finish_reason") is not None:
                    text += sf.finish()
                    finished.add(index)
                    on_verdicts(sf.verdicts)
                _set_text(choice, kind, text)
                if text or choice.get("finish_reason") is not None or _has_other_delta(choice, kind):
                    kept.append(choice)
            if chunk.get("choices") and not kept:
                continue  # everything in it is held back
            chunk["choices"] = kept
            if first and any(_get_text(c, kind) for c in kept):
                first = False
                on_first_text()
            yield sse_event(chunk)
        for index, sf in sorted(filters.items()):  # upstream ended without a finish_reason
            if index not in finished:
                text = sf.finish()
                on_verdicts(sf.verdicts)
                if text:
                    yield sse_event({**template, "choices": [_choice(index, kind, text, None)]})
        yield b"data: [DONE]\n\n"
    except ContentBlocked as blocked:
        on_verdicts([blocked.verdict])
        index = next((i for i, sf in filters.items() if sf.blocked is not None), 0)
        yield sse_event({**template, "choices": [_choice(index, kind, "", "content_filter")]})
        yield sse_event(
            error_body(
                f"{blocked} (policy {policy.version}); the response was cut off",
                "content_filter",
                "content_blocked",
            )
        )
        yield b"data: [DONE]\n\n"


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
