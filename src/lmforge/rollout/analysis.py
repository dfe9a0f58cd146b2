"""Judge a rollout from what each arm did: pure functions over gateway observations, no I/O, no clock.

    challenger = arm_figures([o for o in observations if o.arm == "challenger"])
    champion = arm_figures(champion_latest)                      # the baseline: its latest answers
    step = judge_step(10, "canary", challenger, champion, cfg.rollout)
    decide([step], cfg.rollout)   # Decision("continue", next_share=50, ...), or "promote" / "rollback"

A step fails when the challenger's error rate or compliance violation rate is over its threshold, when it is
slower than the champion, or when no challenger request was measured. Slower is judged as Kayenta judges a
metric: a one-sided Mann-Whitney U (rank) test says the challenger's latencies are larger (p below
``latency_alpha``) and the effect is material (its median over ``max_latency_ratio`` times the champion's).
A p99 of ~5 answers is the slowest of them, one stall on a shared machine; ranks use every answer and a
median ignores the stall. Latency is compared like with like: streamed answers (timed to their last chunk,
filter hold-back included) against the champion's streamed answers, plain ones against plain ones, each kind
only once both arms have ``min_latency_samples`` timed answers of it, all floored at ``latency_floor_ms``
(below which a difference is noise). The p99 ratio is still reported. A failed step is repeated at the same
share; the challenger is promoted once every step has passed, and rolled back as soon as more than
``failure_limit`` steps have failed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from scipy.stats import mannwhitneyu

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
    # The timed answers themselves (seconds), what the rank test compares; not in reports.
    streamed_s: tuple[float, ...] = field(default=(), repr=False)
    plain_s: tuple[float, ...] = field(default=(), repr=False)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def violation_rate(self) -> float:
        return self.violations / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        figures = {k: v for k, v in asdict(self).items() if k not in ("streamed_s", "plain_s")}
        return {**figures, "error_rate": self.error_rate, "violation_rate": self.violation_rate}


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
        streamed_s=tuple(streamed),
        plain_s=tuple(plain),
    )


@dataclass(frozen=True)
class LatencyComparison:
    """One kind of answer of both arms (``streamed``, ``plain``, or ``all``: every answer divided by the champion's
    median of its kind, so both kinds pool into one test), floored at ``latency_floor_ms``."""

    kind: str
    answers: int  # the challenger's timed answers compared
    median_ratio: float  # challenger median / champion median: the size of the effect
    p99_ratio: float  # challenger p99 / champion p99: reported, not judged (the slowest of a few answers)
    p_value: float  # one-sided Mann-Whitney U: the challenger's latencies are stochastically larger

    def slower(self, cfg: RolloutConfig) -> bool:
        return self.p_value < cfg.latency_alpha and self.median_ratio > cfg.max_latency_ratio


_MIN_KIND_BASELINE = 2  # champion answers of a kind whose median scales the challenger's answers of it when pooled


def compare_latency(challenger: ArmFigures, champion: ArmFigures, cfg: RolloutConfig) -> list[LatencyComparison]:
    """Each kind of answer both arms have ``cfg.min_latency_samples`` timed answers of, then all of them pooled
    (once both arms have that many in all, and the champion a few of each kind the challenger has)."""
    floor = cfg.latency_floor_ms / 1000.0
    need = max(cfg.min_latency_samples, 1)
    kinds = [(kind, [max(v, floor) for v in mine], [max(v, floor) for v in base])
             for kind, mine, base in (("streamed", challenger.streamed_s, champion.streamed_s),
                                      ("plain", challenger.plain_s, champion.plain_s))]
    found = [_compare(kind, x, y) for kind, x, y in kinds if len(x) >= need and len(y) >= need]
    answered = [(x, y) for _, x, y in kinds if x]
    enough = sum(len(x) for x, _ in answered) >= need and sum(len(y) for _, y in answered) >= need
    if enough and all(len(y) >= _MIN_KIND_BASELINE for _, y in answered):
        medians = [statistics.median(y) for _, y in answered]
        pooled_x = [v / m for (x, _), m in zip(answered, medians, strict=True) for v in x]
        pooled_y = [v / m for (_, y), m in zip(answered, medians, strict=True) for v in y]
        found.append(_compare("all", pooled_x, pooled_y))
    return found


def _compare(kind: str, x: list[float], y: list[float]) -> LatencyComparison:
    """The challenger's latencies ``x`` against the champion's ``y``."""
    p_value = 1.0 if len(set(x) | set(y)) == 1 else float(mannwhitneyu(x, y, alternative="greater").pvalue)
    return LatencyComparison(kind, len(x), statistics.median(x) / statistics.median(y),
                             percentile(x, 99) / percentile(y, 99), p_value)


@dataclass(frozen=True)
class StepResult:
    share: int
    mode: str
    challenger: ArmFigures
    champion: ArmFigures | None  # the baseline it was compared with (None: no champion answer measured yet)
    p99_ratio: float | None  # floored challenger p99 / floored champion p99, the worse kind (None: not compared)
    failures: tuple[str, ...]
    latency: tuple[LatencyComparison, ...] = ()  # the kinds of answer compared

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"share": self.share, "mode": self.mode, "passed": self.passed, "failures": list(self.failures),
                "p99_ratio": self.p99_ratio, "latency": [asdict(c) for c in self.latency],
                "challenger": self.challenger.to_dict(),
                "champion": self.champion.to_dict() if self.champion else None}


def judge_step(
    share: int, mode: str, challenger: ArmFigures, champion: ArmFigures | None, cfg: RolloutConfig,
    quality_failures: Sequence[str] = (),
) -> StepResult:
    """``quality_failures``: why the challenger's answers are worse than the champion's (lmforge.rollout.quality)."""
    failures: list[str] = list(quality_failures)
    ratio: float | None = None
    compared: list[LatencyComparison] = []
    if challenger.requests == 0:
        failures.append("no challenger request was measured")
    else:
        if challenger.error_rate > cfg.max_error_rate:
            failures.append(f"error rate {challenger.error_rate:.3f} > {cfg.max_error_rate}")
        if challenger.violation_rate > cfg.max_violation_rate:
            failures.append(f"violation rate {challenger.violation_rate:.3f} > {cfg.max_violation_rate}")
        compared = compare_latency(challenger, champion, cfg) if champion is not None else []
        ratio = max((c.p99_ratio for c in compared), default=None)
        failures += [f"{c.kind} answers: median latency {c.median_ratio:.2f}x the champion's > "
                     f"{cfg.max_latency_ratio}x and slower by rank (Mann-Whitney p={c.p_value:.2g} < "
                     f"{cfg.latency_alpha}, n={c.answers})" for c in compared if c.slower(cfg)]
    return StepResult(share, mode, challenger, champion, ratio, tuple(failures), tuple(compared))


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
            judged = (", ".join(f"{k.kind} median x{k.median_ratio:.2f} p={k.p_value:.2g}" for k in r.latency)
                      if r.latency else "too few to judge")
            base = f" vs champion {r.champion.p99_s:.3f}s ({judged})"
        parts.append(f"{r.share}% {'ok' if r.passed else 'FAILED'}: n={c.requests} errors={c.error_rate:.3f} "
                     f"violations={c.violation_rate:.3f} p99={p99}{base}")
    return "Challenger per step: " + " | ".join(parts)
