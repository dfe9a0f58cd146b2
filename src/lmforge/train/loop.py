"""What every training stage shares: the Trainer, automatic resume, MLflow logging and the model export.

    logger = mlflow_logger(cfg, "pretrain", tags)
    outcome = fit(module, datamodule, cfg.pretrain.train, ckpt_dir, logger, identity={...})
    export_model(module.model, tokenizer_dir, cfg.paths.models / "pretrain", meta)

A stage resumes from the newest checkpoint in its directory that loads, was made for the same ``identity``
and is not past ``max_steps``; a partial, foreign or longer checkpoint is skipped with a one-line message.
The identity names what the stage read by content (``lineage.model_hash`` of a parent model, the data hash),
never by run id: a parent retrained in the same MLflow run has new weights, so its children start fresh.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.strategies import Strategy
from mlflow.exceptions import MlflowException
from torch import nn

from lmforge import envs
from lmforge.artifacts import atomic_dir, write_json_atomic
from lmforge.config import GenerationSettings, LMForgeConfig, TrainConfig
from lmforge.generation import apply_generation_settings
from lmforge.lineage import data_hash

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "vocab.json", "merges.txt")


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    run_id: str
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FitOutcome:
    global_step: int
    resumed_from: Path | None
    wall_s: float
    train_loss: float | None
    is_global_zero: bool = True  # under DDP only rank 0 evaluates, exports and logs after training


def mlflow_logger(cfg: LMForgeConfig, stage: str, tags: dict[str, str] | None, run_name: str,
                  run_id: str | None = None) -> MLFlowLogger:
    """A Lightning MLflow logger on the profile's tracking URI; artifacts under the state dir, never ./mlruns."""
    artifacts = envs.state_dir() / "mlartifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    return MLFlowLogger(
        experiment_name=cfg.registry.experiment, run_name=run_name, tracking_uri=cfg.tracking_uri(),
        tags={**(tags or {}), "lmforge.stage": stage}, artifact_location=artifacts.as_uri(), run_id=run_id,
    )


def log_params(logger: MLFlowLogger, params: dict[str, Any]) -> None:
    try:
        logger.log_hyperparams(params)
    except MlflowException as exc:  # a resumed run whose config changed (max_steps raised): keep the first
        print(f"lmforge: kept the run's original params ({str(exc).splitlines()[0]})")


def log_final_metrics(logger: MLFlowLogger, metrics: dict[str, Any], step: int) -> None:
    client = logger.experiment
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            client.log_metric(logger.run_id, f"final/{key}", float(value), step=step)


def find_resume_checkpoint(ckpt_dir: Path, identity: dict[str, Any], module: L.LightningModule | None = None,
                           max_steps: int | None = None) -> tuple[Path | None, dict[str, Any]]:
    """The newest checkpoint that loads, matches ``identity`` (and ``module``'s weight names) and is at most
    ``max_steps`` steps in, with its metadata. A longer one would stop training at once and be exported as a
    shorter run's model."""
    def step_of(path: Path) -> int:
        match = re.search(r"step=(\d+)", path.name)
        return int(match.group(1)) if match else -1

    for path in sorted(Path(ckpt_dir).glob("*.ckpt"), key=step_of, reverse=True):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            meta = ckpt["lmforge"]
            _ = ckpt["state_dict"], ckpt["optimizer_states"], ckpt["global_step"]
        except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped, whatever the cause
            print(f"lmforge: skipping unreadable checkpoint {path} ({type(exc).__name__}: {exc})"[:300])
            continue
        if meta.get("identity") != identity:
            print(f"lmforge: skipping checkpoint {path}: made by another model or stage ({meta.get('identity')})")
            continue
        if max_steps is not None and ckpt["global_step"] > max_steps:
            print(f"lmforge: skipping checkpoint {path}: {ckpt['global_step']} steps, past max_steps {max_steps}")
            continue
        if module is not None and set(ckpt["state_dict"]) != set(module.state_dict()):
            print(f"lmforge: skipping checkpoint {path}: its weight names differ from this model's")
            continue
        return path, meta
    return None, {}


