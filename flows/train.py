"""Training flows: the pretrained base (if any), pretraining (from scratch or continued from the base), then
fine-tuning on instruction pairs.

    python -m flows.train
"""

from __future__ import annotations

from prefect import flow

from flows.common import load, run_stage, stage_task, summary
from lmforge import lineage


@stage_task("base", stages=("base",))
def base_task(cfg, tags: dict[str, str]):
    from lmforge.base.convert import prepare_base

    return prepare_base(cfg)


@stage_task("pretrain", stages=("pretrain",))
def pretrain_task(cfg, tags: dict[str, str]):
    # A retry (or a re-run after a kill) resumes from the last checkpoint: only the steps since then are lost.
    from lmforge.train.pretrain import run_pretrain

    return run_pretrain(cfg, tags=tags)


@stage_task("finetune", stages=("finetune",))
def finetune_task(cfg, tags: dict[str, str]):
    from lmforge.train.finetune import run_finetune

    return run_finetune(cfg, tags=tags)


def lineage_tags(cfg) -> dict[str, str]:
    return {
        "lmforge.git_commit": lineage.git_commit(),
        "lmforge.profile": cfg.profile,
        **lineage.data_lineage(cfg),
    }


@flow(name="lmforge-base", log_prints=True)
def base_flow(profile: str = "tiny", overrides: list[str] | None = None) -> dict:
    cfg = load(profile, overrides)
    return summary(run_stage(base_task, cfg, {"lmforge.config_hash": cfg.base.digest()}))


@flow(name="lmforge-pretrain", log_prints=True)
def pretrain_flow(profile: str = "tiny", overrides: list[str] | None = None) -> dict:
    cfg = load(profile, overrides)
    tags = lineage_tags(cfg) | {"lmforge.config_hash": cfg.pretrain.digest()}
    return summary(run_stage(pretrain_task, cfg, tags))


@flow(name="lmforge-finetune", log_prints=True)
def finetune_flow(profile: str = "tiny", overrides: list[str] | None = None, parent_run: str = "") -> dict:
    cfg = load(profile, overrides)
    tags = lineage_tags(cfg) | {"lmforge.config_hash": cfg.finetune.digest(), "lmforge.parent_run": parent_run}
    return summary(run_stage(finetune_task, cfg, tags))


if __name__ == "__main__":
    print(finetune_flow(parent_run=pretrain_flow()["run_id"]))
