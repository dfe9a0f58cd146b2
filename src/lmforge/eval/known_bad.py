"""Known-bad models the quality gate must refuse, shaped like a given model: the gate's negative controls.

    made = known_bad_models(Path("runs/tiny/models/student"), Path("/tmp/bad"))
    # {"random": ..., "repeats": ..., "eos-first": ...}: randomly initialised, one token forever, EOS at once

Used by ``benchmarks/bench_quality.py`` and the eval tests; a gate that passes any of them is a defect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.artifacts import atomic_dir


def known_bad_models(like: Path, out: Path, seed: int = 0) -> dict[str, Path]:
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(like)
    config = AutoConfig.from_pretrained(like)
    repeated = tokenizer.encode(" the", add_special_tokens=False)[0]
    made = {}
    for name, token in (("random", None), ("repeats", repeated), ("eos-first", tokenizer.eos_token_id)):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        if token is not None:
            force_token(model, token)
        with atomic_dir(out / name, {"kind": f"known-bad model: {name}", "like": str(like)}) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        made[name] = out / name
    return made


def force_token(model: Any, token_id: int) -> None:
    """Make greedy decoding pick ``token_id`` at every step: every block's output projections are zero (the
    residual stream is the input token's embedding), each embedding gets a positive first coordinate, and an
    untied output head scores only ``token_id``, along that coordinate. The margin (2.0) wins every argmax
    while keeping log-likelihoods finite (lm-eval's word perplexity overflows math.exp on far larger ones)."""
    import torch

    model.config.tie_word_embeddings = False
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed = model.model.embed_tokens.weight  # (V, C)
        embed[:, 0] = embed[:, 0].abs() + 1.0
        head = torch.zeros_like(embed)  # (V, C)
        head[token_id, 0] = 2.0
        model.lm_head.weight = torch.nn.Parameter(head)
