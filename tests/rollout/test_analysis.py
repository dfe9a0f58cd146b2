"""The rollout's judgement on synthetic measurements: figures per arm, one step's verdict, the whole decision."""

from __future__ import annotations

import random

import pytest

from lmforge.config import RolloutConfig
from lmforge.rollout.analysis import ArmFigures, arm_figures, decide, judge_step, percentile, summarize
from lmforge.rollout.traffic import _shuffled_cycle, plan_requests
from lmforge.serve.routing import Arm, Observation, Router

CFG = RolloutConfig(steps=[10, 50, 100], max_error_rate=0.05, max_latency_ratio=2.0, latency_alpha=0.01,
                    max_violation_rate=0.1, failure_limit=1, latency_floor_ms=50.0)


def _obs(arm: str, n: int, seconds: float = 0.2, errors: int = 0, flagged: int = 0,
         streamed: bool = False) -> list[Observation]:
    """``n`` answers of ``seconds`` each; the first ``errors`` failed, the first ``flagged`` were acted on."""
    version = "2" if arm == "challenger" else "1"
    return [Observation(arm, version, 503 if i < errors else 200, seconds, int(i < flagged), False, streamed=streamed)
            for i in range(n)]


def _figures(**kw: object) -> ArmFigures:
    return arm_figures(_obs("challenger", **kw))  # type: ignore[arg-type]


def test_percentile_matches_numpy_linear() -> None:
    values = [0.5, 0.1, 0.4, 0.2, 0.3]
    assert percentile(values, 50) == 0.3 and percentile(values, 0) == 0.1 and percentile(values, 100) == 0.5
    assert percentile(values, 99) == pytest.approx(0.496)  # numpy.percentile(values, 99)
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_arm_figures_count_errors_violations_and_time_only_successes() -> None:
    obs = [Observation("challenger", "2", 200, 0.1, 0, False), Observation("challenger", "2", 200, 0.3, 3, True),
           Observation("challenger", "2", 503, 0.001, 0, False), Observation("challenger", "2", 200, 0.2, 1, False)]
    f = arm_figures(obs)
    assert (f.requests, f.errors, f.violations, f.blocked) == (4, 1, 2, 1)
    assert f.error_rate == 0.25 and f.violation_rate == 0.5
    assert f.p50_s == pytest.approx(0.2) and f.p99_s == pytest.approx(0.298)  # the fast 503 is not a latency
    empty = arm_figures([])
    assert empty.requests == 0 and empty.error_rate == 0.0 and empty.p99_s is None


def test_a_healthy_challenger_passes() -> None:
    step = judge_step(50, "canary", _figures(n=10), arm_figures(_obs("champion", 18)), CFG)
    assert step.passed and step.p99_ratio == pytest.approx(1.0)


def test_latency_is_not_judged_on_too_few_answers() -> None:
    # Two slow answers at the 10 % step are a coin toss, not a p99: errors and violations are still judged.
    champion = arm_figures(_obs("champion", 18))
    step = judge_step(10, "canary", _figures(n=2, seconds=1.2), champion, CFG)
    assert step.passed and step.p99_ratio is None
    assert "(too few to judge)" in summarize([step])
    assert not judge_step(10, "canary", _figures(n=2, errors=1), champion, CFG).passed
    assert not judge_step(50, "canary", _figures(n=5, seconds=1.2), champion, CFG).passed  # enough: judged


def test_streamed_answers_are_compared_with_streamed_answers() -> None:
    # Streamed answers are timed to their last chunk: slower than plain ones on both arms alike.
    champion = arm_figures(_obs("champion", 10, seconds=0.2) + _obs("champion", 10, seconds=0.5, streamed=True))
    same = arm_figures(_obs("challenger", 5, seconds=0.2) + _obs("challenger", 5, seconds=0.6, streamed=True))
    step = judge_step(50, "canary", same, champion, CFG)
    assert step.passed and step.p99_ratio == pytest.approx(0.6 / 0.5)
    slow_stream = arm_figures(_obs("challenger", 5, seconds=0.2) + _obs("challenger", 5, seconds=1.5, streamed=True))
    step = judge_step(50, "canary", slow_stream, champion, CFG)
    assert not step.passed and step.p99_ratio == pytest.approx(3.0)
    assert step.failures[0].startswith("streamed answers: median latency 3.00x the champion's > 2.0x and slower "
                                       "by rank (Mann-Whitney p=")
    # The old pooled comparison would have failed a challenger whose answers all happened to stream.
    all_streamed = arm_figures(_obs("challenger", 10, seconds=0.5, streamed=True))
    assert judge_step(50, "canary", all_streamed, champion, CFG).passed


