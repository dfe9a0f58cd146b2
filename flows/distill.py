"""Distillation flow: KD student and no-KD baseline from the fine-tuned teacher, then the gate.

    python -m flows.distill
"""

from __future__ import annotations

from prefect import flow

from flows.common import load, run_stage, stage_task, summary
from lmforge.ops.stages import dvc_stages


# A failed gate raises GateFailed with the measured figures; retrying would not change the verdict, so it is
# never retried (lmforge.ops.retry). The task builds the teacher cache when needed, then trains the students.
@stage_task("distill", stages=dvc_stages("distill"))
def distill_task(cfg):
    from lmforge.distill.stage import run_distill

    return run_distill(cfg)


@flow(name="lmforge-distill", log_prints=True)
def distill_flow(profile: str = "tiny", overrides: list[str] | None = None) -> dict:
    cfg = load(profile, overrides)  # lineage tags, the teacher's run among them, come from the stage itself
    return summary(run_stage(distill_task, cfg))


if __name__ == "__main__":
    print(distill_flow())
