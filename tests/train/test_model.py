"""Model building, optimizer parameter groups and the learning-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch

from lmforge.config import ModelConfig, TrainConfig
from lmforge.train.model import build_model, count_parameters
from lmforge.train.module import CausalLMModule, param_groups

SMALL = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, max_seq_len=64)


def test_build_model_is_a_tied_llama_with_the_tokenizer_ids() -> None:
    model = build_model(SMALL, vocab_size=300, bos_id=0, eos_id=0, pad_id=1)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert (model.config.num_key_value_heads, model.config.max_position_embeddings) == (1, 64)
    assert model.generation_config.eos_token_id == 0 and model.generation_config.pad_token_id == 1
    # embeddings once (tied) + per layer: q,o (32x32) + k,v (32x16) + 3 MLP (32x64) + 2 norms; final norm
    per_layer = 2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 64 + 2 * 32
    assert count_parameters(model) == 300 * 32 + 2 * per_layer + 32


def test_bad_head_split_is_refused() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        build_model(SMALL.model_copy(update={"num_heads": 3}), 300, 0, 0, 1)


def test_weight_decay_skips_norms_biases_and_embeddings() -> None:
    model = build_model(SMALL, 300, 0, 0, 1)
    decay, no_decay = param_groups(model, weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 and "embed" not in names[id(p)] for p in decay["params"])
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert "model.embed_tokens.weight" in no_decay_names and "model.norm.weight" in no_decay_names
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_lr_warms_up_linearly_then_cosines_to_the_floor() -> None:
    cfg = TrainConfig(warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    sched = CausalLMModule(build_model(SMALL, 300, 0, 0, 1), cfg).configure_optimizers()["lr_scheduler"]["scheduler"]
    f = [sched.lr_lambdas[0](s) for s in range(cfg.max_steps + 1)]  # training ends at max_steps (train.loop.fit)
    assert f[0] == 0.0 and f[5] == pytest.approx(0.5) and f[10] == pytest.approx(1.0)
    assert f[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False))


def test_optimizer_uses_the_groups_and_the_schedule() -> None:
    cfg = TrainConfig(lr=1e-2, warmup_steps=4, max_steps=20, weight_decay=0.05)
    module = CausalLMModule(build_model(SMALL, 300, 0, 0, 1), cfg)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert opt.param_groups[0]["lr"] == 0.0  # step 0 of warm-up
    assert conf["lr_scheduler"]["interval"] == "step"
    opt.step(), sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 / 4)
    assert isinstance(opt, torch.optim.AdamW)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    """train.gradient_checkpointing recomputes activations in backward: same loss and gradients, less memory."""
    batch = torch.randint(0, 64, (2, 16))  # (B, T)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = build_model(ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=2,
                                        intermediate_size=64, max_seq_len=32), 64, 0, 0, 1)
        module = CausalLMModule(model, TrainConfig(gradient_checkpointing=checkpointing))
        assert model.is_gradient_checkpointing is checkpointing
        module.compute_loss({"input_ids": batch, "labels": batch})["loss"].backward()
        grads.append(model.model.layers[0].mlp.up_proj.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])
