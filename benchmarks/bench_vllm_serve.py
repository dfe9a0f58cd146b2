"""vLLM's own serving benchmark (``vllm bench serve``) against several endpoints, taking turns.

    .venv/bin/python benchmarks/bench_vllm_serve.py --tokenizer MODEL_DIR --key API_KEY \\
        direct=http://127.0.0.1:8100 gateway=http://127.0.0.1:8000 --in-flight 1,8,32,64 --rounds 2

The ``vllm`` console script fails in this environment (it looks up package metadata under the name ``vllm``), so
this calls ``vllm.benchmarks.serve`` in-process, with its defaults but: the random dataset, ``--input-len`` /
``--output-len`` tokens, streamed, ``ignore_eos``, ``max(32, 4C)`` prompts with C in flight, the key sent to every
endpoint. For each C, each round runs every endpoint once, in an order that rotates from round to round; it prints
output tokens/s and mean TTFT per endpoint, and each endpoint's ratio to the first (the median of the rounds'
own). Start the servers first (``lmforge serve start``, or ``bench_serve.py``'s); it writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("endpoints", nargs="+", metavar="NAME=URL", help="the first is the reference")
    parser.add_argument("--tokenizer", required=True, help="the served model's directory (a local tokenizer)")
    parser.add_argument("--model", default="bench-model", help="served model name")
    parser.add_argument("--key", default="", help="API key (the gateway's; vLLM ignores it without --api-key)")
    parser.add_argument("--in-flight", default="1,8,32,64")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=64)
    args = parser.parse_args()
    endpoints = dict(e.split("=", 1) for e in args.endpoints)
    names = list(endpoints)
    os.environ["OPENAI_API_KEY"] = args.key  # vLLM's openai backend sends it as the bearer token
    print(f"load average at start {_load()}")
    for level in (int(c) for c in args.in_flight.split(",")):
        results: dict[str, list[dict]] = {name: [] for name in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                results[name].append(_bench(args, endpoints[name], level))
        cells = []
        for name in names:
            rates = [res["output_throughput"] for res in results[name]]
            ratios = [mine["output_throughput"] / ref["output_throughput"]
                      for mine, ref in zip(results[name], results[names[0]], strict=True)]
            ttft = statistics.mean(res["mean_ttft_ms"] for res in results[name])
            cells.append(f"{name} {statistics.median(rates):.0f} tok/s ({statistics.median(ratios):.2f}x), "
                         f"mean TTFT {ttft:.0f} ms")
        print(f"{level:>3} in flight: " + "; ".join(cells) + f"  (load average {_load()})", flush=True)


def _bench(args: argparse.Namespace, url: str, level: int) -> dict:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as vllm_bench_serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    bench_args = parser.parse_args([
        "--backend", "openai", "--base-url", url, "--model", args.model, "--tokenizer", args.tokenizer,
        "--dataset-name", "random", "--random-input-len", str(args.input_len),
        "--random-output-len", str(args.output_len), "--num-prompts", str(max(32, 4 * level)),
        "--max-concurrency", str(level), "--ignore-eos", "--disable-tqdm",
    ])
    with contextlib.redirect_stdout(io.StringIO()):  # its own report, per run; the summary line says enough
        return vllm_bench_serve(bench_args)


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
