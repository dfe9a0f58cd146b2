"""Steps that rewrite text without dropping records: Unicode/whitespace normalisation and PII scrubbing."""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections import Counter
from collections.abc import Iterator

from lmforge.data.pipeline import Quarantine, Step
from lmforge.data.records import Record, text_fields
from lmforge.pii import scrub_pii

_SPACES = re.compile(r"[^\S\n]+")  # whitespace other than newline
_BLANK_LINES = re.compile(r"\n{3,}")
_UNINDENTED_LINE = re.compile(r"^[^ \n]", re.MULTILINE)


def normalize_text(text: str) -> str:
    """NFKC; drop control and format characters (zero-width, BOM) but keep newlines; tidy whitespace.

    Runs of spaces inside a line collapse to one, but a line's indentation stays (tabs become 4 spaces):
    code blocks in documentation mean something by it. Indentation common to all lines is removed.

    Most text needs only some of this, so each part first asks a C-speed question (``isprintable``, ``in``)
    and skips the per-line work when the answer is no; the result is the same either way.
    """
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _drop_controls(text).expandtabs(4)
    if "  " in text or " \n" in text or text.endswith(" ") or not text.replace("\n", "").isprintable():
        # Double or trailing spaces, or whitespace other than " " and "\n" (every other kind is unprintable).
        text = "\n".join(map(_tidy_line, text.split("\n")))
    if not _UNINDENTED_LINE.search(text):  # every line indented (or blank): remove the common indentation
        text = textwrap.dedent(text)
    return _BLANK_LINES.sub("\n\n", text).strip("\n")


def _drop_controls(text: str) -> str:
    """``text`` without control (Cc) and format (Cf) characters, newline and tab excepted."""
    if text.replace("\n", "").replace("\t", "").isprintable():  # the usual case: none of them at all
        return text
    doomed = [c for c in set(text) if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf")]
    return text.translate(dict.fromkeys(map(ord, doomed))) if doomed else text


def _tidy_line(line: str) -> str:
    """Keep the indentation, collapse every other run of whitespace to one space, drop it at the end."""
    body = line.lstrip(" ")
    tidy = _SPACES.sub(" ", body).rstrip()
    return line[:len(line) - len(body)] + tidy if tidy else ""


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
