"""Memory-saving training: peak RSS and tokens/s of full fine-tuning, LoRA, and each with gradient checkpointing.

    .venv/bin/python benchmarks/bench_memory.py                         # random Llama shaped like tiny's model
    .venv/bin/python benchmarks/bench_memory.py --model DIR --batch 8 --seq-len 256 --steps 3

Each variant runs in a process of its own (peak RSS, ``ru_maxrss``, is per process) on the same seeded batches:
load the model, then ``--steps`` AdamW steps timed after one warm-up step; tokens/s is the median step's. The
same code path as training: ``CausalLMModule.compute_loss`` with ``train.gradient_checkpointing`` and
``finetune.lora`` (``lmforge.train.finetune.with_lora``). Prints a markdown table; writes only to a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {"full": (False, False), "full + checkpointing": (False, True), "LoRA": (True, False),
            "LoRA + checkpointing": (True, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="HF Llama dir (default: random, tiny's shape)")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per sequence")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # set in the child processes
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.model, args.variant, args.batch, args.seq_len, args.steps)))
        return
    model = args.model or _random_model(Path(tempfile.mkdtemp(prefix="lmforge-bench-memory-")))
    print(f"model {model}; batch {args.batch} x {args.seq_len} tokens, AdamW, fp32, median of {args.steps} steps; "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| variant | peak RSS MB | tokens/s | trainable parameters |\n|---|---|---|---|")
    for name in VARIANTS:
        out = subprocess.run([sys.executable, __file__, "--model", str(model), "--variant", name, "--batch",
                              str(args.batch), "--seq-len", str(args.seq_len), "--steps", str(args.steps)],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {name} | {row['peak_rss_mb']:,.0f} | {row['tokens_per_s']:,.0f} | {row['trainable']:,} |")


def run_variant(model_dir: Path, name: str, batch: int, seq_len: int, steps: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from lmforge.config import FinetuneConfig, TrainConfig
    from lmforge.train.finetune import with_lora
    from lmforge.train.module import CausalLMModule

    lora, checkpointing = VARIANTS[name]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = with_lora(model, FinetuneConfig(lora=True, lora_rank=16, lora_alpha=32)) if lora else model
    module = CausalLMModule(model, TrainConfig(gradient_checkpointing=checkpointing))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(10, model.config.vocab_size - 10, (batch, seq_len),
                        generator=torch.Generator().manual_seed(0))  # (B, T)
    times = []
    for _ in range(steps + 1):
        began = time.perf_counter()
        module.compute_loss({"input_ids": ids, "labels": ids})["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - began)
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "tokens_per_s": batch * seq_len / statistics.median(times[1:]),
            "trainable": sum(p.numel() for p in params)}


def _random_model(out: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_serve import _random_model as random_llama

    return random_llama(out / "model", "tiny")


if __name__ == "__main__":
    main()
