"""Training FLOPs: nanoGPT's per-token estimate, and a measured matmul peak to hold achieved FLOP/s against.

    per_token = TokenFlops.of(model)           # 6 N + 12 L H Q T, FLOPs to train one token (forward + backward)
    per_token(128) * tokens_per_s              # achieved FLOP/s at sequence length T = 128
    measure_matmul_flops(torch.device("cpu"))  # fp32 SGEMM FLOP/s of this device, measured now
    machine_peak_flops("cpu", state / "peak_flops.json")  # the same, or the best this machine has shown

``N`` counts every weight a token is multiplied by: all parameters except the input embedding table (a
lookup, no FLOPs), so the output head stays in, tied to the embedding or not. nanoGPT subtracts only its
position table for the same reason: its tied token embedding is the head's matmul. For the tiny profile
(vocabulary 2048, width 128) the head is a quarter of the matmul work, so leaving it out would understate
MFU. Norm weights are counted too (negligible). ``12 L H Q T`` is attention's QK^T and AV over the whole
T x T square (causal masking not halved), as in nanoGPT and the PaLM paper (appendix B).

The estimate assumes every weight gets a gradient; LoRA fine-tuning skips the frozen weights' weight
gradients (about 4 N instead of 6 N), and a distillation teacher's forward pass is not counted, so MFU
overstates the one and understates the other.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmforge.artifacts import write_json_atomic


@dataclass(frozen=True)
class TokenFlops:
    """FLOPs to train one token of a decoder: ``6 * params + 12 * layers * heads * head_dim * seq_len``."""

    params: int  # every weight a token multiplies by: all but the input embedding table
    layers: int
    heads: int
    head_dim: int

    def __call__(self, seq_len: int) -> int:
        return 6 * self.params + 12 * self.layers * self.heads * self.head_dim * seq_len

    @classmethod
    def of(cls, model: nn.Module) -> TokenFlops:
        """Read the shape of a Hugging Face decoder (a peft wrapper forwards ``config`` and the embeddings)."""
        config: Any = model.config
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(matmul_parameters(model), config.num_hidden_layers, heads, head_dim)


@dataclass
class RateMeter:
    """Tokens, FLOPs and seconds added up over timed steps, turned into rates by ``rates``."""

    tokens: int = 0
    flops: int = 0
    seconds: float = 0.0

    def add(self, tokens: int, flops: int, seconds: float) -> None:
        self.tokens, self.flops, self.seconds = self.tokens + tokens, self.flops + flops, self.seconds + seconds

    def rates(self, peak_flops: float | None) -> dict[str, float]:
        """``tokens_per_s``, ``flops_per_s``, ``flops_per_token``, + ``peak_flops`` and ``mfu`` given a peak."""
        if not self.seconds:
            return {}
        out = {"tokens_per_s": self.tokens / self.seconds, "flops_per_s": self.flops / self.seconds,
               "flops_per_token": self.flops / self.tokens}
        if peak_flops:
            out |= {"peak_flops": peak_flops, "mfu": self.flops / self.seconds / peak_flops}
        return out


def matmul_parameters(model: nn.Module) -> int:
    """All parameters (a tied weight once) minus the input embedding table, unless it is also the output head."""
    params = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding
    return params if tied else params - embedding.numel()


@torch.no_grad()
def measure_matmul_flops(device: torch.device | str = "cpu", size: int = 1024, dtype: torch.dtype = torch.float32,
                         repeats: int = 5, clock: Callable[[], float] = time.perf_counter) -> float:
    """FLOP/s of ``torch.matmul`` on two ``size`` x ``size`` matrices: the fastest of ``repeats`` after a warm-up.

    The fastest run counts, so a burst of load from another process slows single runs, never the figure.
    Autocast is switched off, so inside a bf16-mixed step this still measures ``dtype``. ``clock`` may be
    ``time.process_time`` (CPU only): FLOPs per CPU-second of this process, a figure other load barely moves.
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)  # its own generator: the training RNG stream stays untouched
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)  # (n, n)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)  # (n, n)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = math.inf
    with torch.autocast(device.type, enabled=False):
        for i in range(repeats + 1):
            sync()
            start = clock()
            torch.matmul(a, b)
            sync()
            if i:  # run 0 warms up the allocator and the kernels
                best = min(best, clock() - start)
    return 2 * size**3 / best  # a multiply and an add per inner-product term


def machine_peak_flops(device: torch.device | str, record: Path, measure: Callable[[], float] | None = None
                       ) -> float:
    """The device's matmul peak: measured now, or the best measured before on this machine if that is higher.

    A measurement can only come out low (other processes share the cores), never high, so the best one is the
    closest to the hardware's peak; one taken on busy cores would put MFU above 1 once the load goes. The
    best per device, host and thread count is kept in ``record`` (JSON); an unreadable record is replaced.
    """
    device = torch.device(device)
    measured = measure() if measure is not None else measure_matmul_flops(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    key = f"{platform.node()}|{device.type}|{name}|threads={torch.get_num_threads()}"
    try:
        seen = json.loads(record.read_text())
    except (OSError, ValueError):
        seen = {}
    seen = seen if isinstance(seen, dict) else {}
    before = seen.get(key)
    before = float(before) if isinstance(before, int | float) else 0.0
    if measured <= before:
        return before
    seen[key] = measured
    try:
        write_json_atomic(record, seen)
    except OSError:
        pass  # a read-only state dir: the figure is still right for this run
    return measured
