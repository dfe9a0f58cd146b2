"""Request models the gateway validates before anything reaches vLLM, and the OpenAI error shape.

Fields the gateway does not look at pass through unchanged (``extra="allow"``), so clients keep every
sampling option vLLM supports. ``parse_request`` turns a body into a validated request and the payload to
forward, or raises ``InvalidRequest`` with a reason for the client: whatever a client sends gets a 4xx, and
nothing that reaches vLLM fails to encode (no lone surrogates, NaN or infinities, nor nesting deeper than
``MAX_DEPTH``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_DEPTH = 64  # JSON nesting levels; a request needs a handful, and Python's encoder recurses per level
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")  # \ud800-\udfff: a pair is fine, a lone one is not text


class _GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    n: int = Field(1, ge=1, le=8)

    def requested_tokens(self) -> int | None:
        return self.max_tokens


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(_GenerateRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    def requested_tokens(self) -> int | None:
        return max((t for t in (self.max_tokens, self.max_completion_tokens) if t is not None), default=None)


class CompletionRequest(_GenerateRequest):
    prompt: str | list[str] | list[int] | list[list[int]]


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """The OpenAI error JSON: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class InvalidRequest(ValueError):
    """A request body the gateway refuses (400), with the reason in words."""


def parse_request(body: bytes, kind: Literal["chat", "completion"]) -> tuple[_GenerateRequest, dict[str, Any]]:
    """The validated request and the JSON payload to forward (its ``stream`` as the gateway read it)."""
    try:
        payload = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidRequest(f"Invalid JSON body: nested deeper than {MAX_DEPTH} levels.") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an int over Python's digit limit
        raise InvalidRequest(f"Invalid JSON body: {err}.") from None
    # Both checks scan the bytes at C speed first; the walk over the parsed body runs only when they hit.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _depth(payload) > MAX_DEPTH:
        raise InvalidRequest(f"Invalid JSON body: nested deeper than {MAX_DEPTH} levels.")
    if _ESCAPED_SURROGATE.search(body) and _has_lone_surrogate(payload):
        raise InvalidRequest("Invalid JSON body: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), "
                             "which is not a Unicode character.")
    try:
        request = (ChatCompletionRequest if kind == "chat" else CompletionRequest).model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise InvalidRequest(f"Invalid request: {where}: {first['msg']}.") from None
    payload["stream"] = request.stream  # vLLM must stream exactly when the gateway expects a stream ("no" is False)
    return request, payload


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, counted no deeper than ``MAX_DEPTH + 1``."""
    level, frontier = 0, [value]
    while frontier and level <= MAX_DEPTH:
        level += 1
        frontier = [c for v in frontier if isinstance(v, (list, dict))
                    for c in (v.values() if isinstance(v, dict) else v)]
    return level - 1 if not frontier else level


def _has_lone_surrogate(payload: Any) -> bool:
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
