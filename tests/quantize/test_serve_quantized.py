"""vLLM's CPU backend serves both quantised formats (real vLLM; CPU and flags named on failure)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from lmforge.config import ServeConfig
from lmforge.quantize.compress import quantize_model
from lmforge.serve.engine import VLLMEngine

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("method", ["w8a8", "w4a16"])
def test_vllm_serves_the_quantised_model(tiny_model_dir: Path, tmp_path: Path, method: str) -> None:
    model = quantize_model(tiny_model_dir, tmp_path / method, method, group_size=32)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = VLLMEngine(model, ["q"], ServeConfig(max_model_len=128), port, tmp_path / "vllm.log")
    assert engine.dtype == "bfloat16"  # the CPU int8/int4 kernels refuse fp32 activations
    with engine:
        engine.wait_ready(timeout=900)
        r = httpx.post(f"{engine.base_url}/v1/completions", timeout=120,
                       json={"model": "q", "prompt": "The harbor", "max_tokens": 4, "ignore_eos": True})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
