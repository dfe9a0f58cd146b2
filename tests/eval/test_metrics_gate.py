"""The metrics against their definitions, and the quality gate on figures: a perfect model passes, each kind
of useless output fails with its own reason."""

from __future__ import annotations

import pytest
from quality_cases import QUESTIONS

from lmforge.eval import hooks, metrics
from lmforge.eval.config import QualityGateConfig
from lmforge.eval.gate import judge
from lmforge.eval.instructions import INSTRUCTIONS, attach_instruction, follows, plan_instruction


def scores_of(answers: list[str], reached_eos: list[bool]) -> dict[str, float]:
    """Figures as the harness computes them, from answers to the QUESTIONS (no model involved)."""
    per_item = [hooks.process_qa({"response": ref}, [a]) for a, (_, ref) in zip(answers, QUESTIONS, strict=True)]
    scores = {f"degeneracy/{k}": v for k, v in metrics.degeneracy(answers, reached_eos).items()}
    scores["score"] = sum(p["rougeL"] for p in per_item) / len(per_item)
    return scores


def test_token_f1_and_rouge_follow_their_definitions() -> None:
    assert metrics.token_f1("The cat sat.", "a cat sat") == 1.0  # articles and punctuation do not count
    assert metrics.token_f1("cat dog", "cat bird") == pytest.approx(0.5)
    assert metrics.token_f1("", "cat") == 0.0
    assert metrics.rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert 0 < metrics.rouge_l("the cat lay on a mat", "the cat sat on the mat") < 1


def test_degeneracy_figures() -> None:
    assert metrics.repeated_ngram_share("a b c d a b c d a b c d", 4) == pytest.approx(1 - 4 / 9)
    assert metrics.repeated_ngram_share("one two three", 4) == 0.0
    assert metrics.distinct_n(["a b", "a b"], 2) == 0.5
    figures = metrics.degeneracy(["", "x y z"], [True, False])
    assert figures["empty_share"] == 0.5 and figures["eos_share"] == 0.5


def test_reference_answers_pass_the_gate() -> None:
    perfect = [ref for _, ref in QUESTIONS]
    verdict = judge(scores_of(perfect, [True] * len(perfect)), QualityGateConfig(min_eos_share=0.9))
    assert verdict.passed, verdict.reasons


@pytest.mark.parametrize(("answers", "eos", "reason"), [
    (["" for _ in QUESTIONS], True, "empty"),                                      # stops at once
    (["harbor " * 30 for _ in QUESTIONS], False, "repeat themselves"),             # one token forever
    (["zq vexl morb quint plax drel" for _ in QUESTIONS], True, "below the floor"),  # fluent-free noise
])
def test_useless_answers_fail_with_their_own_reason(answers: list[str], eos: bool, reason: str) -> None:
    verdict = judge(scores_of(answers, [eos] * len(answers)), QualityGateConfig())
    assert not verdict.passed
    assert any(reason in r for r in verdict.reasons), verdict.reasons


def test_every_instruction_is_checkable() -> None:
    for index, (prompt, ref) in enumerate(QUESTIONS[: len(INSTRUCTIONS)]):
        instruction_id, kwargs = plan_instruction(index, prompt, ref)
        assert attach_instruction(prompt, instruction_id, kwargs).startswith(prompt)
        assert not follows(instruction_id, kwargs, "   ")  # IFEval strict: an empty answer follows nothing
    assert follows("length_constraints:number_sentences", {"num_sentences": 1}, "It reads JSON.")
    assert not follows("length_constraints:number_sentences", {"num_sentences": 1}, "It reads. It writes.")
    assert follows("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two")
    assert follows("keywords:existence", {"keywords": ["harbor"]}, "The Harbor is calm.")
    assert not follows("punctuation:no_comma", {}, "a, b")
    ifeval = hooks.process_ifeval({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}, ["ok"])
    assert ifeval["prompt_level_strict_acc"] == 1.0 and hooks.instruction_mean([[True], [False, True]]) == 2 / 3


def test_floor_from_the_base_score() -> None:
    gate = QualityGateConfig(min_score=0.05, min_share_of_base=1.0)
    good = scores_of([ref for _, ref in QUESTIONS], [True] * len(QUESTIONS)) | {"score": 0.30}
    assert judge(good, gate, base_score=0.25).passed
    verdict = judge(good, gate, base_score=0.40)
    assert not verdict.passed and "100% of the base's 0.400" in verdict.reasons[0]
    assert judge(good, gate).passed  # no base measured: min_score alone
