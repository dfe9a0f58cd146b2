"""The two record shapes of the data stage, JSONL reading and writing, and the train/val split.

* prose: ``{"id", "text", "source", "license"}``
* instruction pairs: ``{"id", "prompt", "response", "source", "license"}``

Keys that start with ``_`` travel with a record through the cleaning steps (``_raw`` keeps the record as it
was ingested, for the quarantine) and are never written to an output file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

Record = dict[str, Any]
PROSE_FIELDS = ("id", "text", "source", "license")
PAIR_FIELDS = ("id", "prompt", "response", "source", "license")


def is_pair(record: Record) -> bool:
    return "prompt" in record or "response" in record


def text_fields(record: Record) -> tuple[str, ...]:
    """The fields that hold free text: cleaned, scrubbed and tokenized."""
    return ("prompt", "response") if is_pair(record) else ("text",)


def public(record: Record) -> Record:
    """The record without its travelling ``_`` keys, in schema field order."""
    fields = PAIR_FIELDS if is_pair(record) else PROSE_FIELDS
    return {k: record[k] for k in fields if k in record}


def open_text(path: Path, mode: str = "rt") -> IO[Any]:
    """Open plain or ``.gz`` files alike (binary with ``mode="rb"``)."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, mode)
    return open(path, mode) if "b" in mode else open(path, mode, encoding="utf-8")


def read_jsonl(path: Path) -> Iterator[Record]:
    """Records of a JSONL file this package wrote (trusted input: a bad line is a bug, so it raises)."""
    with open_text(path) as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


class JsonlWriter:
    """Append records to a JSONL file, opened on first write; counts what it wrote."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._fh: IO[str] | None = None

    def write(self, record: Record) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", encoding="utf-8")
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        if self._fh is None:  # nothing written: still leave an (empty) file, so readers find one
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        else:
            self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_draw(record_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, id): the split never depends on file order."""
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def val_ids(path: Path, seed: int, fraction: float) -> set[str]:
    """Ids held out for validation: those whose draw is below ``fraction``; at least one if there are two."""
    draws = {r["id"]: split_draw(r["id"], seed) for r in read_jsonl(path)}
    held = {i for i, u in draws.items() if u < fraction}
    if not held and fraction > 0 and len(draws) >= 2:
        held = {min(draws, key=draws.__getitem__)}
    return held
