"""Steps that rewrite text without dropping records: Unicode/whitespace normalisation and PII scrubbing."""

from __future__ import annotations

import functools
import re
import sys
import textwrap
import unicodedata
from collections import Counter
from collections.abc import Iterator

from lmforge.data.pipeline import Quarantine, Step
from lmforge.data.records import Record, text_fields
from lmforge.pii import scrub_pii

_SPACES = re.compile(r"[^\S\n]+")  # whitespace other than newline


@functools.cache
def _control_chars() -> re.Pattern[str]:
    """Every control (Cc) and format (Cf) character but newline and tab, as one character class.

    One regex pass runs far faster than asking ``unicodedata.category`` character by character; building
    the class scans all code points once (~0.3 s), on first use rather than at import.
    """
    codes = [c for c in range(sys.maxunicode + 1)
             if chr(c) not in "\n\t" and unicodedata.category(chr(c)) in ("Cc", "Cf")]
    ranges: list[list[int]] = []  # consecutive code points as [first, last]: a short class matches faster
    for c in codes:
        if ranges and c == ranges[-1][1] + 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return re.compile("[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]")

_BLANK_LINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """NFKC; drop control and format characters (zero-width, BOM) but keep newlines; tidy whitespace.

    Runs of spaces inside a line collapse to one, but a line's indentation stays (tabs become 4 spaces):
    code blocks in documentation mean something by it. Indentation common to all lines is removed.
    """
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _control_chars().sub("", text)
    lines = []
    for line in text.expandtabs(4).split("\n"):
        body = line.lstrip(" ")
        lines.append(line[:len(line) - len(body)] + _SPACES.sub(" ", body).rstrip() if body else "")
    text = textwrap.dedent("\n".join(lines))
    return _BLANK_LINES.sub("\n\n", text).strip("\n")


class Normalize(Step):
    """Normalise every text field; keep the ingested record under ``_raw`` for the quarantine."""

    name = "normalize"

    def __init__(self) -> None:
        self.changed = 0

    def run(self, records: Iterator[Record], quarantine: Quarantine) -> Iterator[Record]:
        for record in records:
            out = {**record, "_raw": record}
            for field in text_fields(record):
                out[field] = normalize_text(record[field])
            self.changed += any(out[f] != record[f] for f in text_fields(record))
            yield out

    def stats(self) -> dict[str, object]:
        return {"changed": self.changed}


class ScrubPii(Step):
    """Replace PII in every text field with ``<KIND>`` (``lmforge.pii``); count matches per kind."""

    name = "scrub_pii"

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.records_with_pii = 0

    def run(self, records: Iterator[Record], quarantine: Quarantine) -> Iterator[Record]:
        for record in records:
            found: Counter[str] = Counter()
            for field in text_fields(record):
                record[field], counts = scrub_pii(record[field])
                found.update(counts)
            self.counts.update(found)
            self.records_with_pii += bool(found)
            yield record

    def stats(self) -> dict[str, object]:
        return {"records_with_pii": self.records_with_pii, "matches": dict(sorted(self.counts.items()))}
