"""The gateway in front of vLLM: API keys, rate limits, request limits, and a compliance filter on every
output (streamed or not). It talks to vLLM over its OpenAI HTTP API only, never importing vllm.

    app = create_app(GatewaySettings(upstream_url="http://127.0.0.1:8100", model_name=..., ...))
    python -m lmforge.serve.gateway --settings gateway.json --host 127.0.0.1 --port 8000

Endpoints: ``/v1/chat/completions``, ``/v1/completions`` (``stream`` or not), ``/v1/models``, ``/health``
(the gateway is up), ``/ready`` (vLLM answers too), ``/metrics`` (Prometheus). Every response carries
``x-lmforge-model``, ``x-lmforge-model-version`` and ``x-lmforge-policy-version``; every error is OpenAI-style
JSON (401, 413, 400, 404, 429 with Retry-After, 502/503 when vLLM is down), never a stack trace.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask

from lmforge.compliance import load_policy
from lmforge.serve.auth import ApiKeys, RateLimiter
from lmforge.serve.metrics import GatewayMetrics
from lmforge.serve.protocol import ChatCompletionRequest, CompletionRequest, error_body
from lmforge.serve.relay import Kind, filter_body, relay_stream
from lmforge.serve.settings import GatewaySettings

log = logging.getLogger("lmforge.gateway")
__all__ = ["GatewaySettings", "create_app", "run_gateway"]
_ENDPOINTS = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/ready", "/metrics"}


def create_app(settings: GatewaySettings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The gateway app; ``transport`` replaces the network (tests pass an ASGI fake of vLLM)."""
    policy = load_policy(settings.policy_path)  # a malformed policy fails here, before serving anything
    keys = ApiKeys(settings.api_key_hashes)
    limiter = RateLimiter(settings.rate_limit_rpm, settings.rate_burst)
    metrics = GatewayMetrics()
    client = httpx.AsyncClient(
        base_url=settings.upstream_url,
        transport=transport,
        timeout=httpx.Timeout(settings.upstream_timeout_s, connect=5.0),
    )
    stamp = {
        "x-lmforge-model": settings.model_name,
        "x-lmforge-model-version": settings.model_version,
        "x-lmforge-policy-version": policy.version,
    }

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202
        yield
        await client.aclose()

    app = FastAPI(title="lmforge gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.metrics, app.state.policy = settings, metrics, policy

    def reject(
        status: int,
        reason: str,
        message: str,
        type_: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        metrics.rejections.labels(reason).inc()
        return JSONResponse(error_body(message, type_, code), status_code=status, headers=headers)

    @app.middleware("http")
    async def stamp_and_measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        began = time.perf_counter()
        endpoint = request.url.path if request.url.path in _ENDPOINTS else "other"
        try:
            response = await call_next(request)
        except Exception:  # never a stack trace to a client
            log.exception("unhandled error on %s", request.url.path)
            response = JSONResponse(
                error_body("internal gateway error", "server_error", "internal_error"), 500
            )
        response.headers.update(stamp)
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - began)
        return response

    def authenticate(request: Request) -> JSONResponse | None:
        key = keys.identify(request.headers.get("authorization"))
        if key is None:
            return reject(
                401,
                "auth",
                "Invalid or missing API key: send 'Authorization: Bearer <key>'.",
                "invalid_request_error",
                "invalid_api_key",
            )
        wait = limiter.try_acquire(key)
        if wait > 0:
            return reject(
                429,
                "rate_limit",
                f"Rate limit reached ({settings.rate_limit_rpm} requests/min); retry in {wait:.1f}s.",
                "requests",
                "rate_limit_exceeded",
                {"Retry-After": str(math.ceil(wait))},
            )
        return None

    async def generate(request: Request, kind: Kind) -> Response:
        began = time.perf_counter()
        if denied := authenticate(request):
            return denied
        body = await _read_limited(request, settings.max_body_bytes)
        if body is None:
            return reject(
                413,
                "body_too_large",
                f"Request body over {settings.max_body_bytes} bytes.",
                "invalid_request_error",
                "request_too_large",
            )
        try:
            payload = json.loads(body)
            model = (ChatCompletionRequest if kind == "chat" else CompletionRequest).model_validate(payload)
        except ValueError as err:  # JSONDecodeError and ValidationError are both ValueErrors
            return reject(400, "bad_request", _describe(err), "invalid_request_error", "invalid_request")
        if model.model != settings.model_name:
            return reject(
                404,
                "model_not_found",
                f"The model {model.model!r} does not exist; this gateway serves {settings.model_name!r}.",
                "invalid_request_error",
                "model_not_found",
            )
        asked = model.requested_tokens()
        if asked is not None and asked > settings.max_tokens_limit:
            return reject(
                400,
                "max_tokens",
                f"max_tokens {asked} is over the limit {settings.max_tokens_limit}.",
                "invalid_request_error",
                "max_tokens_exceeded",
            )
        if asked is None:
            payload["max_tokens"] = settings.max_tokens_limit  # never let a request run to the context length
        path = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
        endpoint = request.url.path

        def count(verdicts: list) -> None:
            for v in verdicts:
                metrics.filter_actions.labels(v.rule, v.action).inc()

        try:
            upstream = await client.send(
                client.build_request("POST", path, json=payload), stream=model.stream
            )
        except httpx.ConnectError:
            return reject(
                503,
                "upstream",
                "The model server is not reachable; try again shortly.",
                "server_error",
                "upstream_unavailable",
            )
        except httpx.HTTPError as err:
            return reject(
                502,
                "upstream",
                f"The model server failed ({type(err).__name__}).",
                "server_error",
                "upstream_error",
            )
        if upstream.status_code != 200:
            return await _upstream_error(upstream, reject)
        if not model.stream:
            body_json = filter_body(upstream.json(), kind, policy, count)
            metrics.ttft.labels(endpoint).observe(time.perf_counter() - began)
            return JSONResponse(body_json)
        first = lambda: metrics.ttft.labels(endpoint).observe(time.perf_counter() - began)  # noqa: E731
        stream = relay_stream(upstream.aiter_lines(), kind, policy, count, first)
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            background=BackgroundTask(upstream.aclose),
            headers={"cache-control": "no-cache"},
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await generate(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await generate(request, "completion")

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        if denied := authenticate(request):
            return denied
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": settings.model_name,
                        "object": "model",
                        "created": 0,
                        "owned_by": "lmforge",
                        "version": settings.model_version,
                        "policy_version": policy.version,
                    }
                ],
            }
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        try:
            r = await client.get("/health", timeout=5.0)
            if r.status_code == 200:
                return JSONResponse({"status": "ready", "upstream": settings.upstream_url})
        except httpx.HTTPError:
            pass
        return reject(
            503, "not_ready", "The model server is not ready.", "server_error", "upstream_unavailable"
        )

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


