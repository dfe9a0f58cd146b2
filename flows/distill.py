"""Distillation flow: KD student and no-KD baseline from the fine-tuned teacher, then the gate.

    python -m flows.distill
"""

from __future__ import annotations

from prefect import flow

from flows.common import load, run_stage, stage_task, summary
from flows.train import lineage_tags


# A failed gate raises GateFailed with the measured figures; retrying would not change the verdict, so it is
# never retried (lmforge.ops.retry). The task builds the teacher cache when needed, then trains the students.
@stage_task("distill", stages=("teacher_cache", "distill"))
def distill_task(cfg, tags: dict[str, str]):
    from lmforge.distill.stage import run_distill

    return run_distill(cfg, tags=tags)


@flow(name="lmforge-distill", log_prints=True)
def distill_flow(profile: str = "tiny", overrides: list[str] | None = None, teacher_run: str = "") -> dict:
    cfg = load(profile, overrides)
    tags = lineage_tags(cfg) | {"lmforge.config_hash": cfg.distill.digest(), "lmforge.teacher_run": teacher_run}
    return summary(run_stage(distill_task, cfg, tags))


if __name__ == "__main__":
    print(distill_flow())
