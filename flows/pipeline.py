"""The whole chain as one Prefect flow: data -> pretrain -> finetune -> distill -> register -> rollout.

    lmforge pipeline                 # or: python -m flows.pipeline
    lmforge pipeline --profile small --set pretrain.train.max_steps=2000

At the end it prints what to look at next: the MLflow and Prefect UIs, the endpoint and its API key, and
one real completion that came from vLLM through the gateway.
"""

from __future__ import annotations

import time

from prefect import flow

from flows.common import load
from flows.data import data_flow
from flows.distill import distill_flow
from flows.register import register_flow
from flows.rollout import rollout_flow
from flows.train import finetune_flow, pretrain_flow
from lmforge import envs
from lmforge.artifacts import write_json_atomic


@flow(name="lmforge-pipeline", log_prints=True)
def pipeline_flow(profile: str = "tiny", overrides: list[str] | None = None) -> dict:
    cfg = load(profile, overrides)
    timings: dict[str, float] = {}
    out: dict[str, dict] = {}

    def timed(name, fn, **kwargs):
        print(f"lmforge pipeline: {name} ({len(timings) + 1}/6) ...")
        start = time.perf_counter()
        out[name] = fn(profile=profile, overrides=overrides, **kwargs)
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"lmforge pipeline: {name} done in {timings[name]} s")
        return out[name]

    timed("data", data_flow)
    pretrain = timed("pretrain", pretrain_flow)
    finetune = timed("finetune", finetune_flow, parent_run=pretrain.get("run_id", ""))
    timed("distill", distill_flow, teacher_run=finetune.get("run_id", ""))
    timed("register", register_flow)
    timed("rollout", rollout_flow)
    report = {"profile": profile, "overrides": overrides or [], "seconds": timings, "stages": out}
    write_json_atomic(cfg.paths.reports / "pipeline.json", report)
    return report


def run_pipeline_flow(profile: str, overrides: list[str]) -> dict:
    """Run the pipeline flow and print the next steps; used by ``lmforge pipeline``."""
    report = pipeline_flow(profile=profile, overrides=overrides)
    print(next_steps(report))
    return report["seconds"]


def next_steps(report: dict) -> str:
    cfg = load(report["profile"], report["overrides"])
    served = report["stages"]["rollout"]
    state = envs.state_dir()
    venv_bin = envs.project_root() / ".venv" / "bin"
    return f"""
==================== lmforge: pipeline finished ({sum(report['seconds'].values()):.0f} s) ====================
Stage times (s): {report['seconds']}

MLflow UI (models, runs, review dossiers):
  {venv_bin}/mlflow ui --backend-store-uri {cfg.tracking_uri()} --host 127.0.0.1 --port 5000
Prefect UI (flow runs):
  PREFECT_HOME={state / 'prefect'} {venv_bin}/prefect server start --host 127.0.0.1 --port 4200

Endpoint (OpenAI API, filtered): {served['gateway_url']}/v1
API key (shown once):           {served['api_key']}
Model:                          {served['model']} v{served['version']} (alias champion)
Stop the servers:               {venv_bin}/lmforge serve stop

One real request through the gateway:
  prompt:   {served['request']}
  response: {served['response']!r}
  filter:   {served.get('filter_actions', [])}
"""


if __name__ == "__main__":
    run_pipeline_flow("tiny", [])
