"""Quantize flow: the served role's champion -> a W8A8 and a W4A16 version, each gated on quality retention.

    python -m flows.quantize

Not part of the pipeline flow: run it after a champion exists; each version that passes becomes the
challenger, which ``lmforge rollout`` canaries against the champion like any other.
"""

from __future__ import annotations

from prefect import flow

from flows.common import load, run_stage, stage_task
from lmforge.ops.stages import dvc_stages


@stage_task("quantize", stages=dvc_stages("quantize"), extra=("tracking_uri",))
def quantize_task(cfg, tracking_uri: str):
    from lmforge.quantize.stage import run_quantize

    return run_quantize(cfg)


@flow(name="lmforge-quantize", log_prints=True)
def quantize_flow(profile: str = "tiny", overrides: list[str] | None = None) -> list[dict]:
    cfg = load(profile, overrides)
    results = run_stage(quantize_task, cfg, cfg.tracking_uri())
    return [{"method": r.method, "version": r.version, "retention": round(r.retention, 4)} for r in results]


if __name__ == "__main__":
    print(quantize_flow())
