"""Verifiable instructions, IFEval-style (Zhou et al. 2023): an instruction appended to a prompt and a
deterministic check of the answer, under IFEval's own instruction ids and strict scoring.

    item = attach_instruction("What does the json module do?", "punctuation:no_comma", {})
    follows("punctuation:no_comma", {}, "It reads JSON.")   # True

lm-eval ships IFEval's checker (``lm_eval.tasks.ifeval``), but it cannot be imported here: its module
imports ``langdetect`` (not in the lock) and downloads NLTK's ``punkt_tab`` at import time (offline: fails).
These checks implement the same instruction ids without either; sentences are split on end punctuation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lmforge.eval.metrics import normalize_answer

_SENTENCE_END = re.compile(r"[.!?]+(?:\s+|$)")
_BULLET = re.compile(r"^\s*[*-]\s", re.MULTILINE)


def _sentences(text: str) -> int:
    return len([s for s in _SENTENCE_END.split(text.strip()) if s.strip()])


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


# instruction id -> (the text appended to the prompt, the check of the answer); both read the same kwargs
INSTRUCTIONS: dict[str, tuple[Callable[..., str], Callable[..., bool]]] = {
    "length_constraints:number_words": (
        lambda num_words: f"Answer in fewer than {num_words} words.",
        lambda text, num_words: _words(text) < num_words),
    "length_constraints:number_sentences": (
        lambda num_sentences: "Answer in one sentence." if num_sentences == 1
        else f"Answer in at most {num_sentences} sentences.",
        lambda text, num_sentences: _sentences(text) <= num_sentences),
    "detectable_format:number_bullet_lists": (
        lambda num_bullets: f"Answer with exactly {num_bullets} bullet points, each on its own line starting "
                            "with '* '.",
        lambda text, num_bullets: len(_BULLET.findall(text)) == num_bullets),
    "keywords:existence": (
        lambda keywords: "Include the keyword" + ("s " if len(keywords) > 1 else " ")
                         + ", ".join(f'"{k}"' for k in keywords) + " in your answer.",
        lambda text, keywords: all(re.search(rf"\b{re.escape(k)}\b", text, re.IGNORECASE) for k in keywords)),
    "change_case:english_lowercase": (
        lambda: "Your entire answer must be in lowercase letters.",
        lambda text: text == text.lower()),
    "punctuation:no_comma": (
        lambda: "Do not use any commas in your answer.",
        lambda text: "," not in text),
}


def attach_instruction(prompt: str, instruction_id: str, kwargs: dict[str, Any]) -> str:
    describe, _ = INSTRUCTIONS[instruction_id]
    return f"{prompt.rstrip()} {describe(**kwargs)}"


def follows(instruction_id: str, kwargs: dict[str, Any], answer: str) -> bool:
    """IFEval's strict check: an empty answer follows nothing."""
    _, check = INSTRUCTIONS[instruction_id]
    return bool(answer.strip()) and check(answer, **kwargs)


def plan_instruction(index: int, prompt: str, reference: str) -> tuple[str, dict[str, Any]]:
    """The instruction of the ``index``-th IFEval item: the ids in turn; the keyword is a content word of the
    reference answer, so a model that answers the question can meet it."""
    ids = list(INSTRUCTIONS)
    instruction_id = ids[index % len(ids)]
    kwargs: dict[str, Any] = {
        "length_constraints:number_words": {"num_words": 30},
        "length_constraints:number_sentences": {"num_sentences": 1},
        "detectable_format:number_bullet_lists": {"num_bullets": 3},
        "change_case:english_lowercase": {},
        "punctuation:no_comma": {},
    }.get(instruction_id, {})
    if instruction_id == "keywords:existence":
        content = [w for w in normalize_answer(reference) if len(w) > 4 and w.isalpha()] or \
                  [w for w in normalize_answer(prompt) if w.isalpha()] or ["answer"]
        kwargs = {"keywords": [max(content, key=len)]}
    return instruction_id, kwargs
