"""Answer quality of the rollout's live answers: is the challenger worse than the champion it would replace?

    challenger = {"What is a tuple?": ["An immutable sequence."], ...}   # prompt -> answers this step
    failures = quality_failures(challenger, champion, cfg.eval)         # [] or reasons, for judge_step

A step fails on quality when the challenger's answers are degenerate by the eval gate's limits (empty,
repeated 4-grams, few distinct bigrams) while the champion's are not, and, when ``eval.min_agreement`` is
set, when the challenger's answers score below it against the champion's answers to the same prompts
(ROUGE-L, the champion's answer as the reference: the shadow comparison).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lmforge.eval.config import EvalConfig, QualityGateConfig
from lmforge.eval.gate import degeneracy_reasons
from lmforge.eval.metrics import degeneracy, rouge_l

Answers = Mapping[str, Sequence[str]]  # prompt -> the answers one arm gave to it


@dataclass(frozen=True)
class LiveQuality:
    answers: int
    degenerate: tuple[str, ...]  # the eval gate's degeneracy reasons (empty when none)
    agreement: float | None  # mean ROUGE-L against the champion's answer to the same prompt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_quality(arm: Answers, gate: QualityGateConfig, champion: Answers | None = None) -> LiveQuality:
    """Degeneracy of one arm's answers and, given the champion's, their agreement with them. Whether an answer
    ended is not known from a capped live answer, so it is not judged here."""
    texts = [a for answers in arm.values() for a in answers]
    figures = {f"degeneracy/{k}": v for k, v in degeneracy(texts, [True] * len(texts)).items()}
    reasons = tuple(degeneracy_reasons(figures, gate))
    pairs = [(mine, theirs[0]) for prompt, answers in arm.items() for mine in answers
             if champion and (theirs := champion.get(prompt))]
    agreement = sum(rouge_l(m, t) for m, t in pairs) / len(pairs) if pairs else None
    return LiveQuality(len(texts), reasons, agreement)


def quality_failures(challenger: Answers, champion: Answers, cfg: EvalConfig) -> list[str]:
    """Why the challenger's live answers are worse than the champion's ([] when they are not, or unmeasured)."""
    if not challenger:
        return []
    mine = live_quality(challenger, cfg.gate, champion)
    theirs = live_quality(champion, cfg.gate) if champion else None
    failures = []
    if mine.degenerate and (theirs is None or not theirs.degenerate):
        failures += [f"challenger answers {r} (the champion's are not)" for r in mine.degenerate]
    if cfg.min_agreement > 0 and mine.agreement is not None and mine.agreement < cfg.min_agreement:
        failures.append(f"challenger answers agree with the champion's at ROUGE-L {mine.agreement:.3f} "
                        f"< {cfg.min_agreement}")
    return failures
