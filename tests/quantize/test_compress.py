"""Quantisation with compressed-tensors on a tiny Llama built in code: the format vLLM reads, reloaded by HF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from lmforge.config import ModelConfig
from lmforge.quantize.compress import QuantizeError, quantize_model
from lmforge.serve.engine import quantization_method
from lmforge.train.model import build_model

pytestmark = pytest.mark.slow  # the first import of compressed-tensors takes ~10 s on a busy machine


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=128,
                                    max_seq_len=64), 96, 0, 0, 1)
    out = tmp_path_factory.mktemp("parent")
    model.save_pretrained(out)
    return out


@pytest.mark.parametrize("method, stored, bound", [("w8a8", "weight", 0.05), ("w4a16", "weight_packed", 0.5)])
def test_quantised_dir_is_compressed_tensors_and_close_to_its_parent(
        parent: Path, tmp_path: Path, method: str, stored: str, bound: float) -> None:
    out = quantize_model(parent, tmp_path / method, method, group_size=32, meta={"parent": "v1"})
    quantization = json.loads((out / "config.json").read_text())["quantization_config"]
    assert quantization["quant_method"] == "compressed-tensors" and quantization_method(out) == "compressed-tensors"
    assert quantization["ignore"] == ["lm_head"] and (out / "_COMPLETE").is_file()
    weights = load_file(out / "model.safetensors")
    q_proj = weights[f"model.layers.0.self_attn.q_proj.{stored}"]
    assert q_proj.dtype == (torch.int8 if method == "w8a8" else torch.int32)
    assert json.loads((out / "lmforge.json").read_text()) == {"parent": "v1", "quantization": method}
    ids = torch.arange(16).unsqueeze(0)  # (1, T)
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(parent).eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()(ids).logits
    assert (got - want).abs().max() / want.abs().max() < bound  # int4 RTN moves logits more than int8


def test_group_size_must_divide_every_width(parent: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizeError, match="not a multiple of quantize.group_size 48"):
        quantize_model(parent, tmp_path / "q", "w4a16", group_size=48)
    with pytest.raises(QuantizeError, match="unknown quantisation method"):
        quantize_model(parent, tmp_path / "q", "w2")
