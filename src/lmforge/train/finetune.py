"""Fine-tune stage: ``models/pretrain`` + SFT pairs → ``models/teacher``, loss on response tokens only.

    lmforge finetune --profile tiny
    run_finetune(load_config("tiny"))        # TrainResult(model_dir, run_id, metrics)

Full fine-tuning by default; ``finetune.lora`` trains peft LoRA adapters on every projection instead and
merges them (``merge_and_unload``) before export, so the teacher is always a plain Llama that vLLM serves.
Checkpoints in ``checkpoints/finetune/``, resumed only when made from the same pretrained weights
(``lineage.model_hash``), data and recipe: a pretrained model that changed, even within its MLflow run,
retrains the teacher. At the end it logs greedy chat answers to
``finetune.sample_prompts`` as the MLflow table ``samples/finetune.json``. Under DDP only rank 0 evaluates,
logs and exports (see ``lmforge.train.pretrain``).
"""

from __future__ import annotations

import json
import math

import lightning as L
from lightning.pytorch.callbacks import Callback
from transformers import AutoTokenizer, LlamaForCausalLM

from lmforge import envs, lineage
from lmforge.artifacts import require_complete
from lmforge.config import FinetuneConfig, LMForgeConfig
from lmforge.train.data import sft_datamodule
from lmforge.train.loop import (
    TrainResult,
    data_hash,
    export_model,
    find_resume_checkpoint,
    fit,
    log_final_metrics,
    log_params,
    mlflow_logger,
    stage_meta,
)
from lmforge.train.model import count_parameters
from lmforge.train.module import CausalLMModule, mean_loss
from lmforge.train.samples import generate_samples, log_samples

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def run_finetune(cfg: LMForgeConfig, tags: dict[str, str] | None = None,
                 callbacks: list[Callback] | None = None) -> TrainResult:
    """Supervised fine-tuning of the pretrained model on ``shards/sft_train.jsonl``; exports ``models/teacher``.

    ``callbacks`` go to the Lightning Trainer; a DDP rank other than 0 returns right after training.
    """
    envs.apply_offline_defaults()
    section, paths, train = cfg.finetune, cfg.paths, cfg.finetune.train
    source = paths.models / "pretrain"
    require_complete(source, "pretrained model")
    require_complete(paths.shards, "token shards")
    parent = json.loads((source / "lmforge.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(source)

    L.seed_everything(train.seed, verbose=False)
    base = LlamaForCausalLM.from_pretrained(source)
    model = with_lora(base, section) if section.lora else base
    module = CausalLMModule(model, train)
    datamodule = sft_datamodule(paths.shards, tokenizer, train.seq_len, train.batch_size, train.seed,
                                train.val_batches)

    ckpt_dir = paths.checkpoints / "finetune"
    parent_hash = lineage.model_hash(source)
    identity = {"stage": "finetune", "parent": parent_hash, "lora": section.lora,
                "data": data_hash(paths.shards), "recipe": train.recipe_digest()}
    resume, meta = find_resume_checkpoint(ckpt_dir, identity, module, max_steps=train.max_steps)
    run_tags = {**lineage.stage_tags(cfg, "finetune"), "lmforge.parent_run": parent.get("run_id") or "",
                "lmforge.parent_model_hash": parent_hash, **(tags or {})}
    logger = mlflow_logger(cfg, "finetune", run_tags, run_name=f"finetune-{cfg.profile}", run_id=meta.get("run_id"))
    log_params(logger, section.model_dump(mode="json"))
    outcome = fit(module, datamodule, train, ckpt_dir, logger, identity, resume_from=resume, callbacks=callbacks)
    if not outcome.is_global_zero:
        return TrainResult(model_dir=paths.models / "teacher", run_id=logger.run_id or "")

    trainable = count_parameters(module.model, trainable_only=True)
    merged = module.model.merge_and_unload() if section.lora else module.model
    val_loss = mean_loss(merged.cpu(), datamodule.val_dataloader())
    metrics = {"sft_val_loss": val_loss, "sft_val_ppl": math.exp(val_loss), "train_loss": outcome.train_loss,
               "global_step": outcome.global_step, "wall_s": outcome.wall_s, "trainable_parameters": trainable,
               "parameters": count_parameters(merged), **module.throughput()}
    log_final_metrics(logger, metrics, outcome.global_step)
    log_samples(logger, generate_samples(merged, tokenizer, section.sample_prompts, section.sample_new_tokens,
                                         chat=True), "samples/finetune.json", outcome.global_step)
    out = export_model(merged, source, paths.models / "teacher",
                       stage_meta("finetune", logger.run_id, section.model_dump(mode="json"), paths.shards,
                                  run_tags, metrics, parent_run=parent.get("run_id"),
                                  parent_model_hash=parent_hash, model_config=parent.get("config")),
                       generation=cfg.generation)
    return TrainResult(model_dir=out, run_id=logger.run_id, metrics=metrics)


def with_lora(model: LlamaForCausalLM, section: FinetuneConfig):
    """Wrap ``model`` with LoRA adapters on every attention and MLP projection; base weights frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=section.lora_rank, lora_alpha=section.lora_alpha, lora_dropout=0.0,
                        target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    return get_peft_model(model, config)