@pytest.mark.parametrize(
    "challenger, expected",
    [
        (dict(n=20, errors=2), "error rate 0.100 > 0.05"),
        (dict(n=20, flagged=3), "violation rate 0.150 > 0.1"),
        (dict(n=20, seconds=0.5), "x the champion's"),
        (dict(n=0), "no challenger request was measured"),
    ],
)
def test_each_threshold_fails_a_step(challenger: dict, expected: str) -> None:
    step = judge_step(50, "canary", _figures(**challenger), arm_figures(_obs("champion", 20, seconds=0.2)), CFG)
    assert not step.passed and any(expected in f for f in step.failures), step.failures


def test_error_rate_at_the_threshold_passes() -> None:
    assert judge_step(50, "canary", _figures(n=20, errors=1), None, CFG).passed  # 0.05 is allowed


def test_latency_under_the_floor_is_not_compared() -> None:
    # 40 ms vs 10 ms is 4x, but both are under the 50 ms floor: noise, not a regression.
    fast = arm_figures(_obs("champion", 20, seconds=0.01))
    assert judge_step(50, "canary", _figures(n=5, seconds=0.04), fast, CFG).passed
    slow = judge_step(50, "canary", _figures(n=5, seconds=0.2), fast, CFG)
    assert not slow.passed and slow.p99_ratio == pytest.approx(0.2 / 0.05)


def test_without_a_champion_baseline_latency_is_not_judged() -> None:
    step = judge_step(100, "canary", _figures(n=20, seconds=9.0), None, CFG)
    assert step.passed and step.p99_ratio is None


def test_decide_walks_the_steps_then_promotes() -> None:
    assert decide([], CFG).next_share == 10
    ok = [judge_step(s, "canary", _figures(n=4), None, CFG) for s in CFG.steps]
    assert [decide(ok[:i], CFG).next_share for i in range(3)] == [10, 50, 100]
    final = decide(ok, CFG)
    assert final.action == "promote" and "10% ok" in final.reason and "100% ok" in final.reason


def test_a_failed_step_is_repeated_and_the_second_failure_rolls_back() -> None:
    good = judge_step(10, "canary", _figures(n=4), None, CFG)
    bad = judge_step(50, "canary", _figures(n=10, errors=5), None, CFG)
    repeat = decide([good, bad], CFG)
    assert repeat.action == "continue" and repeat.next_share == 50 and "error rate" in repeat.reason
    tolerated = decide([good, bad, judge_step(50, "canary", _figures(n=10), None, CFG),
                        judge_step(100, "canary", _figures(n=20), None, CFG)], CFG)
    assert tolerated.action == "promote" and "1 failed step(s) repeated" in tolerated.reason
    rolled = decide([good, bad, bad], CFG)
    assert rolled.action == "rollback" and "2 failed steps (limit 1)" in rolled.reason
    assert "error rate 0.500 > 0.05" in rolled.reason and "50% FAILED" in rolled.reason


def test_failure_limit_zero_rolls_back_on_the_first_failure() -> None:
    strict = CFG.model_copy(update={"failure_limit": 0})
    assert decide([judge_step(10, "shadow", _figures(n=2, flagged=2), None, strict)], strict).action == "rollback"


def test_config_refuses_steps_that_are_not_rising_shares() -> None:
    for steps in ([], [0, 50], [50, 10], [10, 150]):
        with pytest.raises(ValueError, match="rollout.steps"):
            RolloutConfig(steps=steps)


def test_prompts_cycle_in_shuffled_passes() -> None:
    prompts = ["a", "b", "c"]
    out = _shuffled_cycle(prompts, 7, random.Random(0))
    assert len(out) == 7 and sorted(out[:3]) == prompts and sorted(out[3:6]) == prompts
    assert out == _shuffled_cycle(prompts, 7, random.Random(0))  # seeded: a rerun sends the same order


def test_which_requests_stream_does_not_line_up_with_the_canary_split() -> None:
    # The gateway splits by a counter (at 50 % every other request); streaming every other request would hand
    # the challenger every streamed request. A seeded coin gives both arms both kinds.
    plan = plan_requests(RolloutConfig(stream_every=2), 1000, random.Random(0))
    assert plan == plan_requests(RolloutConfig(stream_every=2), 1000, random.Random(0))
    champion = Arm("champion", "http://a", "1", None, None)  # type: ignore[arg-type]
    challenger = Arm("challenger", "http://b", "2", None, None)  # type: ignore[arg-type]
    for share in (10, 50):
        router = Router(champion)
        router.set_route(challenger, "canary", share)
        arms = [router.pick()[0].name for _ in plan]
        for arm in ("champion", "challenger"):
            streamed = [stream for (_, stream), picked in zip(plan, arms, strict=True) if picked == arm]
            assert 0.4 < sum(streamed) / len(streamed) < 0.6, (share, arm)
    assert not any(stream for _, stream in plan_requests(RolloutConfig(stream_every=0), 50, random.Random(0)))
