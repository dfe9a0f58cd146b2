"""What the KV cache costs per token and how many sequences the configured cache holds.

    kv = kv_cache_budget(json.loads((model_dir / "config.json").read_text()), cfg.serve)
    kv.bytes_per_token    # 2 (K and V) x layers x KV heads x head dim x bytes per value
    kv.tokens, kv.sequences_at_max_len

Each decoded token keeps one key and one value vector per layer and KV head; vLLM reserves the cache up front
(``serve.kv_cache_gib``, whole GiB on CPU) in blocks, so ``tokens`` bounds what all running sequences hold
together, and ``sequences_at_max_len`` is how many can run at full context at once (more when shorter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lmforge.config import ServeConfig

GIB = 1 << 30
BYTES_PER_VALUE = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2,
                   "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


@dataclass(frozen=True)
class KVCacheBudget:
    layers: int
    kv_heads: int
    head_dim: int
    bytes_per_value: int
    cache_bytes: int
    max_model_len: int

    @property
    def bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_value  # K and V

    @property
    def tokens(self) -> int:
        return self.cache_bytes // self.bytes_per_token

    @property
    def sequences_at_max_len(self) -> int:
        return self.tokens // self.max_model_len


def kv_cache_budget(hf_config: dict[str, Any], serve: ServeConfig) -> KVCacheBudget:
    """The budget of a model (its HF ``config.json``) served with ``serve``: the cache dtype is the model's
    (``serve.dtype``) unless ``serve.kv_cache_dtype`` names one, the size what vLLM's CPU backend reserves."""
    heads = hf_config["num_attention_heads"]
    dtype = serve.dtype if serve.kv_cache_dtype == "auto" else serve.kv_cache_dtype
    return KVCacheBudget(
        layers=hf_config["num_hidden_layers"],
        kv_heads=hf_config.get("num_key_value_heads") or heads,
        head_dim=hf_config.get("head_dim") or hf_config["hidden_size"] // heads,
        bytes_per_value=BYTES_PER_VALUE[dtype],
        cache_bytes=max(1, math.ceil(serve.kv_cache_gib)) * GIB,  # VLLM_CPU_KVCACHE_SPACE: whole GiB
        max_model_len=serve.max_model_len or hf_config.get("max_position_embeddings", 2048),
    )
