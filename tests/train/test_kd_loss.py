"""kd_loss: known values, temperature scaling, KL directions, ignored positions, gradients, top-k vs full."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lmforge.distill.loss import kd_loss, kd_loss_full, teacher_topk


def _logits(seed: int, shape=(2, 3, 11)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 2


LABELS = torch.tensor([[1, 2, -100], [4, -100, 6]])  # (B, T)


@pytest.mark.parametrize("kl", ["forward", "reverse", "mix"])
def test_identical_distributions_have_zero_kd(kl: str) -> None:
    logits = _logits(0)
    logprobs, ids = teacher_topk(logits, k=5)
    out = kd_loss(logits, logprobs, ids, LABELS, alpha=0.5, temperature=2.0, kl=kl)
    assert out.kd.item() == pytest.approx(0.0, abs=1e-6)
    assert out.loss.item() == pytest.approx(0.5 * out.ce.item(), rel=1e-6)
    full = kd_loss_full(logits, logits, LABELS, alpha=0.5, temperature=2.0, kl=kl)
    assert full.kd.item() == pytest.approx(0.0, abs=1e-6)


def test_alpha_zero_is_cross_entropy_and_ignores_masked_positions() -> None:
    s, t = _logits(0), _logits(1)
    out = kd_loss_full(s, t, LABELS, alpha=0.0, temperature=1.0)
    keep = LABELS != -100
    assert out.loss.item() == pytest.approx(F.cross_entropy(s[keep], LABELS[keep]).item(), rel=1e-6)
    t_masked = t.clone()
    t_masked[~keep] = 100 * torch.randn_like(t_masked[~keep])  # teacher garbage where labels are ignored
    assert kd_loss_full(s, t_masked, LABELS, 1.0, 2.0).kd.item() == pytest.approx(
        kd_loss_full(s, t, LABELS, 1.0, 2.0).kd.item(), rel=1e-6)


def test_known_value_and_temperature_scaling() -> None:
    s = torch.tensor([[[0.0, 0.0]]])  # student uniform over 2 tokens
    t = torch.tensor([[[math.log(3.0), 0.0]]])  # teacher (3/4, 1/4) at T = 1
    labels = torch.tensor([[0]])
    kl_t1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    out = kd_loss_full(s, t, labels, alpha=1.0, temperature=1.0)
    assert out.kd.item() == pytest.approx(kl_t1, rel=1e-5) and out.loss.item() == pytest.approx(kl_t1, rel=1e-5)
    # At T = 2 the teacher is softmax(t / 2) = (sqrt3, 1) / (sqrt3 + 1); the loss carries T^2 = 4.
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    kl_t2 = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    out2 = kd_loss_full(s, t, labels, alpha=1.0, temperature=2.0)
    assert out2.kd.item() == pytest.approx(kl_t2, rel=1e-5)
    assert out2.loss.item() == pytest.approx(4 * kl_t2, rel=1e-5)


def test_reverse_and_mix_directions() -> None:
    s, t = _logits(2), _logits(3)
    fwd, rev, mix = (kd_loss_full(s, t, LABELS, 1.0, 1.0, kl).kd.item() for kl in ("forward", "reverse", "mix"))
    keep = LABELS != -100
    ps, pt = F.log_softmax(s[keep], -1), F.log_softmax(t[keep], -1)
    assert fwd == pytest.approx(F.kl_div(ps, pt, log_target=True, reduction="batchmean").item(), rel=1e-5)
    assert rev == pytest.approx(F.kl_div(pt, ps, log_target=True, reduction="batchmean").item(), rel=1e-5)
    assert mix == pytest.approx((fwd + rev) / 2, rel=1e-6) and fwd != pytest.approx(rev)
    with pytest.raises(ValueError, match="kl must be"):
        kd_loss_full(s, t, LABELS, 1.0, 1.0, "sideways")


def test_topk_with_the_whole_vocabulary_equals_full_logits() -> None:
    s, t = _logits(4), _logits(5)
    logprobs, ids = teacher_topk(t, k=t.shape[-1])
    for kl in ("forward", "reverse", "mix"):
        top = kd_loss(s, logprobs, ids, LABELS, 0.3, 2.0, kl)
        full = kd_loss_full(s, t, LABELS, 0.3, 2.0, kl)
        assert top.loss.item() == pytest.approx(full.loss.item(), rel=1e-5)


def test_gradient_reaches_the_student_only_through_kept_positions() -> None:
    s = _logits(6).requires_grad_()
    logprobs, ids = teacher_topk(_logits(7), k=4)
    kd_loss(s, logprobs, ids, LABELS, alpha=0.7, temperature=2.0).loss.backward()
    assert s.grad is not None and s.grad[LABELS != -100].abs().sum() > 0
    assert s.grad[LABELS == -100].abs().sum() == 0
    assert not logprobs.requires_grad
