"""Benchmark pretraining throughput: tokens/s, FLOP/s, MFU against this machine's own SGEMM rate, Lightning's
overhead over a plain PyTorch loop, and bf16-mixed against fp32. Prints one table.

    python benchmarks/bench_train.py                      # tiny profile, 20 timed steps per run, ~3 min idle
    python benchmarks/bench_train.py --steps 50 --rounds 3 --compile

Every variant trains the profile's pretraining model (same seeded initial weights) on the same batches of the
profile's batch shape: real windows from ``runs/<profile>/shards`` when the data stage has run, seeded random
tokens otherwise. The variants:

- SGEMM: ``torch.matmul`` fp32 on square matrices (``--gemm-size``), fastest of several runs, measured before
  and after the training runs; the better figure is the machine's reachable peak.
- plain: a hand-written PyTorch loop with the stage's optimizer (AdamW, the same parameter groups), warm-up +
  cosine schedule, gradient clipping and accumulation.
- Lightning fp32 / bf16-mixed: ``CausalLMModule`` under the stage's own Trainer (``build_trainer``), no logger
  and no checkpoint, so the difference to "plain" is Lightning plus the module's per-step logging.
- ``--compile``: Lightning fp32 with ``torch.compile`` (Inductor, needs a C compiler), compile time untimed.
- micro: plain and Lightning again on a one-layer d=32 model and 2 x 8 batches, where the step is almost all
  framework: the difference of their median steps is Lightning's fixed cost per step, in milliseconds. Held
  against the plain tiny step it gives the overhead with much less noise than the two tiny runs' ratio.

FLOPs per token are nanoGPT's ``6 N + 12 L H Q T`` (``lmforge.train.flops``; N = all weights but the input
embedding table, the tied output head included). The first ``--warmup`` steps of every run are not timed;
every later step is, start to start, and a rate is the median step of the fastest round, so a burst of load
from another process moves a few steps, or one round, not the figure. Plain and Lightning fp32 alternate for
``--rounds`` rounds, each going first in turn. Each rate is given per wall second and per CPU second of this
process (``time.process_time``, all its threads): other load stretches wall time much more than CPU time.
All ratios are between figures taken in this process. Writes only to a temporary directory.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from lmforge.config import LMForgeConfig, ModelConfig, TrainConfig, load_config
from lmforge.train.data import RandomWindows, load_split, read_manifest
from lmforge.train.flops import TokenFlops, measure_matmul_flops
from lmforge.train.loop import build_trainer
from lmforge.train.model import build_model
from lmforge.train.module import CausalLMModule, causal_lm_loss, lr_factor, param_groups

Batch = dict[str, torch.Tensor]
Row = tuple[str, str, str, str]  # metric, measured, target, verdict


@dataclass(frozen=True)
class Run:
    step_wall: list[float]  # seconds of each timed optimizer step, start to start (the last: to its end)
    step_cpu: list[float]  # the same in CPU seconds of this process
    losses: list[float]  # one per optimizer step, warm-up included


@dataclass(frozen=True)
class Rate:
    """One variant's typical step: the median timed step of its fastest round (a round can be slow throughout)."""

    wall_s: float
    cpu_s: float

    @classmethod
    def of(cls, runs: list[Run]) -> Rate:
        return cls(min(float(np.median(r.step_wall)) for r in runs), min(float(np.median(r.step_cpu)) for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="tiny", help="config profile whose pretraining model and batches to use")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed optimizer steps before them")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of plain and Lightning fp32, alternating")
    parser.add_argument("--gemm-size", type=int, default=1024, help="n of the n x n SGEMM")
    parser.add_argument("--compile", action="store_true", help="also time Lightning fp32 with torch.compile")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no per-fit banners between the rows
    warnings.filterwarnings("ignore", ".*no `val_dataloader`.*|.*LeafSpec.*")  # expected here, or not ours

    cfg = load_config(args.profile)
    train = cfg.pretrain.train.model_copy(update={"max_steps": args.warmup + args.steps, "val_every": 10**9,
                                                  "ckpt_every": 10**9, "progress_bar": False,
                                                  "accelerator": "cpu", "devices": 1, "strategy": "auto",
                                                  "compile": False, "precision": "32-true"})
    batches, source, vocab = make_batches(cfg, train, args.warmup + args.steps)
    torch.manual_seed(train.seed)
    model = build_model(cfg.pretrain.model, vocab, 0, 0, 1)
    per_token = TokenFlops.of(model)(train.seq_len)
    tokens = train.accumulate * train.batch_size * train.seq_len  # per optimizer step
    load_before = os.getloadavg()[0]

    gemm = [gemm_rates(args.gemm_size)]
    plain: list[Run] = []
    lit: list[Run] = []
    for i in range(args.rounds):  # alternating, and in turn first: a slow spell or a cold start hits both
        runners = [lambda: plain.append(plain_loop(copy.deepcopy(model), batches, train, args.warmup)),
                   lambda: lit.append(lightning_loop(copy.deepcopy(model), batches, train, args.warmup, gemm[0][0]))]
        for run in runners[::-1] if i % 2 else runners:
            run()
    variants = {"plain PyTorch fp32": plain, "Lightning fp32": lit}
    if args.compile:
        variants["Lightning fp32 + torch.compile"] = [lightning_loop(
            copy.deepcopy(model), batches, train.model_copy(update={"compile": True}), args.warmup, gemm[0][0])]
    variants["Lightning bf16-mixed"] = [lightning_loop(
        copy.deepcopy(model), batches, train.model_copy(update={"precision": "bf16-mixed"}), args.warmup,
        gemm[0][0])]
    gemm.append(gemm_rates(args.gemm_size))
    micro_plain, micro_lit = micro_steps(train, args.rounds)

    sgemm_wall, sgemm_cpu = max(g[0] for g in gemm), max(g[1] for g in gemm)
    rates = {name: Rate.of(runs) for name, runs in variants.items()}
    rows: list[Row] = [
        (f"SGEMM fp32 n={args.gemm_size}, best of before/after (wall | CPU)",
         f"{sgemm_wall / 1e9:.1f} | {sgemm_cpu / 1e9:.1f} GFLOP/s", "", ""),
    ]
    for name, rate in rates.items():
        mfu_wall, mfu_cpu = tokens * per_token / rate.wall_s / sgemm_wall, tokens * per_token / rate.cpu_s / sgemm_cpu
        rows += [
            (f"{name}: tokens/s (wall | CPU)", f"{tokens / rate.wall_s:,.0f} | {tokens / rate.cpu_s:,.0f}", "", ""),
            (f"{name}: FLOP/s (wall | CPU)",
             f"{tokens * per_token / rate.wall_s / 1e9:.2f} | {tokens * per_token / rate.cpu_s / 1e9:.2f} G", "", ""),
            (f"{name}: MFU vs SGEMM (wall | CPU)", f"{mfu_wall:.1%} | {mfu_cpu:.1%}",
             *((">= 30%", _verdict(max(mfu_wall, mfu_cpu) >= 0.30)) if name == "Lightning fp32" else ("", ""))),
        ]
    over_wall = rates["Lightning fp32"].wall_s / rates["plain PyTorch fp32"].wall_s - 1
    over_cpu = rates["Lightning fp32"].cpu_s / rates["plain PyTorch fp32"].cpu_s - 1
    bf16, fp32, base = rates["Lightning bf16-mixed"], rates["Lightning fp32"], rates["plain PyTorch fp32"]
    fixed_wall, fixed_cpu = micro_lit.wall_s - micro_plain.wall_s, micro_lit.cpu_s - micro_plain.cpu_s
    rows += [
        ("Lightning overhead vs plain, median step (wall | CPU)", f"{over_wall:+.1%} | {over_cpu:+.1%}", "<= 5%",
         _verdict(min(over_wall, over_cpu) <= 0.05)),
        ("Lightning fixed cost per step, micro model (wall | CPU)",
         f"{fixed_wall * 1e3:.1f} | {fixed_cpu * 1e3:.1f} ms", "", ""),
        ("  = overhead on the plain tiny step (wall | CPU)",
         f"{fixed_wall / base.wall_s:+.1%} | {fixed_cpu / base.cpu_s:+.1%}", "<= 5%",
         _verdict(min(fixed_wall / base.wall_s, fixed_cpu / base.cpu_s) <= 0.05)),
        ("  run totals per round, wall s (plain | Lightning)",
         "  ".join(f"{sum(p.step_wall):.1f} | {sum(q.step_wall):.1f}" for p, q in zip(plain, lit, strict=True)),
         "", ""),
        ("bf16-mixed speed / fp32 speed (wall | CPU)",
         f"{fp32.wall_s / bf16.wall_s:.2f}x | {fp32.cpu_s / bf16.cpu_s:.2f}x", "", ""),
    ]
    for name, runs in variants.items():
        same = name == "Lightning fp32" or name.endswith("compile")
        rows.append((f"loss, step 1 -> {train.max_steps}: {name}", _losses(runs[0].losses),
                     "= plain" if same else "",
                     _verdict(np.allclose(plain[0].losses, runs[0].losses, atol=1e-3)) if same else ""))
    load_after = os.getloadavg()[0]
    m = cfg.pretrain.model
    _print_table(rows, f"lmforge training benchmark: profile {args.profile}, model d={m.hidden_size} L={m.num_layers} "
                       f"H={m.num_heads}, {per_token / 1e6:.2f} MFLOP/token; batch {train.batch_size} x "
                       f"{train.seq_len} x accumulate {train.accumulate}; {args.steps} timed steps after "
                       f"{args.warmup}, {args.rounds} rounds; {source}\n"
                       f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
                       f"load average {load_before:.1f} -> {load_after:.1f}; python {sys.version.split()[0]}\n"
                       "rates: median step of the fastest round; wall = per wall second, CPU = per CPU second "
                       "of this process (all its threads)")


