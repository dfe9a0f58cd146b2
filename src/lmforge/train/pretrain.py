"""Pretrain stage: token shards + tokenizer → ``models/pretrain`` (a Hugging Face Llama), one MLflow run.

    lmforge pretrain --profile tiny          # or: python -m flows.train
    run_pretrain(load_config("tiny"))        # TrainResult(model_dir, run_id, metrics)

Reads ``cfg.pretrain`` and ``cfg.paths.{shards,tokenizer}``; checkpoints to ``checkpoints/pretrain/`` and
resumes from the newest good checkpoint there made for the same model, data and recipe and no further than
``max_steps``, so a killed run loses at most ``ckpt_every`` steps. The MLflow run carries the lineage tags of
``lineage.stage_tags``, whichever entry point started it. At the end
it logs greedy continuations of ``pretrain.sample_prompts`` as the MLflow table ``samples/pretrain.json``.

With a pretrained base (``base.source``) this is continued pretraining: the model starts from ``models/base``
(``pretrain.model`` is unused) and adapts to the corpus; ``max_steps: 0`` exports the base unchanged, measured.

Under DDP (``train.strategy: ddp``, ``devices``/``num_nodes`` > 1) Lightning starts the other ranks by
running the same command again; each trains on its own share of the stream, and only rank 0 evaluates,
logs and exports after training.
"""

from __future__ import annotations

import json

import lightning as L
from lightning.pytorch.callbacks import Callback
from transformers import AutoTokenizer, LlamaForCausalLM

from lmforge import envs, lineage
from lmforge.artifacts import require_complete
from lmforge.config import LMForgeConfig
from lmforge.train.data import pretrain_datamodule, read_manifest
from lmforge.train.evaluate import perplexity_of, unigram_perplexity
from lmforge.train.loop import (
    FitOutcome,
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
from lmforge.train.model import build_model, count_parameters
from lmforge.train.module import CausalLMModule
from lmforge.train.samples import generate_samples, log_samples


def run_pretrain(cfg: LMForgeConfig, tags: dict[str, str] | None = None,
                 callbacks: list[Callback] | None = None) -> TrainResult:
    """Train ``cfg.pretrain.model`` from scratch on the train shards and export it to ``models/pretrain``.

    ``callbacks`` go to the Lightning Trainer. On a DDP rank other than 0 it returns right after training,
    with no metrics: rank 0 writes the model.
    """
    envs.apply_offline_defaults()
    section, paths, train = cfg.pretrain, cfg.paths, cfg.pretrain.train
    require_complete(paths.shards, "token shards")
    require_complete(paths.tokenizer, "tokenizer")
    manifest = read_manifest(paths.shards)

    L.seed_everything(train.seed, verbose=False)  # same seed, same initial weights
    model, model_identity, base_meta = initial_model(cfg, manifest)
    module = CausalLMModule(model, train)
    datamodule = pretrain_datamodule(paths.shards, train.seq_len, train.batch_size, train.seed,
                                     train.val_batches, manifest["pad_id"])

    ckpt_dir = paths.checkpoints / "pretrain"
    identity = {"stage": "pretrain", "model": model_identity, "data": data_hash(paths.shards),
                "recipe": train.recipe_digest()}
    resume, meta = find_resume_checkpoint(ckpt_dir, identity, module, max_steps=train.max_steps)
    run_tags = {**lineage.stage_tags(cfg, "pretrain"), **(tags or {})}
    if base_meta is not None:
        run_tags["lmforge.parent_model_hash"] = lineage.model_hash(paths.base)
    logger = mlflow_logger(cfg, "pretrain", run_tags, run_name=f"pretrain-{cfg.profile}",
                           run_id=meta.get("run_id"))
    log_params(logger, {**section.model_dump(mode="json"), "base": cfg.base.source})
    if train.max_steps > 0:
        outcome = fit(module, datamodule, train, ckpt_dir, logger, identity, resume_from=resume,
                      callbacks=callbacks)
    else:  # the base as it is: measured and exported like a trained model, so the chain reads one layout
        outcome = FitOutcome(global_step=0, resumed_from=None, wall_s=0.0, train_loss=None)
    if not outcome.is_global_zero:
        return TrainResult(model_dir=paths.models / "pretrain", run_id=logger.run_id or "")

    # Measured with the same protocol the distill stage uses (non-overlapping seq_len windows of val).
    tokenizer = AutoTokenizer.from_pretrained(paths.tokenizer)
    val = perplexity_of(module.model.cpu(), tokenizer, paths.shards, "val", seq_len=train.seq_len,
                        max_tokens=train.ppl_max_tokens)
    metrics = {"val_loss": val["loss"], "val_ppl": val["ppl"], "val_bits_per_byte": val["bits_per_byte"],
               "unigram_ppl": unigram_perplexity(paths.shards), "train_loss": outcome.train_loss,
               "global_step": outcome.global_step, "wall_s": outcome.wall_s,
               "parameters": count_parameters(module.model), **module.throughput()}
    log_final_metrics(logger, metrics, outcome.global_step)
    log_samples(logger, generate_samples(module.model, tokenizer, section.sample_prompts, section.sample_new_tokens),
                "samples/pretrain.json", outcome.global_step)
    out = export_model(module.model, paths.tokenizer, paths.models / "pretrain",
                       stage_meta("pretrain", logger.run_id, section.model_dump(mode="json"), paths.shards, run_tags,
                                  metrics, resumed_from=str(outcome.resumed_from or ""), base=base_meta),
                       generation=cfg.generation)
    return TrainResult(model_dir=out, run_id=logger.run_id, metrics=metrics)


def initial_model(cfg: LMForgeConfig, manifest: dict) -> tuple[LlamaForCausalLM, str, dict | None]:
    """The model training starts from, what identifies it for resuming, and the base's lineage (if any):
    ``models/base`` when the profile has a base (identified by its weights' hash), else ``pretrain.model``
    freshly initialised from the seed."""
    if cfg.base.source is None:
        model = build_model(cfg.pretrain.model, manifest["vocab_size"], manifest["bos_id"], manifest["eos_id"],
                            manifest["pad_id"])
        return model, cfg.pretrain.model.digest(), None
    base = cfg.paths.base
    require_complete(base, "base model (run `lmforge base`)")
    base_meta = json.loads((base / "lmforge.json").read_text())
    return LlamaForCausalLM.from_pretrained(base, dtype="float32"), f"base:{lineage.model_hash(base)}", base_meta
