"""Distillation flow: KD student and no-KD baseline from the fine-tuned teacher, then the gate.

    python -m flows.distill
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import load, summary
from flows.train import lineage_tags


# A failed gate raises GateFailed with the measured figures; retrying would not change the verdict.
@task(name="distill", cache_policy=NO_CACHE, retries=0)
def distill_task(cfg, tags: dict[str, str]):
    from lmforge.distill.stage import run_distill

    return run_distill(cfg, tags=tags)


@flow(name="lmforge-distill", log_prints=True)
def distill_flow(profile: str = "tiny", overrides: list[str] | None = None, teacher_run: str = "") -> dict:
    cfg = load(profile, overrides)
    tags = lineage_tags(cfg) | {"lmforge.config_hash": cfg.distill.digest(), "lmforge.teacher_run": teacher_run}
    return summary(distill_task(cfg, tags))


if __name__ == "__main__":
    print(distill_flow())
