"""Keep one server running: restart it when it dies, with backoff, and leave no process of a dead one behind.

    python -m lmforge.serve.supervisor --name 8100 --health-url http://127.0.0.1:8100/health \
        --metrics-file M.prom --expiry-file E.expires -- python -m vllm.entrypoints.openai.api_server ...

The stack starts each vLLM through this (``VLLMEngine(..., supervisor_dir=...)``), so a vLLM killed with
``kill -9`` comes back by itself. The server runs in a process group of its own and gets SIGTERM if the
supervisor dies; when the server exits, whatever is left in its group (vLLM's ``VLLM::EngineCore``, which
outlives a killed API server with all its memory) is stopped before the next start. Restarts wait
``backoff_s`` doubling up to ``backoff_max_s`` while the server keeps dying within ``stable_s`` of its start.
A server that dies before it was ever healthy is not restarted: the supervisor exits with its code (a model
that cannot load is not a crash to retry). SIGTERM stops the server (its whole group) and then the supervisor.

Each restart is logged (the supervisor's output is the server's log) and counted in Prometheus metrics,
written in the textfile format to ``--metrics-file`` (the gateway serves them on its ``/metrics``):
``lmforge_vllm_restarts_total``, ``lmforge_vllm_up``, ``lmforge_vllm_last_exit_code``.

``--expiry-file``: when it holds a Unix time that has passed, the supervisor waits until the server has no
request running or waiting (its ``/metrics``; a draining timeout bounds it) and stops for good. The stack writes
it to keep a previous champion warm for a grace period after a promotion (``retire_at``).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from lmforge.serve.engine import die_with_parent, stop_process_group

log = logging.getLogger("lmforge.supervisor")
POLL_S = 0.5
DRAIN_TIMEOUT_S = 300.0  # the gateway's upstream timeout: no request to a retired server runs longer
_BUSY = ("vllm:num_requests_running", "vllm:num_requests_waiting")


@dataclass(frozen=True)
class Options:
    name: str  # the server's label in the metrics (the stack uses its port)
    health_url: str
    metrics_file: Path
    expiry_file: Path | None = None
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    stable_s: float = 60.0  # up this long: the next death starts the backoff over
    stop_timeout_s: float = 15.0  # SIGTERM to SIGKILL of the server's group


def main(argv: list[str] | None = None) -> int:
    options, command = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per health check
    return Supervisor(command, options).run()


class Supervisor:
    def __init__(self, command: list[str], options: Options) -> None:
        self.command, self.options = command, options
        self.stopping = False
        self.restart_count = 0
        self.registry = CollectorRegistry()
        labels = ["server"]
        self.restarts = Counter("lmforge_vllm_restarts", "Restarts of a server that died.", labels,
                                registry=self.registry).labels(options.name)
        self.up = Gauge("lmforge_vllm_up", "1 while the server process runs.", labels,
                        registry=self.registry).labels(options.name)
        self.last_exit = Gauge("lmforge_vllm_last_exit_code", "Exit code of the last death (-9: SIGKILL).", labels,
                               registry=self.registry).labels(options.name)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        deaths = 0  # consecutive deaths within stable_s of a start
        ever_healthy = False
        code = 0
        while not self.stopping:
            child = self._launch()
            started = time.monotonic()
            code, healthy = self._watch(child)
            ever_healthy |= healthy
            self.up.set(0)
            left = group_members(child.pid)
            stop_process_group(child.pid, timeout=5.0)  # what the dead server left (its engine core)
            if self.stopping:
                break
            self.last_exit.set(code)
            if not ever_healthy:
                log.error("%s exited with %s before it was ever healthy: not restarting", self.options.name, code)
                self._write_metrics()
                return code if code > 0 else 1
            deaths = deaths + 1 if time.monotonic() - started < self.options.stable_s else 1
            delay = min(self.options.backoff_s * 2 ** (deaths - 1), self.options.backoff_max_s)
            self.restart_count += 1
            self.restarts.inc()
            self._write_metrics()
            log.warning("%s (pid %s) died with exit code %s after %.0f s; stopped %d process(es) it left %s; "
                        "restart %d in %.1f s", self.options.name, child.pid, code, time.monotonic() - started,
                        len(left), left, self.restart_count, delay)
            self._sleep(delay)
        self.options.metrics_file.unlink(missing_ok=True)
        if self.options.expiry_file:
            self.options.expiry_file.unlink(missing_ok=True)
        return 0

    def _launch(self) -> subprocess.Popen[bytes]:
        sys.stdout.flush()
        child = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                 preexec_fn=functools.partial(die_with_parent, os.getpid()))
        log.info("started %s: pid %s", self.options.name, child.pid)
        self.up.set(1)
        self._write_metrics()
        return child

    def _watch(self, child: subprocess.Popen[bytes]) -> tuple[int, bool]:
        """Until the child exits (its code) or is stopped; whether it answered its health URL meanwhile."""
        healthy = False
        stop_deadline = None
        while (code := child.poll()) is None:
            if not self.stopping and self._expired():
                log.info("%s: grace period over and no request in flight; stopping for good", self.options.name)
                self.stopping = True
            if self.stopping and stop_deadline is None:
                stop_deadline = time.monotonic() + self.options.stop_timeout_s
                _signal_group(child.pid, signal.SIGTERM)
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                _signal_group(child.pid, signal.SIGKILL)
            if not healthy and _answers(self.options.health_url):
                healthy = True
                log.info("%s is healthy", self.options.name)
            time.sleep(POLL_S)
        return code, healthy

    def _expired(self) -> bool:
        """Past the expiry file's time, and the server idle (or past the draining timeout)."""
        path = self.options.expiry_file
        try:
            at = float(path.read_text()) if path else None
        except (OSError, ValueError):
            return False
        if at is None or time.time() < at:
            return False
        return time.time() > at + DRAIN_TIMEOUT_S or _idle(self.options.health_url.rsplit("/", 1)[0])

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(POLL_S, seconds))

    def _write_metrics(self) -> None:
        self.options.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(self.options.metrics_file), self.registry)  # atomic: a temp file renamed


