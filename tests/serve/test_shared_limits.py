"""Two gateway processes, one real Redis: a key's rate limit holds in total, not once per replica.

The test starts Debian's ``redis-server`` on a free port (no persistence) and two gateways from one settings
file with ``rate_limit_storage: redis://...``; requests alternate between them. ``/v1/models`` is limited like
every API call and needs no vLLM, so none runs here.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from lmforge.serve.auth import hash_key
from lmforge.serve.engine import stop_process_group
from lmforge.serve.keys import create_key
from lmforge.serve.settings import GatewaySettings
from lmforge.serve.stack import _spawn_gateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]
POLICY = Path(__file__).resolve().parents[2] / "configs" / "policy.yaml"
KEY = "lmf-shared-key"
START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (infra/system-deps.sh installs Debian's)")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"redis-server did not answer on port {port} within 10 s") from None
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}"
    client.close()
    proc.terminate()
    proc.wait(timeout=10)


def test_two_gateways_hold_one_limit_in_redis(redis_url: str, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    settings = GatewaySettings(upstream_url="http://127.0.0.1:9", model_name="m", model_version="1",
                               policy_path=POLICY, api_key_hashes=[hash_key(KEY)], keys_file=keys_file,
                               rate_limit_rpm=5, rate_burst=5, rate_limit_storage=redis_url)
    settings_file = tmp_path / "gateway.json"
    settings_file.write_text(settings.model_dump_json())
    ports = [_free_port(), _free_port()]
    logs = [tmp_path / f"gateway-{port}.log" for port in ports]
    procs = [_spawn_gateway(settings_file, "127.0.0.1", port, log) for port, log in zip(ports, logs, strict=True)]
    try:
        urls = [_wait_healthy(*started) for started in zip(ports, procs, logs, strict=True)]
        codes = [httpx.get(f"{urls[i % 2]}/v1/models", headers=_auth(KEY), timeout=10) for i in range(8)]
        assert [r.status_code for r in codes] == [200] * 5 + [429] * 3  # 5 a minute in total, not 5 per gateway
        assert all(int(r.headers["retry-after"]) >= 1 for r in codes[5:])
        alice = create_key(keys_file, "alice", rpm=3)  # made while both run: both pick it up, one shared limit
        time.sleep(1.1)  # keys_reload_s
        codes = [httpx.get(f"{urls[i % 2]}/v1/models", headers=_auth(alice), timeout=10).status_code
                 for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        logged = "".join(log.read_text() for log in logs)
        assert logged.count("key=alice GET /v1/models 200") == 3 and alice not in logged  # by name, not secret
    finally:
        for proc in procs:
            stop_process_group(proc.pid)
            proc.wait(timeout=10)


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> str:
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gateway exited {proc.returncode}: {log.read_text()[-2000:]}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gateway on port {port} not healthy in {START_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
