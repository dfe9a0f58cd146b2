"""The gateway's Prometheus metrics, in a registry of their own (one per app, so tests do not collide), and
those the vLLM supervisors write to files (``TextfileCollector``), read at each scrape.

``serve_metrics`` serves them on a port of their own (``serve.metrics_port``), in a thread beside the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from lmforge.serve.routing import Observation

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    def __init__(self, textfile_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        if textfile_dir is not None:
            self.registry.register(TextfileCollector(textfile_dir))
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
        self.key_requests = Counter(
            "lmforge_gateway_key_requests",
            "Requests with a valid key, by the key's name and outcome (allowed, rate_limited, limit_unknown).",
            ["key", "outcome"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "lmforge_gateway_rejections", "Requests refused, by reason.", ["reason"], registry=self.registry
        )
        # Per arm (champion / challenger) of a rollout; shadow copies count under their arm, shadow="true".
        self.arm_requests = Counter(
            "lmforge_gateway_arm_requests",
            "Routed generation requests by arm, model version, shadow copy or not, and outcome (ok, error).",
            ["arm", "version", "shadow", "outcome"],
            registry=self.registry,
        )
        self.arm_seconds = Histogram(
            "lmforge_gateway_arm_seconds",
            "Seconds from sending upstream to the last byte of the (filtered) answer, by arm.",
            ["arm", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.arm_violations = Counter(
            "lmforge_gateway_arm_violations",
            "Answers the compliance filter acted on (redact, block or flag), by arm.",
            ["arm", "version"],
            registry=self.registry,
        )

    def observe_arm(self, obs: Observation) -> None:
        shadow = "true" if obs.mirrored else "false"
        self.arm_requests.labels(obs.arm, obs.version, shadow, "ok" if obs.ok else "error").inc()
        self.arm_seconds.labels(obs.arm, obs.version).observe(obs.seconds)
        if obs.verdicts:
            self.arm_violations.labels(obs.arm, obs.version).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve_metrics(metrics: GatewayMetrics, host: str, port: int) -> WSGIServer:
    """Serve ``metrics`` at http://host:port/metrics from a daemon thread; ``.shutdown()`` stops it."""
    server, _thread = start_http_server(port, host, registry=metrics.registry)
    return server


class TextfileCollector(Collector):
    """The metrics in ``directory/*.prom`` (Prometheus text format), families of the same name merged: each
    supervised vLLM writes one file with the same families, labelled by server."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for path in sorted(self.directory.glob("*.prom")):
            try:
                text = path.read_text()
            except OSError:
                continue  # its supervisor removed it meanwhile
            for family in text_string_to_metric_families(text):
                merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                merged.samples += family.samples
        yield from families.values()
