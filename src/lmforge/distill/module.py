"""The KD training module: the student's causal-LM module with the teacher's top-k log-probs in the loss.

The teacher runs online under ``no_grad`` and is held outside the module's parameters, so checkpoints and
the optimizer hold only the student. ``teacher_topk`` yields exactly what a top-k cache on disk would
store, so swapping in a cache changes where ``(logprobs, ids)`` come from and nothing else.
"""

from __future__ import annotations

import torch
from torch import nn

from lmforge.config import DistillConfig
from lmforge.distill.loss import kd_loss, teacher_topk
from lmforge.train.module import CausalLMModule


class DistillModule(CausalLMModule):
    def __init__(self, student: nn.Module, teacher: nn.Module, distill_cfg: DistillConfig) -> None:
        super().__init__(student, distill_cfg.train)
        teacher.eval().requires_grad_(False)
        self._teacher = (teacher,)  # a tuple: not registered, so never saved, optimised or cast by Lightning
        self.kd = distill_cfg

    def on_fit_start(self) -> None:
        self._teacher[0].to(self.device)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        student_logits = self.logits(batch["input_ids"])  # (B, T, V)
        with torch.no_grad():
            teacher_logits = self._teacher[0](input_ids=batch["input_ids"]).logits  # (B, T, V)
            logprobs, ids = teacher_topk(teacher_logits, self.kd.top_k)  # (B, T, K) each
        out = kd_loss(student_logits, logprobs, ids, batch["labels"], self.kd.alpha, self.kd.temperature,
                      self.kd.kl)
        return {"loss": out.loss, "kd": out.kd.detach(), "ce": out.ce.detach()}
