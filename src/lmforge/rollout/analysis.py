"""Judge a rollout from what each arm did: pure functions over gateway observations, no I/O, no clock.

    challenger = arm_figures([o for o in observations if o.arm == "challenger"])
    champion = arm_figures(champion_so_far)                      # the baseline, pooled over the rollout
    step = judge_step(10, "canary", challenger, champion, cfg.rollout)
    decide([step], cfg.rollout)   # Decision("continue", next_share=50, ...), or "promote" / "rollback"

A step fails when the challenger's error rate or compliance violation rate is over its threshold, when its
p99 latency is over ``max_p99_latency_ratio`` times the champion's (both floored at ``latency_floor_ms``, below
which a ratio is noise), or when no challenger request was measured. A failed step is repeated at the same
share; the challenger is promoted once every step has passed, and rolled back as soon as more than
``failure_limit`` steps have failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lmforge.config import RolloutConfig
from lmforge.serve.routing import Observation


@dataclass(frozen=True)
class ArmFigures:
    requests: int
    errors: int  # answers that were not HTTP 200 (vLLM down, 5xx, broken stream, rejected by vLLM)
    violations: int  # answers the compliance filter acted on (redact, block or flag)
    blocked: int
    p50_s: float | None  # latency percentiles over the answers that succeeded
    p99_s: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def violation_rate(self) -> float:
        return self.violations / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": self.error_rate, "violation_rate": self.violation_rate}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile, linear between closest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def arm_figures(observations: Sequence[Observation]) -> ArmFigures:
    latencies = [o.seconds for o in observations if o.ok]
    return ArmFigures(
        requests=len(observations),
        errors=sum(not o.ok for o in observations),
        violations=sum(o.verdicts > 0 for o in observations),
        blocked=sum(o.blocked for o in observations),
        p50_s=percentile(latencies, 50) if latencies else None,
        p99_s=percentile(latencies, 99) if latencies else None,
    )


@dataclass(frozen=True)
class StepResult:
    share: int
    mode: str
    challenger: ArmFigures
    champion: ArmFigures | None  # the baseline it was compared with (None: no champion answer measured yet)
    p99_ratio: float | None  # floored challenger p99 / floored champion p99
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"share": self.share, "mode": self.mode, "passed": self.passed, "failures": list(self.failures),
                "p99_ratio": self.p99_ratio, "challenger": self.challenger.to_dict(),
                "champion": self.champion.to_dict() if self.champion else None}


def judge_step(
    share: int, mode: str, challenger: ArmFigures, champion: ArmFigures | None, cfg: RolloutConfig
) -> StepResult:
    failures: list[str] = []
    ratio = None
    if challenger.requests == 0:
        failures.append("no challenger request was measured")
    else:
        if challenger.error_rate > cfg.max_error_rate:
            failures.append(f"error rate {challenger.error_rate:.3f} > {cfg.max_error_rate}")
        if challenger.violation_rate > cfg.max_violation_rate:
            failures.append(f"violation rate {challenger.violation_rate:.3f} > {cfg.max_violation_rate}")
        if champion is not None and champion.p99_s is not None and challenger.p99_s is not None:
            floor = cfg.latency_floor_ms / 1000.0
            ratio = max(challenger.p99_s, floor) / max(champion.p99_s, floor)
            if ratio > cfg.max_p99_latency_ratio:
                failures.append(f"p99 {challenger.p99_s:.3f}s is {ratio:.2f}x the champion's "
                                f"{champion.p99_s:.3f}s > {cfg.max_p99_latency_ratio}x")
    return StepResult(share, mode, challenger, champion, ratio, tuple(failures))


@dataclass(frozen=True)
class Decision:
    action: Literal["continue", "promote", "rollback"]
    next_share: int | None  # the share of the next step when continuing
    reason: str


def decide(results: Sequence[StepResult], cfg: RolloutConfig) -> Decision:
    """What to do after these steps (in the order they ran); no steps yet: start at ``cfg.steps[0]``."""
    failed = [r for r in results if not r.passed]
    if len(failed) > cfg.failure_limit:
        last = failed[-1]
        return Decision("rollback", None, f"rolled back: {len(failed)} failed steps (limit {cfg.failure_limit}); "
                                          f"last at {last.share}% {last.mode}: {'; '.join(last.failures)}. "
                                          f"{summarize(results)}")
    passed = sum(r.passed for r in results)
    if passed >= len(cfg.steps):
        tolerated = f"; {len(failed)} failed step(s) repeated" if failed else ""
        return Decision("promote", None, f"promoted: every {results[-1].mode} step passed{tolerated}. "
                                         f"{summarize(results)}")
    share = cfg.steps[passed]
    if results and not results[-1].passed:
        return Decision("continue", share, f"repeat {share}%: {'; '.join(results[-1].failures)}")
    return Decision("continue", share, f"step to {share}%")


def summarize(results: Sequence[StepResult]) -> str:
    """One line of figures per step, for the promotion log and the rollback record."""
    parts = []
    for r in results:
        c = r.challenger
        p99 = f"{c.p99_s:.3f}s" if c.p99_s is not None else "n/a"
        base = ""
        if r.champion is not None and r.champion.p99_s is not None:
            base = f" vs champion {r.champion.p99_s:.3f}s" + (f" (x{r.p99_ratio:.2f})" if r.p99_ratio else "")
        parts.append(f"{r.share}% {'ok' if r.passed else 'FAILED'}: n={c.requests} errors={c.error_rate:.3f} "
                     f"violations={c.violation_rate:.3f} p99={p99}{base}")
    return "Challenger per step: " + " | ".join(parts)
