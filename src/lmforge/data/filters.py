"""Quality filters: each answers ``(keep, reason)`` for one record, Gopher/datatrove style.

The reason is the rule name the record is quarantined under (``clean/quarantine/<rule>.jsonl``). The filters
that judge writing (letters, repetition, language) look at the record's prose only (``prose.prose_part``):
code blocks in documentation are kept with their record, not held against it.
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter

from lmforge.config import DataConfig
from lmforge.data.language import english_score, identify
from lmforge.data.pipeline import Filter
from lmforge.data.prose import language_part, prose_part, split_code
from lmforge.data.records import Record, text_fields

_WORD = re.compile(r"\w+(?:[.']\w+)*")  # a dotted name (os.path.join) or a contraction is one word
_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_SPACES = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.isspace() calls a space, within ASCII
_ASCII_RUNS = re.compile(r"[\x00-\x7f]+")
_URL = re.compile(r"\w+://\S+")
_ALNUM = re.compile(r"[^\W_]")
KEEP = (True, "")
MIN_REPEATS = 4  # a phrase said three times in a short section is emphasis (a term, an example), not spam
CONFIDENT = 0.9  # probability at which a code-only record's other language counts against it


@functools.lru_cache(maxsize=2)
def words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


class NonEmpty(Filter):
    """Every text field has something in it after normalisation (``empty``, ``empty_prompt`` ...)."""

    name = "non_empty"

    def filter(self, record: Record) -> tuple[bool, str]:
        fields = text_fields(record)
        for field in fields:
            if not record[field].strip():
                return False, "empty" if fields == ("text",) else f"empty_{field}"
        return KEEP


class LengthBounds(Filter):
    name = "length"

    def __init__(self, min_chars: int, max_chars: int) -> None:
        super().__init__()
        self.min_chars, self.max_chars = min_chars, max_chars

    def filter(self, record: Record) -> tuple[bool, str]:
        n = len(record["text"])
        if n < self.min_chars:
            return False, "too_short"
        if n > self.max_chars:
            return False, "too_long"
        return KEEP


class AlphaRatio(Filter):
    """Share of letters among the prose's non-space characters: low for tables and number lists."""

    name = "alpha_ratio"

    def __init__(self, min_ratio: float) -> None:
        super().__init__()
        self.min_ratio = min_ratio

    def filter(self, record: Record) -> tuple[bool, str]:
        letters, visible = letter_counts(prose_part(record["text"]))
        return KEEP if letters / max(visible, 1) >= self.min_ratio else (False, "low_alpha")


def letter_counts(text: str) -> tuple[int, int]:
    """(letters, non-space characters) of ``text``, as ``str.isalpha`` and ``str.isspace`` count them."""
    ascii_only = text.encode("ascii", "ignore")  # count ASCII by deleting a class of bytes, at C speed
    letters = len(ascii_only) - len(ascii_only.translate(None, _ASCII_LETTERS))
    visible = len(ascii_only.translate(None, _ASCII_SPACES))
    if len(ascii_only) < len(text):  # the rest one by one: few characters, and a few dozen distinct ones
        counts = Counter(_ASCII_RUNS.sub("", text))
        letters += sum(n for c, n in counts.items() if c.isalpha())
        visible += sum(n for c, n in counts.items() if not c.isspace())
    return letters, visible


class RepeatedLines(Filter):
    """Share of non-empty prose lines that repeat an earlier line (boilerplate, menus, spam)."""

    name = "repeated_lines"

    def __init__(self, max_ratio: float) -> None:
        super().__init__()
        self.max_ratio = max_ratio

    def filter(self, record: Record) -> tuple[bool, str]:
        prose, _ = split_code(record["text"])  # a bullet or rule ("*", "--") is layout, not a line of content
        lines = [line for line in prose.split("\n") if _ALNUM.search(line)]
        if len(lines) < 3:
            return KEEP
        repeats = len(lines) - len(set(lines))
        return KEEP if repeats / len(lines) <= self.max_ratio else (False, "repetitive_lines")


class TopNgramShare(Filter):
    """Share of the prose's word characters covered by its most frequent word n-gram (Gopher's check)."""

    name = "top_ngram"

    def __init__(self, max_ratio: float, n: int = 3, min_words: int = 50) -> None:
        super().__init__()
        self.max_ratio, self.n, self.min_words = max_ratio, n, min_words  # Gopher: documents of 50+ words

    def filter(self, record: Record) -> tuple[bool, str]:
        prose, _ = split_code(record["text"])
        tokens = words(_URL.sub(" ", prose))  # a list of URLs repeats its host, not prose
        if len(tokens) < max(self.min_words, 2 * self.n):  # a few sentences: one repeated term dominates them
            return KEEP
        # Every n-gram as a tuple, built in C; shifted copies are shorter, so zip stops at the last whole one.
        grams = Counter(zip(*(tokens[i:] for i in range(self.n)), strict=False))
        top, count = grams.most_common(1)[0]
        if count < MIN_REPEATS:
            return KEEP
        share = count * sum(map(len, top)) / sum(map(len, tokens))
        return KEEP if share <= self.max_ratio else (False, "repetitive_ngrams")


def is_english(text: str, min_score: float) -> bool | None:
    """The English test: the prose's probability of English (``language.english_score``, py3langid) reaches
    ``min_score``, or English is its most likely language (short prose spreads probability over related
    languages). None for code with too little prose to judge (``prose.language_part``), unless its whole text
    is confidently another language (comments or messages in code): then False."""
    part = language_part(text)
    if part is None:
        lang, prob = identify(text)
        return False if lang != "en" and prob >= CONFIDENT else None
    return english_score(part) >= min_score or identify(part)[0] == "en"


class English(Filter):
    """Quarantines a record that ``is_english`` says is not (``not_english``); counts code-only records."""

    name = "english"

    def __init__(self, min_score: float) -> None:
        super().__init__()
        self.min_score = min_score
        self.code_only = 0

    def filter(self, record: Record) -> tuple[bool, str]:
        verdict = is_english(" ".join(record[f] for f in text_fields(record)), self.min_score)
        self.code_only += verdict is None
        return (False, "not_english") if verdict is False else KEEP

    def stats(self) -> dict[str, object]:
        return {**super().stats(), "code_only": self.code_only}


def quality_filters(cfg: DataConfig) -> list[Filter]:
    """The prose quality filters in the order they run (cheapest first)."""
    return [
        LengthBounds(cfg.min_chars, cfg.max_chars),
        AlphaRatio(cfg.min_alpha_ratio),
        RepeatedLines(cfg.max_dup_line_ratio),
        TopNgramShare(cfg.max_top_ngram_ratio),
        English(cfg.min_english_score),
    ]
