"""Which language a text is in: py3langid (a fork of langid.py; naive Bayes over byte n-grams, 97 languages),
whose model ships inside the package, so it runs offline.

    english_score("The quick brown fox ...")   # -> 0.99: the probability that the text is English
    identify("Der schnelle braune Fuchs ...")  # -> ("de", 0.99)

Probabilities are py3langid's normalised ones (a softmax tempered by the square root of the text's length).
Long texts are identified on an even sample of ``SAMPLE_CHARS`` characters (start, middle, end): the byte walk
is pure Python, and a few thousand characters decide the language as well as a whole book. Markup that is not
language (URLs, reST roles, inline literals) is removed first.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

SAMPLE_CHARS = 1_200
_NOT_LANGUAGE = re.compile(r"https?://\S+|``[^`\n]*``|:[\w:-]+:`[^`\n]*`|\.\. \w[\w-]*::|<[^>\n]{1,80}>")


@functools.cache
def _identifier():  # loaded once per process (~0.7 s)
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the most likely language of ``text``."""
    return guess(text).top


def english_score(text: str) -> float:
    """The probability that ``text`` is English (0 for text with no letters)."""
    return guess(text).english


@dataclass(frozen=True)
class Guess:
    top: tuple[str, float]  # the most likely language and its probability
    english: float  # the probability of English


@functools.lru_cache(maxsize=2)  # the English test asks for both figures of one text: one pass of the model
def guess(text: str) -> Guess:
    sample = _sample(text)
    if not any(c.isalpha() for c in sample):
        return Guess(top=("und", 0.0), english=0.0)
    ranked = _identifier().rank(sample)  # [(language, probability)], most likely first
    return Guess(top=ranked[0], english=dict(ranked).get("en", 0.0))


def _sample(text: str) -> str:
    if len(text) > 2 * SAMPLE_CHARS:  # markup is removed after sampling: a URL cut in two is still removed
        third = SAMPLE_CHARS // 3 * 2  # ... from pieces twice the size, trimmed after
        middle = (len(text) - third) // 2
        text = "\n".join((text[:third], text[middle:middle + third], text[-third:]))
    text = _NOT_LANGUAGE.sub(" ", text)
    if len(text) <= SAMPLE_CHARS:
        return text
    third = SAMPLE_CHARS // 3
    middle = (len(text) - third) // 2
    return " ".join((text[:third], text[middle:middle + third], text[-third:]))
