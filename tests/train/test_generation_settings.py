"""A version's sampling defaults: profile section -> generation_config.json -> OpenAI fields, vLLM flags, card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import GenerationConfig

from lmforge.config import GenerationSettings, ServeConfig, load_config
from lmforge.generation import apply_generation_settings, sampling_defaults, vllm_overrides
from lmforge.registry.review import ComplianceReport, model_card
from lmforge.serve.engine import VLLMEngine


def _saved(tmp_path: Path, settings: GenerationSettings) -> Path:
    config = apply_generation_settings(GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=1), settings)
    config.save_pretrained(tmp_path)  # HF validates strictly on save: greedy must carry no sampling knobs
    return tmp_path


def test_greedy_default_is_greedy_for_hf_and_vllm(tmp_path: Path) -> None:
    model_dir = _saved(tmp_path, load_config("tiny").generation)
    hf = json.loads((model_dir / "generation_config.json").read_text())
    assert hf["do_sample"] is False and "temperature" not in hf and hf["max_new_tokens"] == 256
    assert sampling_defaults(model_dir) == {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0,
                                            "max_tokens": 256}
    assert vllm_overrides(model_dir) == {"temperature": 0.0}  # vLLM ignores do_sample and would sample at 1.0
    cmd = VLLMEngine(model_dir, ["m"], ServeConfig(), 8123, tmp_path / "log").command()
    assert json.loads(cmd[cmd.index("--override-generation-config") + 1]) == {"temperature": 0.0}
    assert "--override-generation-config" not in VLLMEngine(model_dir, ["m"], ServeConfig(generation_config="vllm"),
                                                            8123, tmp_path / "log").command()


def test_sampling_settings_round_trip(tmp_path: Path) -> None:
    settings = GenerationSettings(temperature=0.7, top_p=0.9, top_k=40, repetition_penalty=1.2, max_tokens=64,
                                  stop=["\nUser:"])
    model_dir = _saved(tmp_path, settings)
    assert GenerationConfig.from_pretrained(model_dir).to_diff_dict()["temperature"] == 0.7  # what vLLM reads
    assert sampling_defaults(model_dir) == {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "repetition_penalty": 1.2,
                                            "max_tokens": 64, "stop": ["\nUser:"]}
    assert vllm_overrides(model_dir) == {}
    engine = VLLMEngine(model_dir, ["m"], ServeConfig(), 8123, tmp_path / "log")
    assert engine.settings()["generation_defaults"]["top_k"] == 40
    assert sampling_defaults(tmp_path / "missing") == {} and vllm_overrides(tmp_path / "missing") == {}


def test_settings_are_validated_and_overridable() -> None:
    assert load_config("tiny", ["generation.temperature=0.8", "generation.stop=['###']"]).generation.stop == ["###"]
    with pytest.raises(ValueError):
        GenerationSettings(top_p=0)
    with pytest.raises(ValueError):
        GenerationSettings(temperature=-1)


def test_model_card_shows_generation_defaults() -> None:
    card = model_card("m", "student", {}, {}, [], ComplianceReport("1", 0, 0, 0, {}), {},
                      {"temperature": 0.0, "max_tokens": 256, "stop": ["\nUser:"]})
    assert "## Generation defaults" in card and "| max_tokens | `256` |" in card and '`["\\nUser:"]`' in card
