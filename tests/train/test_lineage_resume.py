"""Resume and lineage follow the content of what a stage read, not the run ids it was handed.

The sequence a user found (issue 22), on the tiny fixtures: a finished run; more pretraining steps, killed
mid-run and started again (pretraining resumes in its MLflow run); fine-tuning must then retrain, not resume
the teacher made from the old weights. Asking for fewer steps must not export a longer checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil

import lightning as L
import mlflow
import pytest

from lmforge import lineage
from lmforge.config import LMForgeConfig
from lmforge.train.finetune import run_finetune
from lmforge.train.pretrain import run_pretrain


class Killed(Exception):
    """Stands for ``kill -9``: the process stops after a step, before the next checkpoint."""


class KillAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            raise Killed(f"killed at step {trainer.global_step}")


def _pretrain_steps(cfg: LMForgeConfig, steps: int) -> LMForgeConfig:
    train = cfg.pretrain.train.model_copy(update={"max_steps": steps})
    return cfg.model_copy(update={"pretrain": cfg.pretrain.model_copy(update={"train": train})})


def _meta(cfg: LMForgeConfig, role: str) -> dict:
    return json.loads((cfg.paths.models / role / "lmforge.json").read_text())


@pytest.mark.slow
def test_a_changed_parent_retrains_its_child_and_fewer_steps_never_export_more(
        stage_cfg: LMForgeConfig, capsys: pytest.CaptureFixture[str]) -> None:
    models = stage_cfg.paths.models
    first = run_pretrain(stage_cfg)  # 6 steps; checkpoints at 3 and 6
    first_teacher = run_finetune(stage_cfg)
    teacher_6 = lineage.model_hash(models / "teacher")

    longer = _pretrain_steps(stage_cfg, 9)
    with pytest.raises(Killed):
        run_pretrain(longer, callbacks=[KillAt(8)])  # resumed from step 6, killed before the step-9 checkpoint
    capsys.readouterr()
    again = run_pretrain(longer)
    assert "resuming from" in capsys.readouterr().out and again.metrics["global_step"] == 9
    assert again.run_id == first.run_id  # same MLflow run: a run id cannot tell the two parents apart
    pretrain_9 = lineage.model_hash(models / "pretrain")

    second_teacher = run_finetune(longer)
    out = capsys.readouterr().out
    assert "resuming from" not in out and "made by another model or stage" in out
    assert second_teacher.run_id != first_teacher.run_id
    assert lineage.model_hash(models / "teacher") != teacher_6
    meta = _meta(longer, "teacher")
    assert meta["parent_model_hash"] == pretrain_9 and meta["parent_run"] == first.run_id
    run = mlflow.MlflowClient(longer.tracking_uri()).get_run(second_teacher.run_id)
    assert run.data.tags["lmforge.parent_model_hash"] == pretrain_9
    teacher_9 = lineage.model_hash(models / "teacher")

    # Nothing changed: the teacher resumes from its finished checkpoint and is the same model.
    assert run_finetune(longer).run_id == second_teacher.run_id and "resuming from" in capsys.readouterr().out
    assert lineage.model_hash(models / "teacher") == teacher_9

    # Fewer steps: the step-9 checkpoint is past max_steps; training goes on from step 6 to 7.
    shorter = _pretrain_steps(stage_cfg, 7)
    seven = run_pretrain(shorter)
    out = capsys.readouterr().out
    assert "past max_steps 7" in out and "step=000006.ckpt" in out and seven.metrics["global_step"] == 7
    assert _meta(shorter, "pretrain")["metrics"]["global_step"] == 7
    assert lineage.model_hash(models / "pretrain") != pretrain_9
    run_finetune(shorter)
    assert "resuming from" not in capsys.readouterr().out
    assert lineage.model_hash(models / "teacher") not in (teacher_6, teacher_9)


def test_model_hash_reads_weights_not_the_run_that_wrote_them(tmp_path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "lmforge.json").write_text('{"run_id": "a"}')
    first = lineage.model_hash(model)
    (model / "lmforge.json").write_text('{"run_id": "b"}')  # another export of the same weights
    assert lineage.model_hash(model) == first
    (model / "model.safetensors").write_bytes(b"other weights")
    assert lineage.model_hash(model) != first


@pytest.mark.slow
def test_every_entry_point_records_the_same_lineage_tags(stage_cfg: LMForgeConfig, tmp_path) -> None:
    from flows.train import pretrain_task
    from lmforge.cli import COMMANDS

    other = tmp_path / "other"
    for name in ("tokenizer", "shards"):  # the same data in a second work dir: a second MLflow run
        shutil.copytree(stage_cfg.paths.work_dir / name, other / name)
    flow_cfg = stage_cfg.model_copy(update={"work_dir": other})
    by_cli = COMMANDS["pretrain"][0](stage_cfg, argparse.Namespace())  # what `dvc repro` runs
    by_flow = pretrain_task.fn(flow_cfg)  # the Prefect task's body
    client = mlflow.MlflowClient(stage_cfg.tracking_uri())
    cli_tags, flow_tags = ({k: v for k, v in client.get_run(r.run_id).data.tags.items() if k.startswith("lmforge.")}
                           for r in (by_cli, by_flow))
    assert cli_tags == flow_tags
    assert cli_tags["lmforge.config_hash"] == stage_cfg.pretrain.digest() == lineage.config_hash(stage_cfg, "pretrain")
    assert cli_tags["lmforge.data_hash"] == lineage.data_hash(stage_cfg.paths.shards)
    assert cli_tags["lmforge.git_commit"] == lineage.git_commit() and cli_tags["lmforge.profile"] == "test"
    assert _meta(stage_cfg, "pretrain")["config_hash"] == cli_tags["lmforge.config_hash"]
