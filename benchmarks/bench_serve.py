"""Serving benchmark: vLLM's OpenAI server against Hugging Face ``generate``, the gateway's overhead, the filter's cost.

    .venv/bin/python benchmarks/bench_serve.py                       # ~5-10 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_serve.py --model runs/tiny/models/student --prompts 32 --max-tokens 128
    .venv/bin/python benchmarks/bench_serve.py --set serve.cpu_threads=all --set serve.stream_interval=8
    .venv/bin/python benchmarks/bench_serve.py --only-in-flight --in-flight 1,8,32,64   # section 6 alone, ~5 min
    .venv/bin/python benchmarks/bench_serve.py --only-in-flight --baseline-src /path/to/other/checkout/src

vLLM runs with the ``serve`` section of ``--profile`` (default tiny) and ``--set`` overrides, as ``lmforge serve``
would run it: on CPU, one compute core by default (``serve.cpu_threads``), each token its own chunk
(``serve.stream_interval``), eager (``serve.enforce_eager``). A serving machine gives it its cores.

One process, one model, one prompt set (default: the tiny profile's trained student if ``runs/tiny`` has it,
else a random-weight Llama of the same shape built here). Every request is greedy with a fixed length
(vLLM ``ignore_eos``, HF ``min_new_tokens``) so every path generates the same number of tokens.

1. Throughput (output tokens/s): vLLM's server with every prompt in flight at once (streamed, as vLLM's
   benchmark_serving.py sends, and non-streamed), HF ``generate`` one prompt at a time, HF ``generate`` on one
   left-padded batch of all prompts. Targets: vLLM >= 5x HF sequential, >= 2x HF batched. Twice: every request
   ``--max-tokens`` long (HF batching's best case: no row waits for another), then with mixed lengths, eight
   steps from 1/8 of that to all of it, as chat traffic asks. HF's batch then runs to its longest request
   (static batching cannot let a row leave early) and only the tokens each request asked for count; vLLM's
   continuous batching drops a request when it is done (no new ones arrive to take its place: all are sent at
   once). HF batched and vLLM take turns for ``--rounds`` rounds (vLLM idle, not stopped, while HF runs), and
   each ratio is the median of the rounds' own ratios: on shared cores one path's rate drifts by a third from
   one minute to the next, which a single HF run before the servers start would put into the ratio.
2. Streaming latency with benchmark_serving.py's definitions: TTFT = request sent to the first chunk that
   carries choices; TPOT = (latency - TTFT) / (output tokens - 1) per request; ITL = the gaps between chunks,
   pooled over requests. Directly, and through the gateway with the shipped policy and with a minimal one.
3. Gateway overhead: p50 end-to-end latency of non-streamed requests, one at a time, interleaved: direct vs
   through the gateway (auth, limits, filter). Target <= 5 %.
4. Filter cost: ``apply_policy`` and ``StreamFilter`` (4-character chunks) in ms per KB of prose with PII,
   p99 over repeats. Target <= 1 ms/KB. Beside it, the p99 / p50 of a pure-Python loop of fixed work as long as
   StreamFilter, timed taking turns with both: on a shared VM that loop alone shows a p99 ~1.4-1.7x its p50,
   so the part of a filter's tail that is the machine's can be told from its own.
5. Hold-back cost on TTFT: one streamed request at a time; the shipped policy holds back 65 characters of
   prose (``StreamFilter.hold``; near an ``@`` or another rule's anchor, until the match has visibly ended,
   at most ``policy.window``, 475), a one-term policy ~8, so their TTFT difference is what the hold-back costs.
6. The gateway under concurrency (``serve_in_flight.py``): output tokens/s and TTFT straight to vLLM and through
   each gateway with ``--in-flight`` streams in flight (closed loop, mixed lengths, as ``vllm bench serve
   --max-concurrency`` sends), the paths taking turns; the CPU each server spends per output token. Target:
   gateway >= 0.9x direct at 8 in flight and more. ``--baseline-src`` adds a gateway run from another
   checkout's ``src`` (the code before a change), in the same turns.

The requests are sent with aiohttp, as ``vllm bench serve`` sends them (``serve_harness.py``). Writes only to a
temporary directory. Run it on an idle machine for figures to compare: it prints the load average before and
after, since other work on the cores changes every number.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from serve_harness import (
    ROOT,
    Batch,
    Run,
    Servers,
    default_model,
    load,
    mixed_lengths,
    random_model,
    run_concurrent,
    run_interleaved,
)
from serve_in_flight import report_in_flight, take_turns_in_flight

BASE_PROMPTS = [
    "What does the json module do?", "Define the noun \"harbor\".", "How do I read a file in Python?",
    "Write one sentence about the sea.", "Tell me about the state of the union.", "What is a list comprehension?",
    "The harbor was", "Once upon a time", "It is a truth", "Explain what a dictionary is.",
]
PII_PROSE = ("The committee met on Tuesday to review the harbor budget. For details write to jane.doe@example.com "
             "or call (202) 555-0143; the ledger lives on db7.corp.lmforge.internal. Ships came in with the tide "
             "and left at night, and the clerk noted each one in a book that nobody read. ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="HF model dir (default: runs/tiny student)")
    parser.add_argument("--random-like", metavar="PROFILE", default=None,
                        help="instead, a random-weight Llama shaped like PROFILE's pretrained model (e.g. small: 14 M)")
    parser.add_argument("--prompts", type=int, default=32, help="distinct prompts (all in flight at once)")
    parser.add_argument("--max-tokens", type=int, default=128, help="output tokens per request")
    parser.add_argument("--sequential-requests", type=int, default=30, help="requests per arm in 3 and 5")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of HF batched and vLLM taking turns in 1")
    parser.add_argument("--profile", default="tiny", help="config profile whose serve section runs vLLM")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="config override, e.g. serve.cpu_threads=all (repeatable)")
    parser.add_argument("--startup-timeout", type=float, default=900.0,
                        help="seconds to wait for vLLM (it takes minutes on busy cores)")
    parser.add_argument("--in-flight", default="1,8,32,64", help="streams in flight in 6, comma-separated ('': skip)")
    parser.add_argument("--in-flight-rounds", type=int, default=3, help="rounds of the paths taking turns in 6")
    parser.add_argument("--only-in-flight", action="store_true", help="section 6 alone (no HF, no sections 1-5)")
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="also a gateway run from this src directory (another checkout's) in 6")
    args = parser.parse_args()
    levels = [int(c) for c in args.in_flight.split(",") if c.strip()]
    work = Path(tempfile.mkdtemp(prefix="lmforge-bench-serve-"))
    os.environ["LMFORGE_STATE_DIR"] = str(work / "state")  # before lmforge reads it: nothing lands in the repo
    from lmforge import envs

    envs.apply_offline_defaults()
    print(f"cores {os.cpu_count()}, load average at start {load()}; work dir {work}")
    model_dir = args.model or (random_model(work / "model", args.random_like) if args.random_like
                               else default_model(work))
    prompts = [f"{BASE_PROMPTS[i % len(BASE_PROMPTS)]} ({i})" for i in range(args.prompts)]
    from lmforge.config import load_config

    serve = load_config(args.profile, args.set).serve
    print(f"model {model_dir}; {len(prompts)} prompts x {args.max_tokens} output tokens, greedy")
    print(f"vLLM: profile {args.profile}, cpu_threads {serve.cpu_threads or 'vLLM default'}, stream_interval "
          f"{serve.stream_interval}, enforce_eager {serve.enforce_eager}, dtype {serve.dtype}\n")
    earlier = not args.only_in_flight  # sections 1-5
    if earlier:
        filt = bench_filter()  # first, on cores no server is starting or stopping on
        hf = HFGenerate(model_dir)
        sequential = hf.sequential(prompts, [args.max_tokens] * len(prompts))  # alone on the cores, once
        print(f"HF generate, one prompt at a time: {sequential:.0f} tok/s")
    with Servers(model_dir, serve, work, args.max_tokens, args.startup_timeout, args.baseline_src) as servers:
        print(f"vLLM ready in {servers.vllm_ready_s:.0f}s\n")
        asyncio.run(_warm(servers, prompts))
        if earlier:
            measured = measure(servers, hf, prompts, args.max_tokens, args.rounds, args.sequential_requests)
        in_flight = take_turns_in_flight(servers, prompts, levels, args.max_tokens, args.in_flight_rounds)

    if earlier:
        mixed = mixed_lengths(len(prompts), args.max_tokens)
        report_throughput(sequential, measured.same, "every request the same length")
        report_throughput(sequential, measured.varied, f"mixed lengths {min(mixed)}-{max(mixed)}, mean "
                                                       f"{statistics.mean(mixed):.0f}; HF sequential as above")
        report_latency({"vLLM direct": measured.same.last_streamed, "gateway, shipped policy": measured.via_gateway,
                        "gateway, minimal policy": measured.via_minimal})
        report_overhead(measured.overhead)
        report_filter(filt)
        report_holdback(measured.holdback, servers.window)
    if in_flight:
        report_in_flight(in_flight, args.max_tokens, args.in_flight_rounds, _pct)
    print(f"\nload average at end {load()} (1, 5, 15 min; {os.cpu_count()} cores): figures taken on busy cores are "
          "lower and noisier; compare runs on the same machine.")


@dataclass
class Measured:
    """What sections 1, 2, 3 and 5 measured against the servers."""

    same: Turns  # 1, every request --max-tokens long
    varied: Turns  # 1, mixed lengths
    via_gateway: Batch  # 2, every prompt in flight through the gateway (shipped policy)
    via_minimal: Batch  # 2, the same through the gateway with a one-term policy
    overhead: dict[str, list[Run]]  # 3, non-streamed, one at a time, per path
    holdback: dict[str, list[Run]]  # 5, streamed, one at a time, per path


def measure(servers: Servers, hf: HFGenerate, prompts: list[str], max_tokens: int, rounds: int,
            sequential_requests: int) -> Measured:
    fixed, mixed = [max_tokens] * len(prompts), mixed_lengths(len(prompts), max_tokens)
    same = take_turns(servers, hf, prompts, fixed, rounds)
    varied = take_turns(servers, hf, prompts, mixed, rounds)
    model, key = servers.model, servers.key
    via_gateway = asyncio.run(run_concurrent(servers.gateway_url, key, model, prompts, max_tokens, True))
    via_minimal = asyncio.run(run_concurrent(servers.minimal_url, key, model, prompts, max_tokens, True))
    overhead = asyncio.run(run_interleaved(servers, prompts, max_tokens, sequential_requests, False))
    holdback = asyncio.run(run_interleaved(servers, prompts, max_tokens, sequential_requests, True))
    return Measured(same, varied, via_gateway, via_minimal, overhead, holdback)


# ---------------------------------------------------------------------------------------------- measurements
class HFGenerate:
    """Hugging Face ``generate`` on the model, greedy, request i exactly ``lengths[i]`` tokens."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.tok.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        with torch.inference_mode():  # warm-up
            self.model.generate(**self.tok(BASE_PROMPTS[:2], return_tensors="pt", padding=True), **self._gen(8))

    def sequential(self, prompts: list[str], lengths: list[int]) -> float:
        """Output tokens/s, one prompt at a time."""
        began, produced = time.perf_counter(), 0
        with self.torch.inference_mode():
            for prompt, length in zip(prompts, lengths, strict=True):
                enc = self.tok(prompt, return_tensors="pt")
                produced += self.model.generate(**enc, **self._gen(length)).shape[1] - enc["input_ids"].shape[1]
        return produced / (time.perf_counter() - began)

    def batched(self, prompts: list[str], lengths: list[int]) -> float:
        """Output tokens/s of one left-padded batch of all prompts, which runs to the longest length; a row's
        tokens past its own length are generated but not counted (a static batch cannot release a row early)."""
        enc = self.tok(prompts, return_tensors="pt", padding=True)
        with self.torch.inference_mode():
            began = time.perf_counter()
            generated = self.model.generate(**enc, **self._gen(max(lengths))).shape[1] - enc["input_ids"].shape[1]
            return sum(min(length, generated) for length in lengths) / (time.perf_counter() - began)

    def _gen(self, length: int) -> dict:
        return dict(max_new_tokens=length, min_new_tokens=length, do_sample=False, pad_token_id=self.tok.pad_token_id)