def build_trainer(train_cfg: TrainConfig, ckpt_dir: Path, logger: MLFlowLogger | bool,
                  callbacks: list[L.Callback] | None = None) -> L.Trainer:
    c = train_cfg
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="step={step:06d}", auto_insert_metric_name=False,
                                 every_n_train_steps=c.ckpt_every, monitor="step", mode="max", save_top_k=2)
    # TQDM, not the Rich bar Lightning picks when rich is installed: one line, and its total is max_steps.
    bar = [TQDMProgressBar()] if progress_bar_enabled(c) else []
    warnings.filterwarnings("ignore", ".*does not have many workers.*")  # 0 workers: data is a memmap slice
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # expected: that is how we resume
    return L.Trainer(
        accelerator=c.accelerator, devices=c.devices, num_nodes=c.num_nodes, strategy=build_strategy(c),
        precision=c.precision, max_steps=c.max_steps, accumulate_grad_batches=c.accumulate,
        gradient_clip_val=c.grad_clip, val_check_interval=c.val_every * c.accumulate,
        check_val_every_n_epoch=None, limit_val_batches=c.val_batches, num_sanity_val_steps=0,
        logger=logger, callbacks=[checkpoint, *bar, *(callbacks or [])],
        log_every_n_steps=max(1, min(10, c.max_steps // 30)),
        enable_progress_bar=bool(bar), enable_model_summary=False, use_distributed_sampler=False,
        default_root_dir=ckpt_dir,
    )


def build_strategy(train_cfg: TrainConfig) -> str | Strategy:
    """Lightning's strategy for ``train.strategy``: ``ddp`` with the process-group backend of the accelerator
    (NCCL on GPUs, gloo on CPUs), ``fsdp`` sharding each Llama decoder layer and gathering a full state dict for
    the rank-0 export; anything else is passed to Lightning as named."""
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    backend = "nccl" if train_cfg.accelerator in ("gpu", "cuda") else "gloo"
    if train_cfg.strategy == "ddp":
        return DDPStrategy(process_group_backend=backend)
    if train_cfg.strategy == "fsdp":
        from transformers.models.llama.modeling_llama import LlamaDecoderLayer

        return FSDPStrategy(auto_wrap_policy={LlamaDecoderLayer}, sharding_strategy="FULL_SHARD",
                            state_dict_type="full", process_group_backend=backend)
    return train_cfg.strategy


def progress_bar_enabled(train_cfg: TrainConfig) -> bool:
    """``train.progress_bar`` if set, else on only when a person watches: stderr is a terminal (not in tests, CI)."""
    return train_cfg.progress_bar if train_cfg.progress_bar is not None else sys.stderr.isatty()


def fit(module: L.LightningModule, datamodule: L.LightningDataModule, train_cfg: TrainConfig, ckpt_dir: Path,
        logger: MLFlowLogger | bool, identity: dict[str, Any], resume_from: Path | None = None,
        callbacks: list[L.Callback] | None = None) -> FitOutcome:
    """Train to ``max_steps``, resuming from ``resume_from`` (see ``find_resume_checkpoint``) if given."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    module.extra_checkpoint = {"identity": identity, "run_id": getattr(logger, "run_id", None)}
    L.seed_everything(train_cfg.seed, verbose=False)
    trainer = build_trainer(train_cfg, ckpt_dir, logger, callbacks)
    if resume_from:
        print(f"lmforge: resuming from {resume_from}")
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=False)
    if trainer.global_step != train_cfg.max_steps:
        raise RuntimeError(f"training stopped at step {trainer.global_step}, not max_steps {train_cfg.max_steps} "
                           f"(resumed from {resume_from}): its weights are not a {train_cfg.max_steps}-step model")
    loss = trainer.callback_metrics.get("train/loss")
    return FitOutcome(trainer.global_step, resume_from, time.perf_counter() - start,
                      float(loss) if loss is not None else None, trainer.is_global_zero)


def export_model(model: nn.Module, tokenizer_dir: Path, out: Path, meta: dict[str, Any],
                 generation: GenerationSettings | None = None) -> Path:
    """Write an HF model dir atomically: safetensors weights, config, generation config, tokenizer, lmforge.json.

    ``generation``: the version's sampling defaults, written into its generation_config.json."""
    if generation is not None:
        apply_generation_settings(model.generation_config, generation)
    with atomic_dir(out, {"stage": meta.get("stage"), "run_id": meta.get("run_id")}) as tmp:
        model.to("cpu").save_pretrained(tmp)  # config.json, generation_config.json, model.safetensors
        model.generation_config.save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).is_file():
                shutil.copy2(Path(tokenizer_dir) / name, tmp / name)
        write_json_atomic(tmp / "lmforge.json", meta)
    return out


def stage_meta(stage: str, run_id: str, config: dict[str, Any], shards: Path, tags: dict[str, str],
               metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The ``lmforge.json`` every exported model carries: which run, config and data made it, and how it scored.

    ``tags`` are the run's MLflow tags (``lineage.stage_tags`` and the stage's own); ``config_hash`` repeats
    their ``lmforge.config_hash`` so the registry tags a version with the config that trained it."""
    return {"stage": stage, "run_id": run_id, "config": config, "config_hash": tags.get("lmforge.config_hash", ""),
            "data_manifest_sha256": data_hash(shards), "tags": dict(tags), "metrics": metrics, **extra}
