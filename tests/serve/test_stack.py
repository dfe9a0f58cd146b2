"""Stack bookkeeping without vLLM: status and stop on a missing or stale record, refusals before launch."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.serve.engine import EngineError
from lmforge.serve.stack import stack_status, start_stack, state_path, stop_stack


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
