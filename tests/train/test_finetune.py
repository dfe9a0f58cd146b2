"""Fine-tuning: full and LoRA runs both export a plain Llama teacher that loads and keeps its lineage."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmforge.artifacts import IncompleteArtifactError
from lmforge.config import LMForgeConfig
from lmforge.train.finetune import run_finetune
from lmforge.train.pretrain import run_pretrain


def test_finetune_needs_a_finished_pretrained_model(stage_cfg: LMForgeConfig) -> None:
    (stage_cfg.paths.models / "pretrain").mkdir(parents=True)
    with pytest.raises(IncompleteArtifactError, match="_COMPLETE"):
        run_finetune(stage_cfg)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True])
def test_finetune_exports_the_teacher(stage_cfg: LMForgeConfig, lora: bool) -> None:
    pretrained = run_pretrain(stage_cfg)
    cfg = stage_cfg.model_copy(update={"finetune": stage_cfg.finetune.model_copy(update={"lora": lora})})
    result = run_finetune(cfg)
    out = cfg.paths.models / "teacher"
    assert result.model_dir == out and (out / "_COMPLETE").is_file()
    model = AutoModelForCausalLM.from_pretrained(out)
    assert type(model).__name__ == "LlamaForCausalLM"  # LoRA merged: no adapter left to serve
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert AutoTokenizer.from_pretrained(out).chat_template
    meta = json.loads((out / "lmforge.json").read_text())
    assert meta["parent_run"] == pretrained.run_id and meta["config"]["lora"] is lora
    trainable, total = result.metrics["trainable_parameters"], result.metrics["parameters"]
    assert (trainable < total) if lora else (trainable == total)
    assert result.metrics["sft_val_loss"] > 0