def retire_at(expiry_file: Path, seconds: float) -> None:
    """Tell the supervisor owning ``expiry_file`` to stop its server ``seconds`` from now (once it is idle)."""
    expiry_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = expiry_file.with_suffix(".tmp")
    tmp.write_text(f"{time.time() + seconds:.3f}")
    tmp.replace(expiry_file)


def restarts(metrics_file: Path) -> int | None:
    """How often the supervisor writing ``metrics_file`` restarted its server (None: no such file)."""
    try:
        text = metrics_file.read_text()
    except OSError:
        return None
    return sum(int(s.value) for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "lmforge_vllm_restarts_total")


def group_members(pgid: int) -> list[int]:
    """The processes in process group ``pgid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _idle(base_url: str) -> bool:
    """No request running or waiting on the vLLM at ``base_url`` (also True when it does not answer)."""
    try:
        r = httpx.get(f"{base_url}/metrics", timeout=5.0)
        families = list(text_string_to_metric_families(r.text)) if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return True
    return sum(s.value for family in families for s in family.samples if s.name in _BUSY) == 0


def parse_args(argv: list[str] | None) -> tuple[Options, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        raise SystemExit("usage: python -m lmforge.serve.supervisor [options] -- COMMAND ...")
    split = argv.index("--")
    p = argparse.ArgumentParser(prog="python -m lmforge.serve.supervisor", description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--health-url", required=True)
    p.add_argument("--metrics-file", required=True, type=Path)
    p.add_argument("--expiry-file", type=Path)
    p.add_argument("--backoff-s", type=float, default=1.0)
    p.add_argument("--backoff-max-s", type=float, default=60.0)
    p.add_argument("--stable-s", type=float, default=60.0)
    args = p.parse_args(argv[:split])
    return Options(args.name, args.health_url, args.metrics_file, args.expiry_file, args.backoff_s,
                   args.backoff_max_s, args.stable_s), argv[split + 1:]


if __name__ == "__main__":
    sys.exit(main())
