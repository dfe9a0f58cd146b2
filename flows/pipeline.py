"""The whole chain as one Prefect flow: base -> data -> pretrain -> finetune -> distill -> eval -> register ->
rollout.

    lmforge pipeline                 # or: python -m flows.pipeline
    lmforge pipeline --profile small --set pretrain.train.max_steps=2000

At the end it prints what to look at next: the MLflow and Prefect UIs, the endpoint and its API key, and
one real completion that came from vLLM through the gateway.
"""

from __future__ import annotations

import time

from prefect import flow

from flows.common import LEDGER, load
from flows.data import data_flow
from flows.distill import distill_flow
from flows.eval import eval_flow
from flows.register import register_flow
from flows.rollout import rollout_flow
from flows.train import base_flow, finetune_flow, pretrain_flow
from lmforge import envs
from lmforge.ops.locks import work_lock
from lmforge.ops.report import write_report


@flow(name="lmforge-pipeline", log_prints=True)
def pipeline_flow(profile: str = "tiny", overrides: list[str] | None = None, input_path: str | None = None,
                  rollout: bool = True) -> dict:
    """The whole chain under the work directory's lock; every stage is cached by its inputs (a re-run with
    nothing changed runs no stage body); the run report is written whether the run finishes or fails.

    ``input_path``: the user's JSONL instead of the shipped sample. ``rollout=False`` stops after register
    (a nightly retrain that leaves a new version as ``challenger`` for a reviewed rollout)."""
    cfg = load(profile, overrides)
    with work_lock(cfg.paths.work_dir):
        return _run_chain(cfg, profile, overrides, input_path, rollout)


def _run_chain(cfg, profile: str, overrides: list[str] | None, input_path: str | None, rollout: bool) -> dict:
    timings: dict[str, float] = {}
    out: dict[str, dict] = {}
    first = len(LEDGER)
    began = time.perf_counter()
    run = {"profile": profile, "overrides": overrides or [], "status": "running", "seconds": 0.0,
           "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "timings": timings}

    def timed(name, fn, **kwargs):
        print(f"lmforge pipeline: {name} ({len(timings) + 1}/{8 if rollout else 7}) ...")
        start = time.perf_counter()
        out[name] = fn(profile=profile, overrides=overrides, **kwargs)
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"lmforge pipeline: {name} done in {timings[name]} s")
        return out[name]

    try:
        timed("base", base_flow)
        timed("data", data_flow, input_path=input_path)
        timed("pretrain", pretrain_flow)
        timed("finetune", finetune_flow)
        timed("distill", distill_flow)
        timed("eval", eval_flow)
        timed("register", register_flow, replace_champion=False)  # a new version is canaried by the rollout
        if rollout:
            run["rollout"] = _rollout_summary(timed("rollout", rollout_flow))
        run["status"] = "completed"
    except BaseException as err:
        run["status"] = "failed"
        run["error"] = f"{type(err).__name__}: {err}"[:3000]
        raise
    finally:
        run["stages"] = LEDGER[first:]
        run["seconds"] = round(time.perf_counter() - began, 1)
        results = {**out, "rollout": {k: v for k, v in out.get("rollout", {}).items() if k != "api_key"}}
        path = write_report(cfg, {**run, "stage_results": results})  # the API key stays out of files
        print(f"lmforge pipeline: run report {path}")
        _prefect_report(path)
    return {"profile": profile, "overrides": overrides or [], "seconds": timings, "stages": out,
            "ledger": run["stages"], "report": str(path)}


def _rollout_summary(served: dict) -> dict:
    return {k: served.get(k) for k in ("model", "version", "gateway_url", "rollout")}


def _prefect_report(path) -> None:
    from prefect.artifacts import create_markdown_artifact

    try:
        create_markdown_artifact(key="pipeline-report", markdown=path.read_text(), description="lmforge run report")
    except Exception as err:  # outside a flow run there is nowhere to put it; the file is the report
        print(f"lmforge pipeline: report not attached to the Prefect run ({type(err).__name__})")


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
Stages run: {[e['stage'] for e in report['ledger'] if e['status'] == 'ran'] or 'none'}; cached: \
{[e['stage'] for e in report['ledger'] if e['status'] == 'cached'] or 'none'}
Run report: {report['report']}

MLflow UI (models, runs, review dossiers):
  {venv_bin}/mlflow ui --backend-store-uri {cfg.tracking_uri()} --host 127.0.0.1 --port 5000
Prefect UI (flow runs):
  PREFECT_HOME={state / 'prefect'} {venv_bin}/prefect server start --host 127.0.0.1 --port 4200

Endpoint (OpenAI API, filtered): {served['gateway_url']}/v1
API key (shown once):           {served['api_key'] or '(the one printed when these servers started)'}
Model:                          {served['model']} v{served['version']} (alias champion)
Stop the servers:               {venv_bin}/lmforge serve stop

One real request through the gateway:
  prompt:   {served['request']}
  response: {served['response']!r}
  filter:   {served.get('filter_actions', [])}
"""


if __name__ == "__main__":
    run_pipeline_flow("tiny", [])