def make_batches(cfg: LMForgeConfig, train: TrainConfig, steps: int) -> tuple[list[Batch], str, int]:
    """``steps x accumulate`` batches of (batch_size, seq_len), with where they came from and the vocab size."""
    n = steps * train.accumulate
    shards = cfg.paths.shards
    if (shards / "_COMPLETE").is_file():
        windows = RandomWindows(load_split(shards, "train"), train.seq_len, train.seed)
        items = [windows(i) for i in range(n * train.batch_size)]
        vocab, source = read_manifest(shards)["vocab_size"], f"data: {shards}"
    else:
        gen = torch.Generator().manual_seed(train.seed)
        vocab, source = cfg.data.vocab_size, "data: seeded random tokens (run `lmforge data` for real windows)"
        tokens = torch.randint(0, vocab, (n * train.batch_size, train.seq_len + 1), generator=gen)
        items = [{"input_ids": t[:-1], "labels": t[1:]} for t in tokens]
    batches = [{key: torch.stack([x[key] for x in items[b:b + train.batch_size]]) for key in ("input_ids", "labels")}
               for b in range(0, len(items), train.batch_size)]  # each (B, T)
    return batches, source, vocab


def micro_steps(train: TrainConfig, rounds: int) -> tuple[Rate, Rate]:
    """Plain and Lightning median steps on a model so small that the step is nearly all loop and logging."""
    micro = train.model_copy(update={"max_steps": 60, "batch_size": 2, "seq_len": 8, "accumulate": 1})
    torch.manual_seed(train.seed)
    model = build_model(ModelConfig(hidden_size=32, num_layers=1, num_heads=1, num_kv_heads=1, intermediate_size=32,
                                    max_seq_len=16), 64, 0, 0, 1)
    gen = torch.Generator().manual_seed(train.seed)
    tokens = torch.randint(0, 64, (micro.max_steps, micro.batch_size, micro.seq_len + 1), generator=gen)
    batches = [{"input_ids": t[:, :-1], "labels": t[:, 1:]} for t in tokens]  # each (2, 8)
    plain, lit = [], []
    for _ in range(rounds):
        plain.append(plain_loop(copy.deepcopy(model), batches, micro, warmup=10))
        lit.append(lightning_loop(copy.deepcopy(model), batches, micro, warmup=10, peak=1e11))
    return Rate.of(plain), Rate.of(lit)


