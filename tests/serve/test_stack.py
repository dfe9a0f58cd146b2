"""Stack bookkeeping without vLLM: status and stop on a missing or stale record, refusals before launch, the
challenger's port and record, the admin key file, the previous champion kept warm after a switch."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.serve.engine import EngineError
from lmforge.serve.handover import adopt_engine, forget_previous, warm_previous
from lmforge.serve.settings import GatewaySettings
from lmforge.serve.stack import (
    _write_secret,
    admin_key,
    admin_key_path,
    challenger_port,
    champion_port,
    gateway_settings_path,
    record_challenger,
    stack_status,
    start_stack,
    state_path,
    stop_stack,
    supervisor_dir,
)


def test_status_and_stop_without_a_stack() -> None:
    cfg = load_config("tiny", ["profile=nostack"])
    assert stack_status(cfg) == {"profile": "nostack", "running": False}
    assert stop_stack(cfg) == {"profile": "nostack", "stopped": []}


def test_stop_never_signals_a_reused_pid() -> None:
    cfg = load_config("tiny", ["profile=stale"])
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        state_path(cfg).parent.mkdir(parents=True, exist_ok=True)
        state_path(cfg).write_text(json.dumps({"gateway_url": "http://127.0.0.1:9", "pids": {
            "vllm": bystander.pid, "gateway": bystander.pid}}))
        assert stack_status(cfg)["running"] is False
        assert stop_stack(cfg)["stopped"] == [] and bystander.poll() is None
        assert not state_path(cfg).exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_start_refuses_without_keys_or_with_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = load_config("tiny", ["profile=busy", f"serve.vllm_port={port}"])
        with pytest.raises(ValueError, match="API key"):
            start_stack(cfg, tmp_path, "m", "1", [])
        with pytest.raises(EngineError, match=f"port {port}"):
            start_stack(cfg, tmp_path, "m", "1", ["k"])


def test_challenger_takes_the_other_vllm_port_and_they_alternate() -> None:
    cfg = load_config("tiny", ["profile=ports", "serve.vllm_port=9100"])
    assert challenger_port(cfg, champion_port(cfg)) == 9101  # no stack: the champion will take vllm_port
    assert challenger_port(cfg, 9101) == 9100  # after a promotion the champion lives on the challenger port
    custom = load_config("tiny", ["profile=ports", "serve.vllm_port=9100", "serve.challenger_port=9200"])
    assert challenger_port(custom, 9100) == 9200 and challenger_port(custom, 9200) == 9100


def test_a_recorded_challenger_is_stopped_with_the_stack_and_its_admin_key_removed() -> None:
    cfg = load_config("tiny", ["profile=withchallenger"])
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "vllm"], start_new_session=True)
    try:
        state_path(cfg).parent.mkdir(parents=True, exist_ok=True)
        state_path(cfg).write_text(json.dumps({"gateway_url": "http://127.0.0.1:9", "pids": {}}))
        _write_secret(admin_key_path(cfg), "lmf-admin-x")
        assert admin_key(cfg) == "lmf-admin-x" and admin_key_path(cfg).stat().st_mode & 0o777 == 0o600
        record_challenger(cfg, fake.pid)
        assert json.loads(state_path(cfg).read_text())["pids"] == {"challenger": fake.pid}
        assert stack_status(cfg)["running"] is False  # a challenger alone is not a serving stack
        assert stop_stack(cfg)["stopped"] == ["challenger"]
        assert fake.wait(timeout=10) is not None and not admin_key_path(cfg).exists()
        with pytest.raises(LookupError, match="lmforge serve"):
            admin_key(cfg)
    finally:
        fake.kill()
        fake.wait()


def test_a_switched_champion_keeps_the_old_one_warm_until_switched_back_or_stopped() -> None:
    cfg = load_config("tiny", ["profile=warm"])
    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "vllm"], start_new_session=True)
                for _ in range(2)]
    old, new = (p.pid for p in sleepers)
    try:
        state_path(cfg).parent.mkdir(parents=True, exist_ok=True)
        state_path(cfg).write_text(json.dumps({"gateway_url": "http://127.0.0.1:9", "vllm_url": "http://127.0.0.1:9100",
                                               "version": "1", "pids": {"vllm": old}}))
        settings = GatewaySettings(upstream_url="http://127.0.0.1:9100", model_name="m", model_version="1",
                                   policy_path=Path("configs/policy.yaml"), api_key_hashes=["0" * 64])
        gateway_settings_path(cfg).write_text(settings.model_dump_json())
        expiry = supervisor_dir(cfg) / "vllm-9100.expires"

        assert adopt_engine(cfg, "http://127.0.0.1:9101", new, "2") is False  # kept warm, not stopped
        previous = warm_previous(cfg)
        assert previous is not None and (previous["pid"], previous["version"]) == (old, "1")
        assert 290 < float(expiry.read_text()) - time.time() <= 300.01  # its supervisor retires it then (ms written)
        written = json.loads(gateway_settings_path(cfg).read_text())
        assert (written["upstream_url"], written["model_version"]) == ("http://127.0.0.1:9101", "2")

        forget_previous(cfg, stop=False)  # a rollback takes the warm one back: its retirement is cancelled
        record_challenger(cfg, old)
        assert not expiry.exists() and warm_previous(cfg) is None
        adopt_engine(cfg, "http://127.0.0.1:9100", old, "1")
        assert warm_previous(cfg)["pid"] == new and stack_status(cfg)["pids"] == {"vllm": old, "previous": new}
        assert set(stop_stack(cfg)["stopped"]) == {"previous", "vllm"}
        assert all(p.wait(timeout=10) is not None for p in sleepers)
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
