"""The rollout judges the arms' live answers: a challenger that answers worse than the champion fails its step
(and is rolled back like an erroring one); one that answers like it passes."""

from __future__ import annotations

import json

from lmforge.config import load_config
from lmforge.rollout.analysis import ArmFigures, decide, judge_step
from lmforge.rollout.quality import live_quality, quality_failures
from lmforge.rollout.traffic import ClientTally, answer_text

CHAMPION = {"What is a tuple?": ["An immutable sequence of values."],
            "What does print do?": ["It writes text to standard output."],
            "Define the verb sail.": ["To travel on water in a ship or boat."]}
HEALTHY = ArmFigures(requests=10, errors=0, violations=0, blocked=0, p50_s=0.1, p99_s=0.1)


def test_a_degenerate_challenger_fails_and_is_rolled_back() -> None:
    cfg = load_config("tiny")
    looping = {p: ["sea sea sea sea sea sea sea sea sea sea"] for p in CHAMPION}
    silent = {p: [""] for p in CHAMPION}
    assert any("repeat themselves" in f for f in quality_failures(looping, CHAMPION, cfg.eval))
    assert any("empty" in f for f in quality_failures(silent, CHAMPION, cfg.eval))
    failures = quality_failures(silent, CHAMPION, cfg.eval)
    steps = [judge_step(10, "canary", HEALTHY, HEALTHY, cfg.rollout, failures) for _ in range(2)]
    assert not steps[0].passed and decide(steps, cfg.rollout).action == "rollback"
    assert "empty" in decide(steps, cfg.rollout).reason


def test_a_challenger_like_the_champion_passes_and_a_useless_champion_is_no_bar() -> None:
    cfg = load_config("tiny")
    assert quality_failures(CHAMPION, CHAMPION, cfg.eval) == []
    same_noise = {p: [""] for p in CHAMPION}
    assert quality_failures(same_noise, same_noise, cfg.eval) == []  # not worse than what it replaces
    assert quality_failures({}, CHAMPION, cfg.eval) == []  # nothing measured: judged on errors instead


def test_shadow_agreement_with_the_champion() -> None:
    cfg = load_config("tiny", ["eval.min_agreement=0.3"])
    assert live_quality(CHAMPION, cfg.eval.gate, CHAMPION).agreement == 1.0
    off_topic = {p: ["Bananas grow in warm and humid places far away."] for p in CHAMPION}
    assert any("agree with the champion" in f for f in quality_failures(off_topic, CHAMPION, cfg.eval))


def test_answer_text_of_plain_and_streamed_chat_completions() -> None:
    plain = json.dumps({"choices": [{"message": {"content": "Hi there."}}]})
    chunks = [f"data: {json.dumps({'choices': [{'delta': {'content': c}}]})}" for c in ("Hi", " there.")]
    assert answer_text([plain], streamed=False) == "Hi there."
    assert answer_text([*chunks, "", "data: [DONE]"], streamed=True) == "Hi there."
    assert answer_text(["<html>"], streamed=False) == ""
    tally = ClientTally(answers=[("champion", "q", "a"), ("challenger", "q", "b"), ("champion", "q", "c")])
    assert tally.answers_of("champion") == {"q": ["a", "c"]}
