"""The supervisor on a stand-in server (a Python HTTP server that, like vLLM's API server, spawns a helper
process into its group): restart after kill -9 with nothing of the dead one left, no restart of a server that
never became healthy, retirement by the expiry file; and the gateway serving the supervisors' metrics.

The real thing, vLLM killed with kill -9 behind the gateway, is in ``test_integration.py``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lmforge.serve.auth import hash_key
from lmforge.serve.gateway import create_app
from lmforge.serve.settings import GatewaySettings
from lmforge.serve.supervisor import group_members, restarts, retire_at

POLICY = Path(__file__).resolve().parents[2] / "configs" / "policy.yaml"
SERVER = """
import http.server, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # like vLLM's engine core
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""
Start = Callable[..., subprocess.Popen[bytes]]
Until = Callable[..., Any]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _seen_healthy(log: Path, times: int = 1) -> bool:
    """The supervisor has seen its server healthy ``times`` times (one line per start)."""
    return log.read_text().count(" is healthy") >= times


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Start]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*command: str, expiry: bool = False) -> subprocess.Popen[bytes]:
        port = _free_port()
        script = tmp_path / "server.py"
        script.write_text(SERVER)
        cmd = [sys.executable, "-m", "lmforge.serve.supervisor", "--name", str(port),
               "--health-url", f"http://127.0.0.1:{port}/health", "--metrics-file", str(tmp_path / "m.prom"),
               "--backoff-s", "0.1", *(["--expiry-file", str(tmp_path / "e.expires")] if expiry else []), "--",
               *(command or (sys.executable, str(script), str(port)))]
        proc = subprocess.Popen(cmd, stdout=open(tmp_path / "log", "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.port = port  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


pytestmark = pytest.mark.integration  # real processes and signals: 2-10 s each on 2 shared cores


@pytest.mark.slow
def test_a_killed_server_is_restarted_and_leaves_no_process(supervise: Start, tmp_path: Path, until: Until) -> None:
    sup = supervise()
    until(lambda: _seen_healthy(tmp_path / "log"), 20)
    [server] = _children(sup.pid)
    dead_group = until(lambda: len(group_members(server)) == 2 and group_members(server), 20)  # server + helper
    os.kill(server, signal.SIGKILL)
    until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in dead_group), 20)  # the helper went with it
    restarted = until(lambda: [c for c in _children(sup.pid) if c != server], 20)
    until(lambda: _seen_healthy(tmp_path / "log", 2) and _healthy(sup.port), 20)  # type: ignore[attr-defined]
    assert restarts(tmp_path / "m.prom") == 1
    assert "died with exit code -9" in (tmp_path / "log").read_text()

    os.kill(sup.pid, signal.SIGTERM)  # stop: the server and its helper go, then the supervisor
    assert sup.wait(timeout=20) == 0
    assert not group_members(restarted[0]) and not (tmp_path / "m.prom").exists()


def test_a_server_that_never_became_healthy_is_not_restarted(supervise: Start, tmp_path: Path) -> None:
    sup = supervise(sys.executable, "-c", "raise SystemExit(3)")
    assert sup.wait(timeout=20) == 3
    assert "before it was ever healthy: not restarting" in (tmp_path / "log").read_text()
    assert restarts(tmp_path / "m.prom") == 0


@pytest.mark.slow
def test_the_expiry_file_retires_an_idle_server(supervise: Start, tmp_path: Path, until: Until) -> None:
    sup = supervise(expiry=True)
    until(lambda: _seen_healthy(tmp_path / "log"), 20)
    [server] = _children(sup.pid)
    retire_at(tmp_path / "e.expires", 0)  # no vLLM /metrics here: nothing in flight
    assert sup.wait(timeout=20) == 0
    assert not group_members(server) and not (tmp_path / "e.expires").exists()


def test_the_gateway_serves_every_supervisors_metrics(fake_vllm: FastAPI, tmp_path: Path) -> None:
    for port, count in ((8100, 2), (8101, 0)):
        (tmp_path / f"vllm-{port}.prom").write_text(
            "# HELP lmforge_vllm_restarts_total Restarts of a server that died.\n"
            "# TYPE lmforge_vllm_restarts_total counter\n"
            f'lmforge_vllm_restarts_total{{server="{port}"}} {count}.0\n')
    settings = GatewaySettings(upstream_url="http://vllm.test", model_name="m", model_version="1",
                               policy_path=POLICY, api_key_hashes=[hash_key("k")], supervisor_metrics_dir=tmp_path)
    client = TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake_vllm)))
    text = client.get("/metrics", headers={"Authorization": "Bearer k"}).text
    assert 'lmforge_vllm_restarts_total{server="8100"} 2.0' in text
    assert 'lmforge_vllm_restarts_total{server="8101"} 0.0' in text
    assert text.count("# TYPE lmforge_vllm_restarts_total counter") == 1
