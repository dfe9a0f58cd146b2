"""Judge a rollout from what each arm did: pure functions over gateway observations, no I/O, no clock.

    challenger = arm_figures([o for o in observations if o.arm == "challenger"])
    champion = arm_figures(champion_so_far)                      # the baseline, pooled over the rollout
    step = judge_step(10, "canary", challenger, champion, cfg.rollout)
    decide([step], cfg.rollout)   # Decision("continue", next_share=50, ...), or "promote" / "rollback"

A step fails when the challenger's error rate or compliance violation rate is over its threshold, when its
p99 latency is over ``max_p99_latency_ratio`` times the champion's, or when no challenger request was measured.
Latency is compared like with like: streamed answers (timed to their last chunk, filter hold-back included)
against the champion's streamed answers, plain ones against plain ones, each kind only once both arms have
``min_latency_samples`` timed answers of it (fewer is a coin toss, not a p99), both floored at
``latency_floor_ms`` (below which a ratio is noise); the step's ratio is the worse of the kinds compared.
A failed step is repeated at the same share; the challenger is promoted once every step has passed, and rolled
back as soon as more than ``failure_limit`` steps have failed.
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
    streamed_timed: int = 0  # answers that succeeded, streamed and not, and their p99s: what latency is judged on
    streamed_p99_s: float | None = None
    plain_timed: int = 0
    plain_p99_s: float | None = None

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
    streamed = [o.seconds for o in observations if o.ok and o.streamed]
    plain = [o.seconds for o in observations if o.ok and not o.streamed]
    return ArmFigures(
        requests=len(observations),
        errors=sum(not o.ok for o in observations),
        violations=sum(o.verdicts > 0 for o in observations),
        blocked=sum(o.blocked for o in observations),
        p50_s=percentile(latencies, 50) if latencies else None,
        p99_s=percentile(latencies, 99) if latencies else None,
        streamed_timed=len(streamed),
        streamed_p99_s=percentile(streamed, 99) if streamed else None,
        plain_timed=len(plain),
        plain_p99_s=percentile(plain, 99) if plain else None,
    )


def latency_ratio(challenger: ArmFigures, champion: ArmFigures, cfg: RolloutConfig) -> tuple[float, str] | None:
    """The worse floored p99 ratio (challenger / champion) over the kinds of answer both arms have enough of,
    with the kind's name; None when no kind has ``cfg.min_latency_samples`` timed answers on both sides."""
    floor = cfg.latency_floor_ms / 1000.0
    need = max(cfg.min_latency_samples, 1)
    kinds = [("streamed", challenger.streamed_timed, challenger.streamed_p99_s, champion.streamed_timed,
              champion.streamed_p99_s),
             ("plain", challenger.plain_timed, challenger.plain_p99_s, champion.plain_timed, champion.plain_p99_s)]
    ratios = [(max(mine, floor) / max(base, floor), kind) for kind, n, mine, n_base, base in kinds
              if n >= need and n_base >= need and mine is not None and base is not None]
    return max(ratios) if ratios else None


@dataclass(frozen=True)
class StepResult:
    share: int
    mode: str
    challenger: ArmFigures
    champion: ArmFigures | None  # the baseline it was compared with (None: no champion answer measured yet)
    p99_ratio: float | None  # floored challenger p99 / floored champion p99, the worse kind (None: not judged)
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
        judged = latency_ratio(challenger, champion, cfg) if champion is not None else None
        if judged is not None:
            ratio, kind = judged
            if ratio > cfg.max_p99_latency_ratio:
                mine, base = ((challenger.streamed_p99_s, champion.streamed_p99_s) if kind == "streamed"
                              else (challenger.plain_p99_s, champion.plain_p99_s))
                failures.append(f"{kind} p99 {mine:.3f}s is {ratio:.2f}x the champion's {base:.3f}s "
                                f"> {cfg.max_p99_latency_ratio}x")
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
            judged = f"x{r.p99_ratio:.2f}" if r.p99_ratio else "too few to judge"
            base = f" vs champion {r.champion.p99_s:.3f}s ({judged})"
        parts.append(f"{r.share}% {'ok' if r.passed else 'FAILED'}: n={c.requests} errors={c.error_rate:.3f} "
                     f"violations={c.violation_rate:.3f} p99={p99}{base}")
    return "Challenger per step: " + " | ".join(parts)