@dataclass
class Turns:
    """Output tokens/s per round of each throughput path, measured taking turns."""

    rates: dict[str, list[float]]  # "HF batched", "vLLM streamed", "vLLM non-streamed"
    last_streamed: Batch  # the last round's streamed vLLM batch (its latencies are reported in 2)

    def median(self, path: str) -> float:
        return statistics.median(self.rates[path])

    def ratios(self, path: str) -> list[float]:
        """Each round's vLLM rate on ``path`` over the HF batched rate of the same round."""
        return [mine / hf for mine, hf in zip(self.rates[path], self.rates["HF batched"], strict=True)]


def take_turns(servers: Servers, hf: HFGenerate, prompts: list[str], lengths: list[int], rounds: int) -> Turns:
    """``rounds`` of HF batched, vLLM streamed, vLLM non-streamed, one after the other."""
    rates: dict[str, list[float]] = {"HF batched": [], "vLLM streamed": [], "vLLM non-streamed": []}
    streamed = None
    for _ in range(rounds):
        rates["HF batched"].append(hf.batched(prompts, lengths))
        streamed = asyncio.run(run_concurrent(servers.vllm_url, None, servers.model, prompts, lengths, True))
        whole = asyncio.run(run_concurrent(servers.vllm_url, None, servers.model, prompts, lengths, False))
        rates["vLLM streamed"].append(streamed.tokens_per_s)
        rates["vLLM non-streamed"].append(whole.tokens_per_s)
    print(f"{'same length' if len(set(lengths)) == 1 else 'mixed lengths'}, tok/s per round: " + "; ".join(
        f"{path} " + ", ".join(f"{r:.0f}" for r in per) for path, per in rates.items()))
    assert streamed is not None, "--rounds must be at least 1"
    return Turns(rates, streamed)


