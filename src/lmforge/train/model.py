"""Build the Hugging Face ``LlamaForCausalLM`` every stage trains, so vLLM serves the export unchanged.

    model = build_model(cfg.pretrain.model, vocab_size=2048, bos_id=0, eos_id=0, pad_id=1)
    count_parameters(model)  # unique parameters: tied embeddings count once
"""

from __future__ import annotations

from torch import nn
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from lmforge.config import ModelConfig


def build_model(model_cfg: ModelConfig, vocab_size: int, bos_id: int, eos_id: int, pad_id: int) -> LlamaForCausalLM:
    """A randomly initialised Llama decoder of the configured size (seed torch first for reproducibility)."""
    if model_cfg.hidden_size % model_cfg.num_heads or model_cfg.num_heads % model_cfg.num_kv_heads:
        raise ValueError(f"hidden_size {model_cfg.hidden_size} must divide into num_heads {model_cfg.num_heads}, "
                         f"and num_heads into num_kv_heads {model_cfg.num_kv_heads}")
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=model_cfg.hidden_size,
        intermediate_size=model_cfg.intermediate_size,
        num_hidden_layers=model_cfg.num_layers,
        num_attention_heads=model_cfg.num_heads,
        num_key_value_heads=model_cfg.num_kv_heads,
        max_position_embeddings=model_cfg.max_seq_len,
        rope_parameters={"rope_type": "default", "rope_theta": model_cfg.rope_theta},
        tie_word_embeddings=model_cfg.tie_embeddings,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        attention_bias=False,
        mlp_bias=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = generation_config(bos_id, eos_id, pad_id)
    return model


def generation_config(bos_id: int, eos_id: int, pad_id: int) -> GenerationConfig:
    """Greedy decoding that stops at eos; written beside every exported model."""
    return GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Unique parameters (``parameters()`` yields a tied weight once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
