"""The whole chain through Prefect on the tiny profile: the same code path as `make run`.

It runs every real tool (Great Expectations, Lightning, MLflow, vLLM, the gateway) with fewer steps, then
checks what a user would: a champion in the registry and a completion from vLLM through the gateway.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]  # whole runs


def test_pipeline_end_to_end(prefect_harness, free_port, tmp_path: Path) -> None:
    from flows.pipeline import next_steps, pipeline_flow
    from lmforge.serve.stack import stop_stack

    overrides = [
        f"work_dir={tmp_path / 'run'}",
        "registry.model_prefix=smoke",
        f"serve.gateway_port={free_port()}",
        f"serve.vllm_port={free_port()}",
    ]
    from lmforge.config import load_config

    cfg = load_config("tiny", overrides)
    try:
        report = pipeline_flow(profile="tiny", overrides=overrides)
        served = report["stages"]["rollout"]
        assert served["response"].strip(), "vLLM answered nothing through the gateway"
        assert served["served_by"] == cfg.model_name("student")

        champion = MlflowClient().get_model_version_by_alias(cfg.model_name("student"), "champion")
        assert str(champion.version) == served["version"]
        assert champion.tags["lmforge.gate.data"] == "passed"
        assert champion.tags["lmforge.gate.distill"] == "passed"

        denied = httpx.post(f"{served['gateway_url']}/v1/completions", json={"model": "x", "prompt": "hi"})
        assert denied.status_code == 401
        text = next_steps(report)
        assert served["api_key"] in text and "mlflow ui" in text and "prefect server start" in text
        assert (cfg.paths.reports / "pipeline.json").is_file()
        assert served["api_key"] not in (cfg.paths.reports / "pipeline.json").read_text()

        # A re-run with nothing changed executes no stage body and keeps the running endpoint.
        again = pipeline_flow(profile="tiny", overrides=overrides)
        assert {e["status"] for e in again["ledger"]} == {"cached"} and len(again["ledger"]) == 11
        assert again["stages"]["rollout"]["version"] == served["version"]
        assert "Cached: base, ingest, clean, validate" in (cfg.paths.reports / "pipeline.md").read_text()

        # One changed section re-runs that stage and what depends on it; the new student is canaried.
        changed = pipeline_flow(profile="tiny", overrides=[*overrides, "finetune.train.lr=0.002"])
        ran = [e["stage"] for e in changed["ledger"] if e["status"] == "ran"]
        assert ran == ["finetune", "distill", "eval", "register"]
        assert changed["stages"]["finetune"]["run_id"] != report["stages"]["finetune"]["run_id"]
        outcome = changed["stages"]["rollout"]["rollout"]
        assert outcome["decision"] in ("promote", "rollback"), outcome
        assert outcome["challenger"] == str(int(served["version"]) + 1)
    finally:
        stop_stack(cfg)
