"""``lmforge eval`` prints scores and the verdict, exits 1 with the reason when the gate fails, and leaves the
scores and every answer in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import eval_overrides
from mlflow import MlflowClient

from lmforge import cli
from lmforge.config import LMForgeConfig


@pytest.mark.integration
@pytest.mark.slow
def test_eval_refuses_a_model_that_stops_at_once(eval_cfg: LMForgeConfig, eos_first_model_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    sets = [arg for o in eval_overrides(eval_cfg.paths.work_dir) for arg in ("--set", o)]
    code = cli.main(["eval", "--model", str(eos_first_model_dir), *sets])
    out, err = capsys.readouterr()
    assert code == 1
    reason = err.strip().splitlines()[-1]  # above it: lm-eval's progress bars
    assert reason.startswith("lmforge eval: QualityGateFailed: ") and "of answers are empty" in reason
    printed = json.loads(out[out.index("{"):])
    assert printed["scores"]["degeneracy/empty_share"] == 1.0 and printed["verdict"].startswith("failed")

    client = MlflowClient(tracking_uri=eval_cfg.tracking_uri())
    run = client.get_run(printed["mlflow_run"])
    assert run.data.metrics["degeneracy/empty_share"] == 1.0 and "score" in run.data.metrics
    assert run.data.tags["lmforge.gate.quality"].startswith("failed")
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "eval/answers.json")).read_text())
    assert len(table["data"]) == 10 and "answer" in table["columns"]
