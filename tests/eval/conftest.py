"""Fixtures of the eval tests: a small data-stage output to cut an eval set from, and known-bad tiny models.

The bad models are built in code from the shared tiny Llama: one that answers one token forever, one that
ends every answer at once (EOS first); ``tiny_model_dir`` itself is the randomly initialised one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from quality_cases import write_data_stage

from lmforge.artifacts import atomic_dir
from lmforge.config import LMForgeConfig, load_config
from lmforge.eval.known_bad import force_token


@pytest.fixture
def eval_cfg(tmp_path: Path) -> LMForgeConfig:
    work = tmp_path / "work"
    write_data_stage(work)
    return load_config("tiny", overrides=eval_overrides(work))


def eval_overrides(work: Path) -> list[str]:
    """A small, fast eval of the fixture data under ``work``."""
    return [f"work_dir={work}", "data.val_fraction=0.5", "eval.qa_items=6", "eval.ifeval_items=4",
            "eval.ppl_docs=2", "eval.ppl_chars=300", "eval.max_new_tokens=12", "eval.decontam_ngram=8",
            "eval.batch_size=8"]


def _constant_model(source: Path, out: Path, token_id: int) -> Path:
    """A copy of the tiny model whose greedy choice is always ``token_id``."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(source)
    force_token(model, token_id)
    with atomic_dir(out, {"kind": "test-fixture"}) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(source).save_pretrained(tmp)
    return out


@pytest.fixture(scope="session")
def repeating_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    token = AutoTokenizer.from_pretrained(tiny_model_dir).encode(" harbor", add_special_tokens=False)[0]
    return _constant_model(tiny_model_dir, tmp_path_factory.mktemp("bad") / "repeats", token)


@pytest.fixture(scope="session")
def eos_first_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(tiny_model_dir).eos_token_id
    return _constant_model(tiny_model_dir, tmp_path_factory.mktemp("bad") / "eos_first", eos)
