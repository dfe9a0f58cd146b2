"""The gateway's Prometheus metrics, in a registry of their own (one per app, so tests do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lmforge_gateway_requests",
            "Requests by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lmforge_gateway_request_seconds",
            "Seconds until the response starts (whole response when not streamed).",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "lmforge_gateway_ttft_seconds",
            "Seconds from request to the first released content (after the filter).",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.filter_actions = Counter(
            "lmforge_gateway_filter_actions",
            "Compliance verdicts by rule and action.",
            ["rule", "action"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "lmforge_gateway_rejections", "Requests refused, by reason.", ["reason"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
