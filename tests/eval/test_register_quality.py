"""Registration acts on the quality verdict: a failed gate leaves a version without the challenger alias and
unpromotable; a passing one carries its eval answers beside the champion's in its dossier and model card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from quality_cases import QUESTIONS

from lmforge.config import load_config
from lmforge.registry.promote import PromotionRefused, promote_to_champion
from lmforge.registry.quality import EVAL_ANSWERS, SIDE_BY_SIDE
from lmforge.registry.register import register_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSED = {"data": "passed", "distill": "n/a"}


def eval_report(answers: list[str], verdict: str) -> dict:
    """An eval report as ``lmforge.eval.stage`` writes it."""
    rows = [{"task": "lmforge_qa", "id": f"v{i}", "prompt": q, "answer": a, "reference": ref, "rougeL": 0.5}
            for i, ((q, ref), a) in enumerate(zip(QUESTIONS, answers, strict=True))]
    return {"model": "m", "scores": {"score": 0.5, "degeneracy/empty_share": 0.0}, "verdict": verdict,
            "passed": verdict == "passed", "reasons": [], "answers": rows,
            "eval_set": {"qa_items": len(rows), "ifeval_items": 0, "heldout_docs": 0, "contaminated": {}}}


def test_failed_quality_gate_is_never_a_challenger(tiny_model_dir: Path) -> None:
    cfg = load_config("tiny", ["registry.model_prefix=qgate"])
    failed = "failed: degenerate: 100% of answers are empty (limit 20%)"
    version = register_model(cfg, "student", tiny_model_dir, {}, {**PASSED, "quality": failed},
                             quality=eval_report([""] * len(QUESTIONS), failed), challenger=False)
    client = MlflowClient()
    assert client.get_model_version(version.name, version.version).aliases == []
    with pytest.raises(PromotionRefused, match="gate quality is failed: degenerate"):
        promote_to_champion(cfg, version.name, version.version, by="test", reason="try")


def test_dossier_sets_answers_beside_the_champion(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = load_config("tiny", ["registry.model_prefix=sbs"])
    champion = register_model(cfg, "student", tiny_model_dir, {}, {**PASSED, "quality": "passed"},
                              quality=eval_report([f"old {ref}" for _, ref in QUESTIONS], "passed"))
    promote_to_champion(cfg, champion.name, champion.version, by="test", reason="first")
    candidate = register_model(cfg, "student", tiny_model_dir, {}, {**PASSED, "quality": "passed"},
                               quality=eval_report([f"new {ref}" for _, ref in QUESTIONS], "passed"))
    client = MlflowClient()
    run = client.get_run(candidate.run_id)
    assert run.data.metrics["eval/score"] == 0.5
    answers = json.loads(Path(client.download_artifacts(candidate.run_id, EVAL_ANSWERS, str(tmp_path))).read_text())
    assert len(answers["data"]) == len(QUESTIONS)
    table = json.loads(Path(client.download_artifacts(candidate.run_id, SIDE_BY_SIDE, str(tmp_path))).read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert all(r["candidate"].startswith("new ") and r["champion"].startswith("old ") for r in rows)
    card = client.get_model_version(candidate.name, candidate.version).description
    assert f"champion v{champion.version}" in card and "| new " in card and "| old " in card
