"""Answer metrics, each the field's standard definition, as plain functions over strings.

    rouge_l(answer, reference)          # ROUGE-L F-measure (Lin 2004), Google's rouge-score package
    token_f1(answer, reference)         # SQuAD's token-overlap F1 after its answer normalisation
    distinct_n(answers, 2)              # distinct bigrams / all bigrams over every answer (Li et al. 2016)
    repeated_ngram_share(answer, 4)     # share of an answer's 4-grams that repeat an earlier one
    degeneracy(answers, reached_eos)    # the four degeneracy figures the quality gate reads
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import cache

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> list[str]:
    """SQuAD's normalisation: lower case, no punctuation, no articles, words split on whitespace."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()


def token_f1(answer: str, reference: str) -> float:
    """Harmonic mean of token precision and recall between normalised answer and reference (SQuAD v1.1)."""
    mine, ref = normalize_answer(answer), normalize_answer(reference)
    if not mine or not ref:
        return float(mine == ref)
    common = sum((Counter(mine) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(mine), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@cache
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of stemmed words)."""
    return float(_rouge_scorer().score(reference, answer)["rougeL"].fmeasure)


def words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(answers: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of every answer together (0 when there are none)."""
    grams = [g for a in answers for g in ngrams(words(a), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_ngram_share(answer: str, n: int = 4) -> float:
    """Share of the answer's n-grams that already occurred earlier in it (0 for an answer shorter than n)."""
    grams = ngrams(words(answer), n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def degeneracy(answers: Sequence[str], reached_eos: Sequence[bool]) -> dict[str, float]:
    """What a degenerate model shows: few distinct n-grams, loops, no end of answer, empty answers."""
    count = max(len(answers), 1)
    return {
        "distinct_1": distinct_n(answers, 1),
        "distinct_2": distinct_n(answers, 2),
        "repeated_4gram_share": sum(repeated_ngram_share(a, 4) for a in answers) / count,
        "eos_share": sum(reached_eos) / count,
        "empty_share": sum(not a.strip() for a in answers) / count,
    }