def gemm_rates(size: int) -> tuple[float, float]:
    """SGEMM FLOP/s per wall second and per CPU second of this process."""
    return (measure_matmul_flops("cpu", size, repeats=10),
            measure_matmul_flops("cpu", size, repeats=10, clock=time.process_time))


def plain_loop(model: nn.Module, batches: list[Batch], train: TrainConfig, warmup: int) -> Run:
    """The stage's optimisation written out by hand: the baseline Lightning is measured against."""
    model.train()
    opt = torch.optim.AdamW(param_groups(model, train.weight_decay), lr=train.lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, train.warmup_steps, train.max_steps, train.min_lr_ratio))
    losses: list[float] = []
    marks: list[tuple[float, float]] = []  # (wall, CPU) at the start of each step, then at the end
    for step in range(train.max_steps):
        marks.append((time.perf_counter(), time.process_time()))
        for micro in range(train.accumulate):
            batch = batches[step * train.accumulate + micro]
            loss = causal_lm_loss(model(input_ids=batch["input_ids"]).logits, batch["labels"])
            (loss / train.accumulate).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    marks.append((time.perf_counter(), time.process_time()))
    return _run(marks, warmup, losses)


def _run(marks: list[tuple[float, float]], warmup: int, losses: list[float]) -> Run:
    steps = np.diff(np.asarray(marks[warmup:]), axis=0)  # (timed steps, 2): wall, CPU seconds
    return Run(steps[:, 0].tolist(), steps[:, 1].tolist(), losses)


class _StepClock(L.Callback):
    """Marks (wall, CPU) time at the start of every optimizer step and after the last; records each step's loss."""

    def __init__(self, last_batch: int) -> None:
        self.last = last_batch
        self.marks: list[tuple[float, float]] = []
        self.losses: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if batch_idx % trainer.accumulate_grad_batches == 0:
            self.marks.append((time.perf_counter(), time.process_time()))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches == 0:
            self.losses.append(float(outputs["loss"]))
        if batch_idx == self.last:
            self.marks.append((time.perf_counter(), time.process_time()))


def lightning_loop(model: nn.Module, batches: list[Batch], train: TrainConfig, warmup: int, peak: float) -> Run:
    """The same training under the stage's Trainer (peak given, so the module does not measure it again)."""
    clock = _StepClock(len(batches) - 1)
    train = train.model_copy(update={"peak_flops": peak})
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-train-") as tmp:
        trainer = build_trainer(train, Path(tmp), logger=False, callbacks=[clock])
        trainer.fit(CausalLMModule(model, train), train_dataloaders=DataLoader(batches, batch_size=None))
    return _run(clock.marks, warmup, clock.losses)


def _losses(values: list[float]) -> str:
    return f"{values[0]:.4f} -> {values[-1]:.4f}"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def _print_table(rows: list[Row], title: str) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(title)
    header = ("metric", "measured", "target", "")
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