async def _warm(servers: Servers, prompts: list[str]) -> None:
    for url, key in ((servers.vllm_url, None), (servers.gateway_url, servers.key), (servers.minimal_url, servers.key),
                     (servers.baseline_url, servers.key)):
        if url:
            await run_concurrent(url, key, servers.model, prompts[:4], 8, True)


def bench_filter() -> dict[str, dict[int, tuple[float, float]]]:
    """(p50, p99) ms per KB of apply_policy and of StreamFilter fed 4-character chunks, on 1, 4 and 16 KB; and,
    under "fixed loop", (p50, p99) ms of a pure-Python loop whose work never varies, timed taking turns with
    them: its p99 / p50 is what the machine alone adds to a tail of that length."""
    from lmforge.compliance import StreamFilter, apply_policy, load_policy

    policy = load_policy(ROOT / "configs" / "policy.yaml")
    out: dict[str, dict[int, tuple[float, float]]] = {"apply_policy": {}, "StreamFilter": {}, "fixed loop": {}}
    for kb, repeats in ((1, 300), (4, 100), (16, 30)):
        text = (PII_PROSE * (kb * 1024 // len(PII_PROSE) + 1))[: kb * 1024]
        whole, streamed, fixed = [], [], []
        for _ in range(repeats):
            began = time.perf_counter()
            apply_policy(text, policy)
            whole.append((time.perf_counter() - began) * 1000 / kb)
            began = time.perf_counter()
            sf = StreamFilter(policy)
            for i in range(0, len(text), 4):
                sf.feed(text[i:i + 4])
            sf.finish()
            streamed.append((time.perf_counter() - began) * 1000 / kb)
            began = time.perf_counter()
            _fixed_work(kb)
            fixed.append((time.perf_counter() - began) * 1000)
        out["apply_policy"][kb], out["StreamFilter"][kb] = (_pct(whole, 50), _pct(whole, 99)), (
            _pct(streamed, 50), _pct(streamed, 99))
        out["fixed loop"][kb] = (_pct(fixed, 50), _pct(fixed, 99))
    return out


def _fixed_work(kb: int) -> int:
    """The same pure-Python work every call, about as long as StreamFilter on ``kb`` KB (~0.7 ms a KB)."""
    total = 0
    for i in range(15_000 * kb):
        total += i
    return total


# ------------------------------------------------------------------------------------------------- reports
def report_throughput(sequential: float, turns: Turns, lengths: str) -> None:
    rounds = len(turns.rates["HF batched"])
    print(f"\n== 1. Throughput (output tokens/s; same model, prompts, greedy; {lengths}; median of {rounds} "
          "rounds taking turns)")
    in_flight = len(turns.last_streamed.runs)
    rows = [("HF generate, sequential", sequential), ("HF generate, batched", turns.median("HF batched")),
            (f"vLLM server, {in_flight} in flight, streamed", turns.median("vLLM streamed")),
            (f"vLLM server, {in_flight} in flight, non-streamed", turns.median("vLLM non-streamed"))]
    for name, rate in rows:
        print(f"  {name:<44} {rate:>9.0f} tok/s")
    for name in ("streamed", "non-streamed"):
        path = f"vLLM {name}"
        seq, ratios = turns.median(path) / sequential, turns.ratios(path)
        bat = statistics.median(ratios)
        print(f"  vLLM {name:<13} / HF sequential = {seq:6.2f}x  (target >= 5x: {_verdict(seq >= 5)})"
              f";  / HF batched = {bat:5.2f}x  (rounds {min(ratios):.2f}-{max(ratios):.2f}; target >= 2x: "
              f"{_verdict(bat >= 2)})")


def report_latency(batches: dict[str, Batch]) -> None:
    print(f"\n== 2. Streaming latency, all {len(next(iter(batches.values())).runs)} requests in flight "
          "(ms; benchmark_serving.py definitions)")
    print(f"  {'path':<26}{'TTFT p50':>9}{'p90':>8}{'p99':>8}{'TPOT p50':>10}{'p99':>7}{'ITL p50':>9}{'p99':>8}"
          f"{'tok/s':>8}")
    for name, batch in batches.items():
        ttft = [r.ttft * 1000 for r in batch.runs]
        tpot = [(r.latency - r.ttft) / (r.output_tokens - 1) * 1000 for r in batch.runs if r.output_tokens > 1]
        itl = [g * 1000 for r in batch.runs for g in r.itl]
        print(f"  {name:<26}{_pct(ttft, 50):>9.1f}{_pct(ttft, 90):>8.1f}{_pct(ttft, 99):>8.1f}"
              f"{_pct(tpot, 50):>10.2f}{_pct(tpot, 99):>7.2f}{_pct(itl, 50):>9.2f}{_pct(itl, 99):>8.2f}"
              f"{batch.tokens_per_s:>8.0f}")


def report_overhead(runs: dict[str, list[Run]]) -> None:
    direct, gateway = (statistics.median(r.latency * 1000 for r in runs[k]) for k in ("direct", "gateway"))
    minimal = statistics.median(r.latency * 1000 for r in runs["minimal"])
    over = (gateway - direct) / direct
    print(f"\n== 3. Gateway overhead, non-streamed, one at a time ({len(runs['direct'])} requests per path)")
    print(f"  p50 end-to-end: vLLM direct {direct:.1f} ms, gateway + shipped filter {gateway:.1f} ms, "
          f"gateway + one-term filter {minimal:.1f} ms")
    print(f"  gateway + filter overhead = {over * 100:+.1f}% of p50 ({gateway - direct:+.2f} ms)  "
          f"(target <= 5%: {_verdict(over <= 0.05)})")
    # The paths took turns, so request i of each saw the same moment of the machine: the median of the per-turn
    # ratios leaves out the drift that moves the p50s apart on shared cores.
    paired = statistics.median(g.latency / d.latency for g, d in zip(runs["gateway"], runs["direct"], strict=True))
    print(f"  per turn (gateway / direct, the same prompt one after the other): median {(paired - 1) * 100:+.1f}%")


def report_filter(filt: dict[str, dict[int, tuple[float, float]]]) -> None:
    print("\n== 4. Filter cost, shipped policy, prose with an email, a phone and an internal host every ~300 chars")
    print("  ms per KB, p50 / p99")
    for name in ("apply_policy", "StreamFilter"):
        by_kb = filt[name]
        cells = ", ".join(f"{kb} KB: {p50:.3f} / {p99:.3f}" for kb, (p50, p99) in by_kb.items())
        worst = max(p99 for _, p99 in by_kb.values())
        print(f"  {name:<13} {cells}  (target p99 <= 1 ms/KB: {_verdict(worst <= 1.0)})")
    print("  p99 / p50 beside that of a pure-Python loop of fixed work, as long as StreamFilter, timed taking turns "
          "(the machine's own tail):")
    for kb, (p50, p99) in filt["fixed loop"].items():
        mine = ", ".join(f"{name} {filt[name][kb][1] / filt[name][kb][0]:.2f}"
                         for name in ("apply_policy", "StreamFilter"))
        print(f"    {kb} KB: fixed loop {p99 / p50:.2f} ({p50:.3f} ms p50); {mine}")


def report_holdback(runs: dict[str, list[Run]], window: int) -> None:
    ttft = {k: statistics.median(r.ttft * 1000 for r in v) for k, v in runs.items()}
    total = statistics.median(r.latency * 1000 for r in runs["direct"])
    chars = statistics.median(len(r.text) for r in runs["direct"])
    print(f"\n== 5. Hold-back cost on TTFT, streamed, one at a time ({len(runs['direct'])} requests per path)")
    print(f"  p50 TTFT: vLLM direct {ttft['direct']:.1f} ms; gateway, one-term policy (window ~8 chars) "
          f"{ttft['minimal']:.1f} ms; gateway, shipped policy (hold {window} chars) {ttft['gateway']:.1f} ms")
    print(f"  hold-back cost = {ttft['gateway'] - ttft['minimal']:+.1f} ms p50 TTFT (shipped - one-term); "
          f"gateway without hold-back = {ttft['minimal'] - ttft['direct']:+.1f} ms")
    print(f"  answers are ~{chars:.0f} characters and take {total:.0f} ms p50 in all; the first text can only leave "
          f"once {window} characters are known{' (the whole answer here)' if chars <= window else ''}, more near "
          "an '@' or another rule's anchor")


# ------------------------------------------------------------------------------------------------- helpers
def _pct(values: list[float], q: float) -> float:
    from lmforge.rollout.analysis import percentile

    return percentile(values, q) if values else float("nan")


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    main()
