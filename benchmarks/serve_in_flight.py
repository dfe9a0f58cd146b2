"""Section 6 of ``bench_serve.py``: output throughput and TTFT straight to vLLM and through the gateway, at several
numbers of streams in flight, the paths taking turns.

Each run is a closed loop, as ``vllm bench serve --max-concurrency C`` sends: C streamed requests in flight, the
next sent as one ends, ``max(32, 4 C)`` requests of mixed lengths. For each C, ``rounds`` rounds; in each round
every path runs once, in an order that rotates from round to round, so a path is not always the one that follows
another. A ratio is the median of the rounds' own ratios (each round's paths saw about the same machine).

Beside the rates, the CPU seconds each server process spent per output token during its path's runs (from
``/proc``): vLLM's API server on the direct path, the gateway on its own. On shared cores CPU time moves far
less with other load than wall time does, so it tells what a component costs when the rates are noisy.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from serve_harness import Batch, Servers, load, mixed_lengths, run_closed_loop

TARGET = 0.9  # gateway / direct output throughput at 8 concurrent streams and more


@dataclass
class InFlight:
    """The runs of each path at one number of streams in flight."""

    level: int
    batches: dict[str, list[Batch]] = field(default_factory=dict)  # path -> one batch per round
    cpu: dict[str, float] = field(default_factory=dict)  # path -> its server's CPU seconds per output token

    def rate(self, path: str) -> float:
        return statistics.median(b.tokens_per_s for b in self.batches[path])

    def ratios(self, path: str) -> list[float]:
        """Each round's rate on ``path`` over the direct rate of the same round."""
        return [b.tokens_per_s / d.tokens_per_s
                for b, d in zip(self.batches[path], self.batches["direct"], strict=True)]

    def ttft_ms(self, path: str, q: float, pct: Callable[[list[float], float], float]) -> float:
        return pct([r.ttft * 1000 for b in self.batches[path] for r in b.runs], q)


def take_turns_in_flight(servers: Servers, prompts: list[str], levels: list[int], longest: int,
                         rounds: int) -> list[InFlight]:
    paths = {"direct": (servers.vllm_url, None, servers.engine.pid),
             "gateway": (servers.gateway_url, servers.key, servers.pids["shipped"]),
             "one-term": (servers.minimal_url, servers.key, servers.pids["minimal"])}
    if servers.baseline_url:
        paths["baseline"] = (servers.baseline_url, servers.key, servers.pids["baseline"])
    names = list(paths)
    out = []
    for level in levels:
        lengths = mixed_lengths(max(32, 4 * level), longest)
        result = InFlight(level, {name: [] for name in names})
        spent = dict.fromkeys(names, 0.0)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                url, key, pid = paths[name]
                before = _cpu_seconds(pid)
                result.batches[name].append(asyncio.run(run_closed_loop(url, key, servers.model, prompts, lengths,
                                                                        level)))
                spent[name] += _cpu_seconds(pid) - before
        result.cpu = {name: spent[name] / sum(b.output_tokens for b in result.batches[name]) for name in names}
        print(f"{level} in flight, tok/s per round: " + "; ".join(
            f"{name} " + ", ".join(f"{b.tokens_per_s:.0f}" for b in result.batches[name]) for name in names)
              + f"  (load average {load()})")
        out.append(result)
    return out


def report_in_flight(results: list[InFlight], longest: int, rounds: int,
                     pct: Callable[[list[float], float], float]) -> None:
    lengths = mixed_lengths(32, longest)
    baseline = "baseline" in results[0].batches
    print(f"\n== 6. Through the gateway under concurrency: closed loop (C in flight, the next sent as one ends), "
          f"max(32, 4C) requests of mixed lengths {min(lengths)}-{max(lengths)} (mean {statistics.mean(lengths):.0f}) "
          f"a run; the paths take turns, {rounds} rounds; a ratio is the median of the rounds' own")
    print(f"  {'C':>3} {'direct':>8} {'gateway':>8} {'ratio (rounds)':>19} {'one-term':>9}"
          + (f" {'baseline':>9}" if baseline else "")
          + f"  {'TTFT p50 direct / one-term / gateway':>37} {'p99 gw':>7}  {'CPU us/token: vLLM API / gateway':>33}")
    for res in results:
        ratios = res.ratios("gateway")
        cells = [f"{res.level:>3}", f"{res.rate('direct'):>8.0f}", f"{res.rate('gateway'):>8.0f}",
                 f"{statistics.median(ratios):>6.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
                 f"{statistics.median(res.ratios('one-term')):>8.2f}x"]
        if baseline:
            cells.append(f"{statistics.median(res.ratios('baseline')):>8.2f}x")
        ttft = " / ".join(f"{res.ttft_ms(p, 50, pct):.0f}" for p in ("direct", "one-term", "gateway"))
        cpu = f"{res.cpu['direct'] * 1e6:.0f} / {res.cpu['gateway'] * 1e6:.0f}"
        print("  " + " ".join(cells) + f"  {ttft + ' ms':>37} {res.ttft_ms('gateway', 99, pct):>7.0f}  {cpu:>33}")
    judged = [res for res in results if res.level >= 8]
    if judged:
        ok = all(statistics.median(res.ratios("gateway")) >= TARGET for res in judged)
        print(f"  target: gateway >= {TARGET}x direct at {', '.join(str(r.level) for r in judged)} in flight: "
              f"{'met' if ok else 'NOT met'}")
    print("  TTFT one-term - direct is what the gateway itself adds; gateway - one-term is the shipped policy's "
          "hold-back (section 5). CPU: that process's CPU seconds over the tokens it served (vLLM's API server "
          "does the same work on every path)")


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 where /proc is not there)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
