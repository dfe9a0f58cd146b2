"""A student made of the teacher's own layers: which ``k`` of its ``n`` decoder layers to keep, and the copy.

    keep = layers_to_keep(teacher, k=11, calibration=ids)   # (B, T) token ids from the training split
    student = keep_layers(teacher, keep)

Evenly spaced layers (DistilBERT's choice) break a deep narrow model: SmolLM2-135M's 30 layers cut to 11 that
way start at a perplexity in the millions. Deeper layers repeat one another far more than the first and last
do (Gromov et al., "The Unreasonable Ineffectiveness of the Deeper Layers", 2024), so with calibration tokens
the student drops the one contiguous block of ``n - k`` layers, first and last kept, whose removal raises the
loss least; ``benchmarks/README.md`` has the measured figures.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import LlamaForCausalLM


def layers_to_keep(model: LlamaForCausalLM, k: int, calibration: torch.Tensor | None = None) -> list[int]:
    """Indices of the ``k`` layers to keep: the cheapest contiguous drop on ``calibration`` (B, T), else evenly
    spaced with the first and last included."""
    n = model.config.num_hidden_layers
    if not 1 <= k < n:
        raise ValueError(f"distill.student_layers must be in [1, {n - 1}] for a {n}-layer teacher, not {k}")
    if calibration is None or k < 2:
        return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)}) if k > 1 else [n - 1]
    drop = n - k
    candidates = [[*range(start), *range(start + drop, n)] for start in range(1, n - drop)]  # first, last kept
    return min(candidates, key=lambda keep: _loss(keep_layers(model, keep), calibration))


def keep_layers(model: LlamaForCausalLM, keep: list[int]) -> LlamaForCausalLM:
    """A copy of ``model`` with only the decoder layers ``keep`` (embeddings, final norm and head its own)."""
    student = copy.deepcopy(model)
    student.model.layers = nn.ModuleList(student.model.layers[i] for i in keep)
    for index, layer in enumerate(student.model.layers):
        layer.self_attn.layer_idx = index  # the KV cache is indexed by position in the stack
    student.config.num_hidden_layers = len(keep)
    if getattr(student.config, "layer_types", None):
        student.config.layer_types = [student.config.layer_types[i] for i in keep]
    return student


@torch.no_grad()
def _loss(model: LlamaForCausalLM, ids: torch.Tensor) -> float:
    model.eval()
    return float(model(input_ids=ids, labels=ids).loss)
