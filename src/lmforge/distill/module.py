"""The KD training module: the student's causal-LM module with the teacher's top-k log-probs in the loss.

The teacher's top-k comes with the batch when a cache is used (``lmforge.distill.cache``); otherwise the
teacher runs online under ``no_grad``, held outside the module's parameters, so checkpoints and the
optimizer hold only the student. Both give the same ``(logprobs, ids)``; only where they come from differs.
"""

from __future__ import annotations

import torch
from torch import nn

from lmforge.config import DistillConfig
from lmforge.distill.loss import kd_loss, teacher_topk
from lmforge.train.module import CausalLMModule


class DistillModule(CausalLMModule):
    def __init__(self, student: nn.Module, teacher: nn.Module | None, distill_cfg: DistillConfig) -> None:
        """``teacher`` None: every batch carries the teacher's cached top-k (``teacher_logprobs``, ``teacher_ids``)."""
        super().__init__(student, distill_cfg.train)
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        self._teacher = (teacher,)  # a tuple: not registered, so never saved, optimised or cast by Lightning
        self.kd = distill_cfg

    def on_fit_start(self) -> None:
        if self._teacher[0] is not None:
            self._teacher[0].to(self.device)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        student_logits = self.logits(batch["input_ids"])  # (B, T, V)
        if "teacher_ids" in batch:  # from the teacher cache (lmforge.distill.cache)
            logprobs, ids = batch["teacher_logprobs"].float(), batch["teacher_ids"]  # (B, T, K) each
        else:
            with torch.no_grad():
                teacher_logits = self._teacher[0](input_ids=batch["input_ids"]).logits  # (B, T, V)
                logprobs, ids = teacher_topk(teacher_logits, self.kd.top_k)  # (B, T, K) each
        out = kd_loss(student_logits, logprobs, ids, batch["labels"], self.kd.alpha, self.kd.temperature,
                      self.kd.kl)
        return {"loss": out.loss, "kd": out.kd.detach(), "ce": out.ce.detach()}
