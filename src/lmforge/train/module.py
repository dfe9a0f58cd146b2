"""The LightningModule every training stage uses: causal-LM loss, AdamW, warm-up + cosine schedule.

Gradient clipping and accumulation are Trainer arguments (see ``lmforge.train.loop``). Subclasses change
only ``compute_loss`` (distillation adds the teacher term).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from lmforge.config import TrainConfig
from lmforge.train.data import IGNORE


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over positions whose label is not -100 (labels already shifted)."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)  # (B*T, V)


@torch.no_grad()
def mean_loss(model: nn.Module, loader: Iterable[dict[str, torch.Tensor]]) -> float:
    """Token-weighted mean causal-LM loss of ``model`` (in eval mode, on CPU) over a loader's batches."""
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    for batch in loader:
        n = int((batch["labels"] != IGNORE).sum())
        nll += float(causal_lm_loss(model(input_ids=batch["input_ids"]).logits, batch["labels"])) * n
        tokens += n
    model.train(was_training)
    return nll / max(tokens, 1)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay matrices; never norms, biases or embeddings (nor a tied lm_head)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # a tied weight appears once, under the embedding's name
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "norm" in name or "embed" in name or name.endswith(".bias")
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(step: int, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up to 1, then cosine down to ``min_lr_ratio`` at ``max_steps`` (flat after)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class CausalLMModule(L.LightningModule):
    """Trains ``model`` (a HF causal LM) on ``{"input_ids", "labels"}`` batches."""

    def __init__(self, model: nn.Module, train_cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model.train(), train_cfg  # from_pretrained returns eval mode
        # The compiled forward sits in a tuple, unregistered: checkpoints and exports see only ``model.*``.
        self._forward = (torch.compile(model) if train_cfg.compile else model,)
        self._val_nll, self._val_tokens = 0.0, 0
        self._last_time: float | None = None
        self.extra_checkpoint: dict[str, Any] = {}  # stage metadata saved in (and read back from) checkpoints

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self._forward[0](input_ids=input_ids).logits  # (B, T, V)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": ..., extra terms to log}``; subclasses add terms."""
        return {"loss": causal_lm_loss(self.logits(batch["input_ids"]), batch["labels"])}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms = self.compute_loss(batch)
        bs = batch["input_ids"].shape[0]
        for name, value in terms.items():
            self.log(f"train/{name}", value.detach(), prog_bar=name == "loss", batch_size=bs)
        self.log("lr", self.optimizers().param_groups[0]["lr"], batch_size=bs)
        now = time.perf_counter()
        if self._last_time is not None:
            self.log("train/tokens_per_s", batch["input_ids"].numel() / (now - self._last_time), batch_size=bs)
        self._last_time = now
        return terms["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val_nll, self._val_tokens = 0.0, 0

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        labels = batch["labels"]  # (B, T)
        n = int((labels != IGNORE).sum())
        loss = causal_lm_loss(self.logits(batch["input_ids"]), labels)
        self._val_nll += float(loss) * n  # token-weighted, so ragged SFT batches average correctly
        self._val_tokens += n

    def on_validation_epoch_end(self) -> None:
        nll = torch.tensor([self._val_nll, float(self._val_tokens)], device=self.device)
        nll = self.all_gather(nll).reshape(-1, 2).sum(0)
        val_loss = (nll[0] / nll[1].clamp(min=1)).item()
        self.log("val/loss", val_loss, sync_dist=False)
        self.log("val/ppl", math.exp(min(val_loss, 50.0)), sync_dist=False)
        self._last_time = None  # validation time is not training throughput

    def configure_optimizers(self) -> dict[str, Any]:
        c = self.cfg
        opt = torch.optim.AdamW(param_groups(self.model, c.weight_decay), lr=c.lr, betas=(0.9, 0.95))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, c.warmup_steps, c.max_steps, c.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lmforge"] = dict(self.extra_checkpoint)
