"""Send one validated generation request to an arm (a vLLM server) and account for what came back.

``answer`` returns the client's response: the arm's answer filtered by the arm's policy, stamped with the
arm's model version and policy version. ``shadow`` sends a copy, filters and measures the answer, and drops
it (the client never sees it). Both end in exactly one ``Observation`` (status, seconds, verdicts), also when
the arm is down or the stream breaks, so a rollout sees every failure.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from lmforge.compliance import Verdict
from lmforge.serve.protocol import error_body
from lmforge.serve.relay import Kind, OnVerdicts, filter_body, relay_stream, sse_event
from lmforge.serve.routing import Arm, Observation

log = logging.getLogger("lmforge.gateway")
Reject = Callable[..., JSONResponse]
UNAVAILABLE_RETRY_AFTER_S = 5  # the Retry-After of a 503 while vLLM is down (a restart takes 15-60 s on CPU)
# Refused, or closed or reset before any answer: what a dead vLLM does to a new or a kept-alive connection.
_UNAVAILABLE = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class Forward:
    """What goes upstream: the OpenAI path and the (validated, capped) JSON payload."""

    path: str
    payload: dict[str, Any]
    kind: Kind
    stream: bool


class _Tally:
    """The verdicts of one answer and the observation it ends in (recorded once)."""

    def __init__(self, arm: Arm, record: Callable[[Observation], None], mirrored: bool, streamed: bool) -> None:
        self.arm, self._record, self.mirrored, self.streamed = arm, record, mirrored, streamed
        self.verdicts: list[Verdict] = []
        self.began = time.perf_counter()
        self._done = False

    def close(self, status: int) -> None:
        if self._done:
            return
        self._done = True
        blocked = any(v.action == "block" for v in self.verdicts)
        self._record(Observation(self.arm.name, self.arm.version, status, time.perf_counter() - self.began,
                                 len(self.verdicts), blocked, self.mirrored, self.streamed))


async def answer(
    arm: Arm,
    fwd: Forward,
    model_name: str,
    record: Callable[[Observation], None],
    count: OnVerdicts,
    reject: Reject,
    on_first_text: Callable[[], None],
) -> Response:
    tally = _Tally(arm, record, mirrored=False, streamed=fwd.stream)
    stamp = arm.stamp(model_name)

    def verdicts(found: list[Verdict]) -> None:
        tally.verdicts += found
        count(found)

    try:
        upstream = await arm.client.send(arm.client.build_request("POST", fwd.path, json=fwd.payload),
                                         stream=fwd.stream)
    except _UNAVAILABLE:  # vLLM is down (the stack's supervisor restarts it) or died holding this connection
        tally.close(503)
        return reject(503, "upstream", "The model server is not reachable; try again shortly.", "server_error",
                      "upstream_unavailable", {**stamp, "Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})
    except httpx.HTTPError as err:
        tally.close(502)
        return reject(502, "upstream", f"The model server failed ({type(err).__name__}).", "server_error",
                      "upstream_error", stamp)
    if upstream.status_code != 200:
        tally.close(upstream.status_code)
        return await _upstream_error(upstream, reject, stamp)
    if not fwd.stream:
        body = filter_body(upstream.json(), fwd.kind, arm.policy, verdicts)
        on_first_text()
        tally.close(200)
        return JSONResponse(body, headers=stamp)
    return StreamingResponse(
        _observed_stream(upstream, fwd.kind, arm, tally, verdicts, on_first_text),
        media_type="text/event-stream",
        background=BackgroundTask(upstream.aclose),
        headers={"cache-control": "no-cache", **stamp},
    )


async def shadow(arm: Arm, fwd: Forward, record: Callable[[Observation], None]) -> None:
    """Send a copy to ``arm``; filter and measure its answer, then drop it."""
    tally = _Tally(arm, record, mirrored=True, streamed=fwd.stream)
    status = 502

    def failed() -> None:
        nonlocal status
        status = 502

    try:
        upstream = await arm.client.send(arm.client.build_request("POST", fwd.path, json=fwd.payload),
                                         stream=fwd.stream)
        try:
            status = upstream.status_code
            if status == 200 and fwd.stream:
                async for _ in relay_stream(upstream.aiter_bytes(), fwd.kind, arm.policy, tally.verdicts.extend,
                                            lambda: None, failed):
                    pass
            elif status == 200:
                filter_body(upstream.json(), fwd.kind, arm.policy, tally.verdicts.extend)
        finally:
            await upstream.aclose()
    except httpx.ConnectError:
        status = 503
    except httpx.HTTPError:
        status = 502
    except Exception:  # a shadow copy must never hurt the gateway; it only counts as the arm's failure
        log.exception("shadow request to %s failed", arm.upstream_url)
        status = 500
    finally:
        tally.close(status)


async def _observed_stream(
    upstream: httpx.Response,
    kind: Kind,
    arm: Arm,
    tally: _Tally,
    verdicts: OnVerdicts,
    on_first_text: Callable[[], None],
) -> AsyncIterator[bytes]:
    """The filtered SSE stream; the observation closes when it ends, breaks or the client leaves."""
    status = 200

    def failed() -> None:  # vLLM reported an error inside the stream
        nonlocal status
        status = 502

    try:
        async for event in relay_stream(upstream.aiter_bytes(), kind, arm.policy, verdicts, on_first_text, failed):
            yield event
    except httpx.HTTPError as err:  # the upstream broke mid-stream: end cleanly, not with a reset
        status = 502
        log.warning("upstream %s broke mid-stream: %s", arm.upstream_url, err)
        yield sse_event(error_body("The model server failed mid-stream.", "server_error", "upstream_error"))
        yield b"data: [DONE]\n\n"
    finally:
        tally.close(status)


async def _upstream_error(upstream: httpx.Response, reject: Reject, stamp: dict[str, str]) -> JSONResponse:
    """vLLM's 4xx (bad sampling params, prompt too long) pass through; its 5xx become a plain 502."""
    await upstream.aread()
    await upstream.aclose()
    if 400 <= upstream.status_code < 500:
        try:
            message = upstream.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = "The model server rejected the request."
        return reject(upstream.status_code, "upstream_4xx", str(message), "invalid_request_error",
                      "upstream_rejected", stamp)
    return reject(502, "upstream", f"The model server failed (HTTP {upstream.status_code}).", "server_error",
                  "upstream_error", stamp)



_CONTEXT: weakref.WeakKeyDictionary[httpx.AsyncClient, int] = weakref.WeakKeyDictionary()


async def context_length(arm: Arm) -> int | None:
    """The arm's ``max_model_len`` as its ``/v1/models`` reports it (asked once per arm client), None if unknown."""
    if arm.client in _CONTEXT:
        return _CONTEXT[arm.client]
    try:
        r = await arm.client.get("/v1/models", timeout=5.0)
        lengths = [m["max_model_len"] for m in r.json()["data"] if isinstance(m.get("max_model_len"), int)]
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not cached: the next request asks again
    if not lengths:
        return None
    _CONTEXT[arm.client] = min(lengths)
    return _CONTEXT[arm.client]
