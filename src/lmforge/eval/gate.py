"""The quality gate: a model's eval figures against the profile's limits, one reason per failed limit.

    verdict = judge(result.scores, cfg.eval.gate)
    verdict.passed, verdict.reasons     # False, ("degenerate: 100% of answers are empty (limit 20%)",)

Each useless model fails for its own reason: one that stops at once has empty answers, one that repeats a token
has repeated n-grams and few distinct ones, a random one answers off the reference (score below the floor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lmforge.eval.config import QualityGateConfig


@dataclass(frozen=True)
class QualityVerdict:
    passed: bool
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return "passed" if self.passed else "failed: " + "; ".join(self.reasons)


class QualityGateFailed(RuntimeError):
    """A model's answers are degenerate or score below the floor; the message gives every reason."""


def judge(scores: Mapping[str, float], gate: QualityGateConfig, base_score: float | None = None) -> QualityVerdict:
    """``base_score``: the base model's score on the same eval set (with ``gate.min_share_of_base``, a floor)."""
    reasons = degeneracy_reasons(scores, gate)
    score = scores.get("score", 0.0)
    floor, why = gate.min_score, f"the floor {gate.min_score}"
    if gate.min_share_of_base is not None and base_score is not None and gate.min_share_of_base * base_score > floor:
        floor = gate.min_share_of_base * base_score
        why = f"{floor:.3f}, {gate.min_share_of_base:.0%} of the base's {base_score:.3f}"
    if score < floor:
        reasons.append(f"score {score:.3f} (ROUGE-L vs reference) below {why}")
    ppl = scores.get("lmforge_heldout_ppl/word_perplexity")
    if gate.max_word_perplexity is not None and ppl is not None and ppl > gate.max_word_perplexity:
        reasons.append(f"held-out word perplexity {ppl:.1f} above {gate.max_word_perplexity}")
    return QualityVerdict(not reasons, tuple(reasons))


def degeneracy_reasons(scores: Mapping[str, float], gate: QualityGateConfig) -> list[str]:
    """The gate's reasons that read only the answers' form (``degeneracy/*`` figures), not a reference."""
    reasons = []
    empty = scores.get("degeneracy/empty_share", 1.0)
    if empty > gate.max_empty_share:
        reasons.append(f"degenerate: {empty:.0%} of answers are empty (limit {gate.max_empty_share:.0%})")
    repeated = scores.get("degeneracy/repeated_4gram_share", 1.0)
    if repeated > gate.max_repeated_4gram_share:
        reasons.append(f"degenerate: answers repeat themselves ({repeated:.0%} of 4-grams repeated, limit "
                       f"{gate.max_repeated_4gram_share:.0%})")
    distinct = scores.get("degeneracy/distinct_2", 0.0)
    if distinct < gate.min_distinct_2 and empty <= gate.max_empty_share:  # empty answers have no bigrams at all
        reasons.append(f"degenerate: {distinct:.2f} distinct bigrams per bigram (floor {gate.min_distinct_2})")
    eos = scores.get("degeneracy/eos_share", 0.0)
    if eos < gate.min_eos_share:
        reasons.append(f"degenerate: only {eos:.0%} of answers end (floor {gate.min_eos_share:.0%})")
    return reasons
