"""Stack bookkeeping without vLLM: status and stop on a missing or stale record, refusals before launch, the
challenger's port and record, the admin key file."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.serve.engine import EngineError
from lmforge.serve.stack import (
    _write_secret,
    admin_key,
    admin_key_path,
    challenger_port,
    champion_port,
    record_challenger,
    stack_status,
    start_stack,
    state_path,
    stop_stack,
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
