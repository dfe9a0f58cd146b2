"""Eval flow: score the teacher and the student on the held-out eval set with lm-eval, before registration.

    python -m flows.eval

Writes ``reports/eval_<role>.json`` (scores, the quality gate's verdict, every answer) and an MLflow run per
model; a failed verdict does not fail this stage: registration acts on it (``eval.gate_registration``).
"""

from __future__ import annotations

from prefect import flow

from flows.common import load, run_stage, stage_task


@stage_task("eval", stages=("eval",), extra=("tracking_uri",))
def eval_task(cfg, tracking_uri: str):
    from lmforge.eval.stage import run_eval_stage

    return {role: {"verdict": r.verdict, "scores": r.scores, "run_id": r.run_id}
            for role, r in run_eval_stage(cfg).items()}


@flow(name="lmforge-eval", log_prints=True)
def eval_flow(profile: str = "tiny", overrides: list[str] | None = None) -> dict:
    cfg = load(profile, overrides)
    results = run_stage(eval_task, cfg, cfg.tracking_uri())
    for role, result in results.items():
        print(f"lmforge eval: {role}: score {result['scores'].get('score', 0.0):.3f}, quality gate {result['verdict']}")
    return results


if __name__ == "__main__":
    print(eval_flow())
