"""Knowledge-distillation losses: α·T²·KL(teacher ‖ student) + (1 − α)·CE, on non-ignored positions only.

``kd_loss`` takes the teacher as top-k log-probs and ids per position, the shape a logit cache on disk
stores, so an online teacher (``teacher_topk``) and a cache are interchangeable. ``kd_loss_full`` takes the
teacher's full logits.

Top-k choice: both distributions are renormalised over the teacher's top-k ids at temperature T (teacher:
softmax of its top-k log-probs / T, which equals its tempered softmax restricted to those ids; student: its
tempered logits gathered at the same ids, log-softmaxed). The KL is then between two proper distributions on
one support: it is ≥ 0, exactly 0 when the student matches the teacher there, and the tail the cache did not
keep is ignored rather than guessed. The T² factor keeps the KD gradient's scale independent of T (Hinton et
al., 2015). ``kl="reverse"`` is KL(student ‖ teacher) (mode-seeking); ``"mix"`` averages the two.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

IGNORE = -100
KLKind = Literal["forward", "reverse", "mix"]


class KDLoss(NamedTuple):
    loss: torch.Tensor  # α·T²·kd + (1 − α)·ce, the value to optimise
    kd: torch.Tensor  # mean KL per scored position (before T² and α)
    ce: torch.Tensor  # mean cross-entropy against the labels at T = 1


@torch.no_grad()
def teacher_topk(teacher_logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's k most likely tokens per position: (log-probs at T = 1, ids), each (B, T, k)."""
    logprobs = F.log_softmax(teacher_logits.float(), dim=-1)  # (B, T, V)
    return logprobs.topk(k, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_topk_logprobs: torch.Tensor, teacher_topk_ids: torch.Tensor,
            labels: torch.Tensor, alpha: float, temperature: float, kl: KLKind = "forward") -> KDLoss:
    """KD against the teacher's top-k log-probs (B, T, K) and ids (B, T, K); labels (B, T) with -100 ignored."""
    t = temperature
    student = student_logits.float() / t  # (B, T, V)
    log_p_teacher = F.log_softmax(teacher_topk_logprobs.float() / t, dim=-1)  # (B, T, K)
    log_p_student = F.log_softmax(student.gather(-1, teacher_topk_ids), dim=-1)  # (B, T, K)
    return _combine(student_logits, log_p_teacher, log_p_student, labels, alpha, t, kl)


def kd_loss_full(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, alpha: float,
                 temperature: float, kl: KLKind = "forward") -> KDLoss:
    """KD against the teacher's full logits (B, T, V): the exact loss top-k approximates."""
    t = temperature
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)  # (B, T, V)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)  # (B, T, V)
    return _combine(student_logits, log_p_teacher, log_p_student, labels, alpha, t, kl)


def _combine(student_logits: torch.Tensor, log_p_teacher: torch.Tensor, log_p_student: torch.Tensor,
             labels: torch.Tensor, alpha: float, t: float, kl: KLKind) -> KDLoss:
    if not 0.0 <= alpha <= 1.0 or t <= 0:
        raise ValueError(f"need 0 <= alpha <= 1 and temperature > 0, got alpha={alpha}, temperature={t}")
    mask = labels != IGNORE  # (B, T)
    kd_per_pos = _kl(log_p_teacher, log_p_student, kl)  # (B, T)
    kd = (kd_per_pos * mask).sum() / mask.sum().clamp(min=1)
    ce = F.cross_entropy(student_logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    return KDLoss(alpha * t * t * kd + (1 - alpha) * ce, kd, ce)


def _kl(log_p_teacher: torch.Tensor, log_p_student: torch.Tensor, kind: KLKind) -> torch.Tensor:
    """Per-position KL over the last dim: forward KL(p_t ‖ p_s), reverse KL(p_s ‖ p_t), or their mean."""
    forward = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)  # (B, T)
    if kind == "forward":
        return forward
    reverse = (log_p_student.exp() * (log_p_student - log_p_teacher)).sum(-1)  # (B, T)
    if kind == "reverse":
        return reverse
    if kind == "mix":
        return 0.5 * (forward + reverse)
    raise ValueError(f"kl must be forward, reverse or mix, got {kind!r}")
