"""Inference benchmark: prefill and decode, the KV cache, prefix caching, static against continuous batching, and
decode speed against this machine's roofline, on vLLM's OpenAI server as ``lmforge serve`` runs it.

    .venv/bin/python benchmarks/bench_inference.py                        # random tiny Llama, ~5 min on 2 cores
    .venv/bin/python benchmarks/bench_inference.py --model DIR --set serve.max_model_len=1024 --set serve.kv_cache_gib=2

Any Hugging Face Llama directory works (``--model``); vLLM runs with ``--profile``'s serve section and ``--set``
overrides. In one run it prints:

1. The machine: fp32 matmul FLOP/s and memory bandwidth (a large tensor copy), each with as many threads as
   vLLM computes on (``serve.cpu_threads``; vLLM's default on CPU is all cores but one).
2. The KV cache: bytes per token (2 x layers x KV heads x head dim x bytes), tokens and full-length sequences the
   configured cache holds, beside the size vLLM itself reports in its log.
3. Prefill: TTFT of one request against prompt length (distinct random token ids: no prefix-cache hit).
4. Decode: time per output token (TPOT) against the number of sequences decoding together, the decode tok/s
   that makes, and the roofline bound for it: a decode step reads every weight once for the whole batch and each
   sequence's KV cache, and does 2 FLOPs per weight per sequence, so tok/s <= B / max(bytes / bandwidth,
   FLOPs / FLOP/s); the share reached is printed.
5. Prefix caching: TTFT of requests sharing a long system prompt (after one request has cached it) against
   requests of the same length with a prefix of their own.
6. Static against continuous batching: HF ``generate`` one prompt at a time and as one padded batch (static: it
   runs to its longest row) against vLLM with every request in flight, mixed output lengths, at each
   ``--batches`` size. HF sequential runs on at most 8 prompts (its rate does not depend on how many).

Writes only to a temporary directory; prints the load average, since other work on the cores changes every
figure. Greedy, ``ignore_eos``: every request generates exactly the tokens it asks for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import BASE_PROMPTS, HFGenerate, _free_port, _load, _random_model, mixed_lengths, run_concurrent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="HF Llama dir (default: a random tiny Llama)")
    parser.add_argument("--profile", default="tiny", help="config profile whose serve section runs vLLM")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="config override, e.g. serve.max_model_len=1024 (repeatable)")
    parser.add_argument("--prompt-lengths", default="16,64,128,256,512,1024", help="prefill: prompt tokens")
    parser.add_argument("--decode-batches", default="1,4,16,32,64", help="decode: sequences in flight")
    parser.add_argument("--batches", default="8,32,64", help="static vs continuous: sequences per batch")
    parser.add_argument("--max-tokens", type=int, default=64, help="output tokens per request (decode, batching)")
    parser.add_argument("--system-tokens", type=int, default=0,
                        help="shared system prompt length (default: half the context, at most 1024)")
    parser.add_argument("--repeats", type=int, default=5, help="requests per point in 3 and 5")
    parser.add_argument("--startup-timeout", type=float, default=900.0, help="seconds to wait for vLLM")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lmforge-bench-inference-"))
    os.environ["LMFORGE_STATE_DIR"] = str(work / "state")
    from lmforge import envs
    from lmforge.config import load_config
    from lmforge.serve.engine import VLLMEngine, cpu_thread_list
    from lmforge.serve.kv_cache import kv_cache_budget

    envs.apply_offline_defaults()
    serve = load_config(args.profile, args.set).serve
    model_dir = args.model or _random_model(work / "model")
    hf_config = json.loads((model_dir / "config.json").read_text())
    context = serve.max_model_len or hf_config.get("max_position_embeddings", 2048)
    print(f"cores {os.cpu_count()}, load average at start {_load()}; model {model_dir}; work dir {work}")
    print(f"vLLM: dtype {serve.dtype}, kv_cache_dtype {serve.kv_cache_dtype}, KV cache {serve.kv_cache_gib} GiB, "
          f"max_model_len {context}, prefix caching {_default(serve.enable_prefix_caching)}, chunked prefill "
          f"{_default(serve.enable_chunked_prefill)}, max_num_seqs {_default(serve.max_num_seqs)}, "
          f"enforce_eager {serve.enforce_eager}, cpu_threads {serve.cpu_threads or 'vLLM default'}")

    threads = len(_cores(cpu_thread_list(serve.cpu_threads))) if serve.cpu_threads else max(1, os.cpu_count() - 1)
    flops, bandwidth = machine_limits(threads)
    print(f"\n1. machine, {threads} thread(s): fp32 matmul {flops / 1e9:.1f} GFLOP/s, copy bandwidth "
          f"{bandwidth / 1e9:.1f} GB/s")
    kv = kv_cache_budget(hf_config, serve)
    weights = weight_bytes(model_dir)
    print(f"\n2. KV cache: 2 x {kv.layers} layers x {kv.kv_heads} KV heads x {kv.head_dim} head dim x "
          f"{kv.bytes_per_value} B = {kv.bytes_per_token:,} B/token; {kv.cache_bytes / 2**30:.0f} GiB holds "
          f"{kv.tokens:,} tokens = {kv.sequences_at_max_len} sequences of {kv.max_model_len} tokens "
          f"(weights {weights / 1e6:.0f} MB)")

    engine = VLLMEngine(model_dir, ["bench"], serve, _free_port(), work / "vllm.log")
    with engine:
        print(f"   vLLM ready in {engine.wait_ready(args.startup_timeout):.0f}s; its log: {vllm_kv_report(work)}")
        url, vocab = engine.base_url, hf_config["vocab_size"]
        ids = TokenIds(vocab)
        lengths = [n for n in _ints(args.prompt_lengths) if n + 2 <= context]
        print("\n3. prefill: TTFT of one request (median of repeats) against prompt length")
        print("   | prompt tokens | TTFT ms | prefill tok/s |\n   |---|---|---|")
        for n in lengths:
            ttft = statistics.median(_ttfts(url, [ids.take(n) for _ in range(args.repeats)], 2))
            print(f"   | {n} | {ttft * 1e3:.1f} | {n / ttft:,.0f} |")

        print(f"\n4. decode: {args.max_tokens} tokens per sequence, 16-token prompts, all in flight")
        print("   | sequences | TPOT ms (median) | decode tok/s | roofline tok/s | share |\n   |---|---|---|---|---|")
        for batch in _ints(args.decode_batches):
            done = asyncio.run(run_concurrent(url, None, "bench", [ids.take(16) for _ in range(batch)],
                                              args.max_tokens, True))
            tpot = statistics.median((r.latency - r.ttft) / max(1, r.output_tokens - 1) for r in done.runs)
            bound = decode_roofline(batch, weights, kv.bytes_per_token * (16 + args.max_tokens // 2),
                                    matmul_weights(hf_config), flops, bandwidth)
            rate = batch / tpot
            print(f"   | {batch} | {tpot * 1e3:.1f} | {rate:,.0f} | {bound:,.0f} | {rate / bound:.0%} |")

        system = args.system_tokens or min(1024, context // 2)
        shared = ids.take(system)
        _ttfts(url, [shared + ids.take(8)], 2)  # caches the shared prefix
        with_prefix = _ttfts(url, [shared + ids.take(8) for _ in range(args.repeats)], 2)
        unique = _ttfts(url, [ids.take(system + 8) for _ in range(args.repeats)], 2)
        print(f"\n5. prefix caching ({_default(serve.enable_prefix_caching)}): a {system}-token shared system prompt "
              f"+ 8 own tokens, TTFT median {statistics.median(with_prefix) * 1e3:.1f} ms, against "
              f"{statistics.median(unique) * 1e3:.1f} ms with a prefix of their own "
              f"({statistics.median(unique) / statistics.median(with_prefix):.1f}x)")

        print(f"\n6. static (HF generate) against continuous batching (vLLM), mixed output lengths "
              f"{args.max_tokens // 8}-{args.max_tokens}")
        print("   | sequences | HF sequential tok/s | HF batched tok/s | vLLM tok/s | vs sequential | vs batched |")
        print("   |---|---|---|---|---|---|")
        hf = HFGenerate(model_dir)
        for batch in _ints(args.batches):
            prompts = [f"{BASE_PROMPTS[i % len(BASE_PROMPTS)]} ({i})" for i in range(batch)]
            mixed = mixed_lengths(batch, args.max_tokens)
            sequential = hf.sequential(prompts[:8], mixed[:8])
            static = hf.batched(prompts, mixed)
            continuous = asyncio.run(run_concurrent(url, None, "bench", prompts, mixed, False)).tokens_per_s
            print(f"   | {batch} | {sequential:.0f} | {static:.0f} | {continuous:.0f} | "
                  f"{continuous / sequential:.1f}x | {continuous / static:.1f}x |")
    print(f"\nload average at end {_load()} (1, 5, 15 min; {os.cpu_count()} cores)")


# ---------------------------------------------------------------------------------------------- measurements
def machine_limits(threads: int) -> tuple[float, float]:
    """(fp32 matmul FLOP/s, copy bandwidth B/s) on ``threads`` threads: the fastest of a few runs each."""
    import torch

    from lmforge.train.flops import measure_matmul_flops

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        flops = measure_matmul_flops("cpu", size=2048, repeats=5)
        src, dst = torch.ones(64 << 20), torch.empty(64 << 20)  # 256 MB each: far past any cache
        best = float("inf")
        for _ in range(6):
            began = time.perf_counter()
            dst.copy_(src)
            best = min(best, time.perf_counter() - began)
        return flops, 2 * src.numel() * src.element_size() / best  # read one, write the other
    finally:
        torch.set_num_threads(before)


def decode_roofline(batch: int, weight_bytes: int, kv_bytes_per_seq: int, matmul_weights: int, flops: float,
                    bandwidth: float) -> float:
    """Upper bound on decode tok/s: per step every weight is read once for the batch and each sequence's KV
    cache once; each sequence costs 2 FLOPs per matmul weight (attention's own FLOPs are small at these lengths)."""
    memory_s = (weight_bytes + batch * kv_bytes_per_seq) / bandwidth
    compute_s = 2 * matmul_weights * batch / flops
    return batch / max(memory_s, compute_s)


def weight_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors"))


def matmul_weights(hf: dict) -> int:
    """Weights a token is multiplied by: attention and MLP projections of every layer, and the output head."""
    d, heads = hf["hidden_size"], hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or d // heads
    kv = hf.get("num_key_value_heads") or heads
    attention = d * head_dim * (2 * heads + 2 * kv)  # q, o: heads; k, v: KV heads
    mlp = 3 * d * hf["intermediate_size"]  # gate, up, down
    return hf["num_hidden_layers"] * (attention + mlp) + d * hf["vocab_size"]


def vllm_kv_report(work: Path) -> str:
    """The KV cache size vLLM logged ('... KV cache size: N tokens'), or a note that it logged none."""
    text = (work / "vllm.log").read_text(errors="replace")
    found = re.findall(r"KV cache size: ([\d,]+) tokens", text)
    return f"KV cache size {found[-1]} tokens" if found else "no KV cache size line"


class TokenIds:
    """Distinct random prompts as token ids (seeded), so no two share a prefix unless built to."""

    def __init__(self, vocab: int) -> None:
        import random

        self.rng, self.vocab = random.Random(0), vocab

    def take(self, n: int) -> list[int]:
        return [self.rng.randrange(10, self.vocab - 10) for _ in range(n)]


def _ttfts(url: str, prompts: list[list[int]], max_tokens: int) -> list[float]:
    """TTFT of each prompt, one request at a time."""
    return [asyncio.run(run_concurrent(url, None, "bench", [p], max_tokens, True)).runs[0].ttft for p in prompts]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _cores(spec: str) -> list[int]:
    cores: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cores += range(int(lo), int(hi or lo) + 1)
    return cores


def _default(value: object) -> str:
    return "vLLM default" if value is None else str(value)


if __name__ == "__main__":
    main()
