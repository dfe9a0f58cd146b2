"""The gateway's outermost layer: stamp, count and time every response, and never show a stack trace.

    app.add_middleware(StampAndMeasure, stamp=lambda: router.champion.stamp(model), metrics=metrics,
                       endpoints={"/v1/completions", ...})

Every response gets the headers of ``stamp()`` that it does not carry already (a generation response names
the arm that answered it), is counted by endpoint and status, and its seconds until the response starts are
observed; a request whose key was identified (``request.state.key``) is logged by the key's name, never its
secret. An exception before the response starts becomes an OpenAI-style 500.

Plain ASGI, not ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs the rest of the app in a
task of its own and passes every body chunk of a stream across a memory channel between two tasks, which
cost the gateway about a third of its CPU per request (see benchmarks/README.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmforge.serve.metrics import GatewayMetrics
from lmforge.serve.protocol import error_body

log = logging.getLogger("lmforge.gateway")


class StampAndMeasure:
    def __init__(self, app: ASGIApp, stamp: Callable[[], dict[str, str]], metrics: GatewayMetrics,
                 endpoints: Collection[str]) -> None:
        self.app, self.stamp, self.metrics, self.endpoints = app, stamp, metrics, endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in self.endpoints else "other"
        started = False

        async def stamped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in self.stamp().items():
                    headers.setdefault(name, value)
                seconds = time.perf_counter() - began
                self.metrics.requests.labels(endpoint, str(message["status"])).inc()
                self.metrics.latency.labels(endpoint).observe(seconds)
                if key := scope.get("state", {}).get("key"):  # set by the endpoint as request.state.key
                    log.info("key=%s %s %s %d %.3fs", key.name, scope["method"], endpoint, message["status"], seconds)
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        except Exception:
            if started:
                raise  # too late for a clean answer: the server drops the connection
            log.exception("unhandled error on %s", path)
            error = JSONResponse(error_body("internal gateway error", "server_error", "internal_error"), 500)
            await error(scope, receive, stamped)
