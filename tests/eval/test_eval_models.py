"""The eval set is held out and decontaminated, and lm-eval scores real tiny models offline: a random model,
one that repeats a token and one that stops at once each fail the gate with its own reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.config import LMForgeConfig
from lmforge.eval.evalset import build_eval_set, overlapping
from lmforge.eval.harness import TASK_FILES, task_config
from lmforge.eval.stage import run_eval


def test_eval_set_is_held_out_and_decontaminated(eval_cfg: LMForgeConfig) -> None:
    summary = build_eval_set(eval_cfg)
    qa = [json.loads(line) for line in (eval_cfg.paths.eval_set / "qa.jsonl").read_text().splitlines()]
    ifeval = [json.loads(line) for line in (eval_cfg.paths.eval_set / "ifeval.jsonl").read_text().splitlines()]
    train_ids = {json.loads(line)["id"] for line in (eval_cfg.paths.shards / "sft_train.jsonl").open()}
    ids = [r["id"] for r in qa + ifeval]
    assert len(ids) == len(set(ids)) == 10 and not set(ids) & train_ids
    assert "leak" not in ids and summary.contaminated["sft_train"] == 1  # shares an 8-gram with a training pair
    assert summary.heldout_docs >= 1 and summary.contaminated["pretrain_corpus"] == 0
    assert all(r["instruction_id_list"] for r in ifeval)


def test_a_small_split_reuses_qa_prompts_for_instructions(eval_cfg: LMForgeConfig) -> None:
    cfg = eval_cfg.model_copy(update={"eval": eval_cfg.eval.model_copy(update={"qa_items": 8, "ifeval_items": 4})})
    summary = build_eval_set(cfg)
    assert (summary.qa_items, summary.ifeval_items) == (8, 4)  # 10 clean held-out pairs: 2 prompts serve both


def test_overlap_finds_shared_ngrams_only() -> None:
    hits = overlapping({"a": "one two three four five", "b": "six seven eight nine ten"},
                       {"train": iter(["x one two three four y"])}, 4)
    assert hits == {"train": {"a"}}


@pytest.mark.integration  # imports lm-eval (~3 s)
def test_task_yamls_load_with_their_hooks(tmp_path: Path) -> None:
    """lm-eval's private YAML loader (our one adapter to it) still resolves the !function hooks."""
    root = Path(__file__).resolve().parents[2] / "configs" / "eval"
    for name, (yaml_file, data_file) in TASK_FILES.items():
        config = task_config(root / yaml_file, tmp_path / data_file, 7)
        assert config["task"] == name and config["dataset_kwargs"]["data_files"]["test"].endswith(data_file)
        assert callable(config.get("process_results", len))
        assert all(callable(m.get("aggregation")) or isinstance(m.get("aggregation", "mean"), str)
                   for m in config["metric_list"])
        assert config.get("generation_kwargs", {"max_gen_toks": 7})["max_gen_toks"] == 7


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "reason"), [
    ("tiny_model_dir", "below the floor"),
    ("repeating_model_dir", "repeat themselves"),
    ("eos_first_model_dir", "empty"),
])
def test_useless_models_fail_the_gate(eval_cfg: LMForgeConfig, request: pytest.FixtureRequest, fixture: str,
                                      reason: str) -> None:
    report = run_eval(eval_cfg, str(request.getfixturevalue(fixture)), log=False)
    assert not report.passed
    assert any(reason in r for r in report.reasons), report.reasons
    assert {a["task"] for a in report.answers} == {"lmforge_qa", "lmforge_ifeval"}
    assert report.scores["lmforge_heldout_ppl/word_perplexity"] > 1
