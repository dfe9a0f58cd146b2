"""The per-item scoring hooks the lm-eval tasks in ``configs/eval/`` name with ``!function``.

lm-eval calls ``process_results(doc, results)`` once per item with the model's answers; the values returned
are aggregated by the task's ``metric_list`` (mean, or the functions below for corpus-level figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmforge.eval import metrics
from lmforge.eval.instructions import follows


def process_qa(doc: dict[str, Any], results: Sequence[str]) -> dict[str, Any]:
    answer = results[0]
    return {
        "rougeL": metrics.rouge_l(answer, doc["response"]),
        "token_f1": metrics.token_f1(answer, doc["response"]),
        "repeated_4gram_share": metrics.repeated_ngram_share(answer, 4),
        "empty_share": float(not answer.strip()),
        "distinct_2": answer,  # aggregated over all answers by distinct_2
    }


def distinct_2(answers: Sequence[str]) -> float:
    return metrics.distinct_n(answers, 2)


def process_ifeval(doc: dict[str, Any], results: Sequence[str]) -> dict[str, Any]:
    answer = results[0]
    followed = [follows(i, kwargs, answer) for i, kwargs in zip(doc["instruction_id_list"], doc["kwargs"],
                                                                strict=True)]
    return {"prompt_level_strict_acc": float(all(followed)), "inst_level_strict_acc": followed}


def instruction_mean(items: Sequence[Sequence[bool]]) -> float:
    """IFEval's instruction-level accuracy: every instruction of every prompt counts once."""
    flat = [bool(x) for item in items for x in item]
    return sum(flat) / len(flat) if flat else 0.0