async def _upstream_error(upstream: httpx.Response, reject: Callable[..., JSONResponse]) -> JSONResponse:
    """vLLM's 4xx (bad sampling params, prompt too long) pass through; its 5xx become a plain 502."""
    await upstream.aread()
    await upstream.aclose()
    if 400 <= upstream.status_code < 500:
        try:
            message = upstream.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = "The model server rejected the request."
        return reject(
            upstream.status_code, "upstream_4xx", str(message), "invalid_request_error", "upstream_rejected"
        )
    return reject(
        502,
        "upstream",
        f"The model server failed (HTTP {upstream.status_code}).",
        "server_error",
        "upstream_error",
    )


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is (or declares to be) over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)


def _describe(err: ValueError) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        return f"Invalid request: {'.'.join(map(str, first['loc']))}: {first['msg']}."
    return f"Invalid JSON body: {err}."


def run_gateway(settings: GatewaySettings, host: str, port: int) -> None:
    """Serve the gateway with uvicorn until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the lmforge gateway in front of a vLLM server.")
    parser.add_argument("--settings", required=True, help="GatewaySettings as JSON (written by serve.stack)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = GatewaySettings.model_validate_json(Path(args.settings).read_text())
    run_gateway(settings, args.host, args.port)


if __name__ == "__main__":
    main()
