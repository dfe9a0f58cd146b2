"""The ``eval:`` section of a profile: what the held-out eval set holds and what the quality gate demands.

Kept beside the eval code (``lmforge.config`` imports it) so the gate's fields and their docs live in one place.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class QualityGateConfig(BaseModel):
    """Limits a model's eval figures must meet; each failed limit is one reason in the verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_score: float = Field(
        0.05, ge=0, le=1, description="Floor of the eval score (mean ROUGE-L F of the QA answers). Set it from "
        "a measured figure: the base model's own score on the same eval set (benchmarks/bench_quality.py).")
    min_share_of_base: float | None = Field(
        None, ge=0, description="With a base model (base.source), the floor is also this share of the base's own "
        "score on the same eval set (reports/eval_base.json, measured by the eval stage); 1.0: no worse than the "
        "base. None: min_score alone.")
    max_empty_share: float = Field(0.2, ge=0, le=1, description="Largest share of empty (whitespace) answers.")
    max_repeated_4gram_share: float = Field(
        0.5, ge=0, le=1, description="Largest mean share of an answer's word 4-grams that repeat an earlier one.")
    min_distinct_2: float = Field(
        0.2, ge=0, le=1, description="Smallest share of distinct word bigrams over all answers together.")
    min_eos_share: float = Field(
        0.0, ge=0, le=1, description="Smallest share of answers that end (EOS) within eval.max_new_tokens.")
    max_word_perplexity: float | None = Field(
        None, gt=0, description="Largest word perplexity on the held-out prose (None: reported, not gated).")


class EvalConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    qa_items: int = Field(40, ge=1, description="Held-out instruction pairs answered and scored against their "
                                                "reference (from shards/sft_val.jsonl, never trained on).")
    ifeval_items: int = Field(18, ge=0, description="Held-out prompts with one verifiable instruction appended "
                                                    "(IFEval-style), drawn from the pairs after the QA items.")
    ppl_docs: int = Field(8, ge=0, description="Held-out prose documents scored for perplexity (the corpus's "
                                               "validation split).")
    ppl_chars: int = Field(1500, ge=100, description="Characters kept of each perplexity document.")
    max_new_tokens: int = Field(64, ge=1, description="Greedy answer length limit per item.")
    batch_size: int = Field(16, ge=1, description="Items generated together (in-process Hugging Face model).")
    decontam_ngram: int = Field(
        13, ge=4, description="Word n-gram length of the overlap check against every training set (13: GPT-3's "
        "and lm-eval's decontamination); an eval item sharing one such n-gram with training text is dropped.")
    gate_registration: bool = Field(
        True, description="Registration applies the gate: a failing model gets no challenger alias and a failed "
        "quality gate that blocks promotion. False (smoke-test profiles whose models are not meant to be "
        "useful): the verdict is recorded on the version as lmforge.quality.verdict, and nothing is blocked.")
    min_agreement: float = Field(
        0.0, ge=0, le=1, description="Rollout: a step fails when the challenger's answers score below this "
        "ROUGE-L against the champion's answers to the same prompts (0: not judged; degeneracy always is).")
    gate: QualityGateConfig = QualityGateConfig()
