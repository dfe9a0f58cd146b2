"""Training flows: the pretrained base (if any), pretraining (from scratch or continued from the base), then
fine-tuning on instruction pairs.

    python -m flows.train
"""

from __future__ import annotations

from prefect import flow

from flows.common import load, run_stage, stage_task, summary
from lmforge.ops.stages import dvc_stages


@stage_task("base", stages=dvc_stages("base"))
def base_task(cfg):
    from lmforge.base.convert import prepare_base

    return prepare_base(cfg)


@stage_task("pretrain", stages=dvc_stages("pretrain"))
def pretrain_task(cfg):
    # A retry (or a re-run after a kill) resumes from the last checkpoint: only the steps since then are lost.
    from lmforge.train.pretrain import run_pretrain

    return run_pretrain(cfg)


@stage_task("finetune", stages=dvc_stages("finetune"))
def finetune_task(cfg):
    from lmforge.train.finetune import run_finetune

    return run_finetune(cfg)


@flow(name="lmforge-base", log_prints=True)
def base_flow(profile: str = "tiny", overrides: list[str] | None = None) -> dict:
    cfg = load(profile, overrides)
    return summary(run_stage(base_task, cfg))


# The lineage tags (git commit, data hash, config hash, parent) are built by the stages themselves
# (lmforge.lineage.stage_tags), so this flow, `lmforge pretrain` and `dvc repro` record the same ones.
@flow(name="lmforge-pretrain", log_prints=True)
def pretrain_flow(profile: str = "tiny", overrides: list[str] | None = None) -> dict:
    cfg = load(profile, overrides)
    return summary(run_stage(pretrain_task, cfg))


@flow(name="lmforge-finetune", log_prints=True)
def finetune_flow(profile: str = "tiny", overrides: list[str] | None = None) -> dict:
    cfg = load(profile, overrides)
    return summary(run_stage(finetune_task, cfg))


if __name__ == "__main__":
    pretrain_flow()
    print(finetune_flow())
