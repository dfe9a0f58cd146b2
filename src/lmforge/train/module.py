"""The LightningModule every training stage uses: causal-LM loss, AdamW, transformers' warm-up + cosine schedule.

Gradient clipping and accumulation are Trainer arguments (see ``lmforge.train.loop``). Subclasses change
only ``compute_loss`` (distillation adds the teacher term).

Throughput is measured at every step and per device: ``train/tokens_per_s``, ``train/flops_per_s`` (tokens/s
x ``TokenFlops``, see ``lmforge.train.flops``) and ``train/mfu``, achieved FLOP/s over ``train.peak_flops``
(or, when that is None, over this device's fp32 matmul FLOP/s, measured before the first step and raised to
the best this machine has shown: ``lmforge.train.flops.machine_peak_flops``, kept in the state dir). A step
is timed from one ``training_step`` to the next, so it includes backward and the optimizer. Those rates and
``lr`` are logged on the steps Lightning hands to the logger (every ``log_every_n_steps``), as means over the
steps since the previous log: each ``self.log`` walks every value logged so far in the step, so logging all of
them at every step costs a share of a tiny model's step.
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
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from lmforge import envs
from lmforge.config import TrainConfig
from lmforge.train.data import IGNORE
from lmforge.train.flops import RateMeter, TokenFlops, machine_peak_flops


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


class CausalLMModule(L.LightningModule):
    """Trains ``model`` (a HF causal LM) on ``{"input_ids", "labels"}`` batches."""

    def __init__(self, model: nn.Module, train_cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model.train(), train_cfg  # from_pretrained returns eval mode
        if train_cfg.gradient_checkpointing:  # non-reentrant: also right when LoRA freezes the embeddings
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # The compiled forward sits in a tuple, unregistered: checkpoints and exports see only ``model.*``.
        self._forward = (torch.compile(model) if train_cfg.compile else model,)
        self._val_nll, self._val_tokens = 0.0, 0
        self._last_time: float | None = None
        self.token_flops = TokenFlops.of(model)
        self.peak_flops: float | None = None  # FLOP/s of one device: train.peak_flops, or measured at the first step
        self._fit_meter, self._log_meter = RateMeter(), RateMeter()  # this rank: the whole fit; since the last log
        self.extra_checkpoint: dict[str, Any] = {}  # stage metadata saved in (and read back from) checkpoints

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self._forward[0](input_ids=input_ids).logits  # (B, T, V)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": ..., extra terms to log}``; subclasses add terms."""
        return {"loss": causal_lm_loss(self.logits(batch["input_ids"]), batch["labels"])}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.peak_flops is None:  # before any step is timed, so the measurement never counts as a step
            configured = self.cfg.peak_flops
            self.peak_flops = configured if configured is not None else machine_peak_flops(
                self.device, envs.state_dir() / "peak_flops.json")
        terms = self.compute_loss(batch)
        bs = batch["input_ids"].shape[0]
        for name, value in terms.items():
            self.log(f"train/{name}", value.detach(), prog_bar=name == "loss", batch_size=bs)
        now = time.perf_counter()
        if self._last_time is not None:
            batch_size, width = batch["input_ids"].shape  # (B, T): padding counts, it costs the same compute
            tokens = batch_size * width
            for meter in (self._fit_meter, self._log_meter):
                meter.add(tokens, tokens * self.token_flops(width), now - self._last_time)
        self._last_time = now
        if self._is_logging_step(batch_idx):
            self._log_rates(bs)
        return terms["loss"]

    def _is_logging_step(self, batch_idx: int) -> bool:
        """The last micro-batch of an optimizer step whose metrics Lightning writes (every ``log_every_n_steps``)."""
        trainer, every = self.trainer, self.trainer.log_every_n_steps
        last_micro = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        return last_micro and every > 0 and (trainer.global_step + 1) % every == 0

    def _log_rates(self, batch_size: int) -> None:
        self.log("lr", self.optimizers().param_groups[0]["lr"], batch_size=batch_size)
        rates = self._log_meter.rates(self.peak_flops)
        for name in ("tokens_per_s", "flops_per_s", "mfu"):
            if name in rates:
                self.log(f"train/{name}", rates[name], prog_bar=name == "mfu", batch_size=batch_size)
        self._log_meter = RateMeter()

    def throughput(self) -> dict[str, float]:
        """This rank's mean rates over the timed steps of the last fit (validation excluded); {} if none."""
        return self._fit_meter.rates(self.peak_flops)

    def on_train_start(self) -> None:
        self._fit_meter, self._log_meter, self._last_time = RateMeter(), RateMeter(), None

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
        # transformers' cosine with warm-up: lr rises linearly from 0 over warmup_steps, then follows a half cosine
        # down to lr * min_lr_ratio at max_steps (training never goes past it: lmforge.train.loop.fit).
        sched = get_cosine_with_min_lr_schedule_with_warmup(opt, c.warmup_steps, c.max_steps,
                                                            min_lr_rate=c.min_lr_ratio)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lmforge"] = dict(self.extra_checkpoint)
