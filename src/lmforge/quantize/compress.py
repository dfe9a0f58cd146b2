"""Quantise an HF Llama directory into compressed-tensors' format, which vLLM loads as it is.

    quantize_model(model_dir, out, "w8a8")              # int8 weights per channel + int8 activations per token
    quantize_model(model_dir, out, "w4a16", group_size=128)  # int4 weights per group of 128 input columns

compressed-tensors (installed with vLLM) owns the format: its preset schemes (W8A8, W4A16), its parameter
initialisation, ``calculate_qparams`` for the scales and ``ModelCompressor`` to pack and describe the weights in
config.json. Scales are round-to-nearest from each channel's (or group's) weight range; W8A8's activation
scales are computed per token at run time, so neither method needs calibration data to set its scales. A
calibrated method (GPTQ, AWQ) would need llmcompressor or gptqmodel, which the lock does not hold. Every
Linear of the decoder is quantised; the output head (tied to the embeddings) stays as it is.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from lmforge.artifacts import atomic_dir, write_json_atomic

PRESETS = {"w8a8": "W8A8", "w4a16": "W4A16"}  # compressed-tensors' preset scheme names
COPIED = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
          "generation_config.json")


class QuantizeError(RuntimeError):
    """The model cannot be quantised with this method (the message says why in one line)."""


def quantize_model(model_dir: Path, out: Path, method: str, group_size: int = 128,
                   meta: dict[str, Any] | None = None) -> Path:
    """Write ``out`` (atomically, ``_COMPLETE`` last): the quantised weights, config.json with its
    quantization_config, the parent's tokenizer and generation config, and ``lmforge.json`` (``meta``)."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationConfig,
        QuantizationStatus,
        apply_quantization_config,
        preset_name_to_scheme,
    )
    from transformers import AutoModelForCausalLM

    if method not in PRESETS:
        raise QuantizeError(f"unknown quantisation method {method!r}: one of {sorted(PRESETS)}")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    scheme = preset_name_to_scheme(PRESETS[method], ["Linear"])
    if scheme.weights.group_size is not None:
        scheme.weights.group_size = group_size
        _check_groups(model, group_size)
    config = QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"],
                                quantization_status=QuantizationStatus.INITIALIZED)
    apply_quantization_config(model, config)
    set_weight_scales(model)
    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)  # int8 weights / int4 packed into int32, scales beside them
    with atomic_dir(out, {"stage": "quantize", "method": method}) as tmp:
        model.save_pretrained(tmp)
        compressor.update_config(str(tmp))  # config.json: quantization_config, as vLLM reads it
        for name in COPIED:
            if (Path(model_dir) / name).is_file():
                shutil.copy2(Path(model_dir) / name, tmp / name)
        write_json_atomic(tmp / "lmforge.json", {**(meta or {}), "quantization": method})
    return out


@torch.no_grad()
def set_weight_scales(model: torch.nn.Module) -> int:
    """Round-to-nearest scales for every quantised Linear from its weight range (per output channel, or per
    group of input columns); returns how many modules were set."""
    from compressed_tensors.quantization import QuantizationStrategy
    from compressed_tensors.quantization.utils import calculate_qparams

    count = 0
    for module in model.modules():
        scheme = getattr(module, "quantization_scheme", None)
        if scheme is None or scheme.weights is None:
            continue
        args, weight = scheme.weights, module.weight  # weight: (out, in)
        if args.strategy == QuantizationStrategy.GROUP:
            weight = weight.unflatten(-1, (-1, args.group_size))  # (out, in / g, g)
            low, high = weight.amin(-1), weight.amax(-1)  # (out, in / g)
        else:
            low, high = weight.amin(-1, keepdim=True), weight.amax(-1, keepdim=True)  # (out, 1)
        scale, zero_point = calculate_qparams(low, high, args)
        module.weight_scale.copy_(scale.reshape(module.weight_scale.shape))
        module.weight_zero_point.copy_(zero_point.reshape(module.weight_zero_point.shape))
        count += 1
    return count


def _check_groups(model: torch.nn.Module, group_size: int) -> None:
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name != "lm_head" and module.in_features % group_size:
            raise QuantizeError(f"{name} has {module.in_features} input columns, not a multiple of "
                                f"quantize.group_size {group_size}: choose a group size that divides every width")
