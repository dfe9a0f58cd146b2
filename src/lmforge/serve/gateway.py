"""The gateway in front of vLLM: API keys, rate limits, request limits, and a compliance filter on every
output (streamed or not). It talks to vLLM over its OpenAI HTTP API only, never importing vllm.

    app = create_app(GatewaySettings(upstream_url="http://127.0.0.1:8100", model_name=..., ...))
    python -m lmforge.serve.gateway --settings gateway.json --host 127.0.0.1 --port 8000

Endpoints: ``/v1/chat/completions``, ``/v1/completions`` (``stream`` or not), ``/v1/models``, ``/health``
(the gateway is up), ``/ready`` (vLLM answers too), ``/metrics`` (Prometheus: behind an API key, open, or on a
port of its own, see ``metrics_port``), and ``/admin/*`` (traffic routing for rollouts, see
``lmforge.serve.admin``). Keys have names (``lmforge.serve.keys``): each request is counted and logged by its
key's name, never its secret, and limited per key (``lmforge.serve.auth.RateLimits``, in memory or Redis).
A rollout puts a challenger vLLM beside the champion and routes a share of requests to it (or mirrors them,
in shadow mode); ``lmforge.serve.routing`` decides per request. Every response carries ``x-lmforge-model``,
``x-lmforge-model-version``, ``x-lmforge-policy-version`` and ``x-lmforge-arm`` of the arm that answered;
every error is OpenAI-style JSON (401, 413, 400, 404, 429 with Retry-After, 502/503 when vLLM is down),
never a stack trace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from lmforge.compliance import load_policy
from lmforge.serve.admin import admin_routes
from lmforge.serve.auth import ApiKeys, RateLimits, RateLimitStorageError
from lmforge.serve.keys import ClientKey, KeyRing
from lmforge.serve.metrics import GatewayMetrics, serve_metrics
from lmforge.serve.middleware import StampAndMeasure
from lmforge.serve.protocol import InvalidRequest, error_body, parse_request
from lmforge.serve.relay import Kind
from lmforge.serve.routing import Arm, Observation, Router
from lmforge.serve.settings import GatewaySettings
from lmforge.serve.transport import AiohttpTransport
from lmforge.serve.upstream import UNAVAILABLE_RETRY_AFTER_S, Forward, answer, context_length, shadow

log = logging.getLogger("lmforge.gateway")
__all__ = ["GatewaySettings", "create_app", "run_gateway"]
_ENDPOINTS = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/ready", "/metrics",
              "/admin/route", "/admin/promote", "/admin/observations"}


def create_app(
    settings: GatewaySettings, transport: httpx.AsyncBaseTransport | None = None, host: str = "127.0.0.1"
) -> FastAPI:
    """The gateway app; ``transport`` replaces the network (tests pass an ASGI fake of vLLM); ``host`` is where
    the metrics port (``settings.metrics_port``) listens."""
    policy = load_policy(settings.policy_path)  # a malformed policy fails here, before serving anything
    keys = KeyRing(settings.keys_file, _static_keys(settings), settings.keys_reload_s)
    admin_keys = ApiKeys(settings.admin_key_hashes)
    limits = RateLimits(settings.rate_limit_storage, settings.rate_limit_rpm, settings.rate_burst)
    metrics = GatewayMetrics(settings.supervisor_metrics_dir)
    # vLLM takes requests only with this key, which only the gateway holds: no client gets around the filter.
    upstream_headers = ({"Authorization": f"Bearer {settings.upstream_key_file.read_text().strip()}"}
                        if settings.upstream_key_file else {})

    def make_client(url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=url, transport=transport or AiohttpTransport(), headers=upstream_headers,
                                 timeout=httpx.Timeout(settings.upstream_timeout_s, connect=5.0))

    router = Router(Arm("champion", settings.upstream_url, settings.model_version, policy,
                        make_client(settings.upstream_url)))
    retired: list[Arm] = []  # arms routed away from; their clients close at shutdown (streams may be in flight)

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202
        metrics_server = serve_metrics(metrics, host, settings.metrics_port) if settings.metrics_port else None
        yield
        if metrics_server is not None:
            metrics_server.shutdown()
        for task in list(router.shadows):
            task.cancel()
        clients = {id(a.client): a.client for a in [router.champion, router.challenger, *retired] if a}
        for client in clients.values():
            await client.aclose()

    app = FastAPI(title="lmforge gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.metrics, app.state.router = settings, metrics, router

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

    def record(obs: Observation) -> None:
        router.ledger.record(obs)
        metrics.observe_arm(obs)

    app.add_middleware(StampAndMeasure, stamp=lambda: router.champion.stamp(settings.model_name), metrics=metrics,
                       endpoints=_ENDPOINTS)

    def identify(request: Request) -> ClientKey | JSONResponse:
        key = keys.identify(request.headers.get("authorization"))
        if key is None:
            return reject(
                401,
                "auth",
                "Invalid or missing API key: send 'Authorization: Bearer <key>'.",
                "invalid_request_error",
                "invalid_api_key",
            )
        request.state.key = key
        return key

    async def authenticate(request: Request) -> JSONResponse | None:
        """401 without a valid key, 429 over its rate limit, else None (and the key's use is counted)."""
        key = identify(request)
        if isinstance(key, JSONResponse):
            return key
        rpm = key.rpm or settings.rate_limit_rpm
        try:
            wait = await limits.acquire(key.name, key.rpm)
        except RateLimitStorageError as err:  # never serve unlimited: say so and let the client retry
            log.error("%s", err)
            metrics.key_requests.labels(key.name, "limit_unknown").inc()
            return reject(503, "rate_limit_storage", "The rate limiter is unavailable; try again shortly.",
                          "server_error", "rate_limit_unavailable", {"Retry-After": "1"})
        if wait > 0:
            metrics.key_requests.labels(key.name, "rate_limited").inc()
            return reject(
                429,
                "rate_limit",
                f"Rate limit reached ({rpm} requests/min); retry in {wait:.1f}s.",
                "requests",
                "rate_limit_exceeded",
                {"Retry-After": str(math.ceil(wait))},
            )
        metrics.key_requests.labels(key.name, "allowed").inc()
        return None

    async def generate(request: Request, kind: Kind) -> Response:
        began = time.perf_counter()
        if denied := await authenticate(request):
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
            model, payload = parse_request(body, kind)
        except InvalidRequest as err:
            return reject(400, "bad_request", str(err), "invalid_request_error", "invalid_request")
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
        primary, mirror = router.pick()
        defaults = settings.generation_defaults  # the served version's; vLLM applies its sampling ones itself
        if asked is None:
            fits = await _default_max_tokens(settings.max_tokens_limit, primary, mirror)
            payload["max_tokens"] = min(defaults.get("max_tokens", fits), fits)
        if defaults.get("stop") and payload.get("stop") is None:
            payload["stop"] = defaults["stop"]
        path = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
        fwd = Forward(path, payload, kind, model.stream)
        endpoint = request.url.path

        def count(verdicts: list) -> None:
            for v in verdicts:
                metrics.filter_actions.labels(v.rule, v.action).inc()

        def first_text() -> None:
            metrics.ttft.labels(endpoint).observe(time.perf_counter() - began)

        if mirror is not None:
            task = asyncio.create_task(shadow(mirror, fwd, record))
            router.shadows.add(task)  # a reference, or the task may be collected mid-flight
            task.add_done_callback(router.shadows.discard)
        return await answer(primary, fwd, settings.model_name, record, count, reject, first_text)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await generate(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await generate(request, "completion")

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        if denied := await authenticate(request):
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
                        "version": router.champion.version,
                        "policy_version": router.champion.policy.version,
                    }
                ],
            }
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        champion = router.champion
        try:
            r = await champion.client.get("/health", timeout=5.0)
            if r.status_code == 200:
                return JSONResponse({"status": "ready", "upstream": champion.upstream_url})
        except httpx.HTTPError:
            pass
        return reject(503, "not_ready", "The model server is not ready.", "server_error", "upstream_unavailable",
                      {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        if settings.metrics_port:
            return reject(404, "metrics", f"Metrics are served on port {settings.metrics_port}.",
                          "invalid_request_error", "not_found")
        if not settings.metrics_open and isinstance(denied := identify(request), JSONResponse):
            return denied
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # A challenger without a policy of its own is filtered with the champion's (the current one, after promotions).
    app.include_router(admin_routes(router, admin_keys, lambda: router.champion.policy, make_client,
                                    retired.append, reject))
    return app


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


async def _default_max_tokens(limit: int, *arms: Arm | None) -> int:
    """max_tokens for a request that names none: vLLM refuses one above its context length, and clamps the
    rest to the room the prompt leaves, so min(limit, context length) gets min(limit, room left)."""
    lengths = [await context_length(arm) for arm in arms if arm is not None]
    return min([limit, *(n for n in lengths if n)])


def _static_keys(settings: GatewaySettings) -> list[tuple[str, str]]:
    """Names of the keys the gateway starts with: ``default`` (``default-2``... for more) and ``admin``."""
    named = [("default" if i == 1 else f"default-{i}", h) for i, h in enumerate(settings.api_key_hashes, 1)]
    return [*named, *(("admin", h) for h in settings.admin_key_hashes)]


def run_gateway(settings: GatewaySettings, host: str, port: int) -> None:
    """Serve the gateway with uvicorn until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(create_app(settings, host=host), host=host, port=port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the lmforge gateway in front of a vLLM server.")
    parser.add_argument("--settings", required=True, help="GatewaySettings as JSON (written by serve.stack)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # else a line per request sent to vLLM
    settings = GatewaySettings.model_validate_json(Path(args.settings).read_text())
    run_gateway(settings, args.host, args.port)


if __name__ == "__main__":
    main()
