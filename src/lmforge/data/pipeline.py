"""The cleaning pipeline's building blocks, datatrove style: small steps over a stream of records.

A step takes an iterator of records and yields records, so memory stays flat however large the corpus.
A ``Filter`` answers ``(keep, reason)`` per record; a dropped record goes to the ``Quarantine`` under its
reason (the rule name), together with the record as it was ingested. Every step counts what it did.

    quarantine = Quarantine(out / "quarantine")
    stream = run_steps(records, [Normalize(), MinLength(200), ExactDedup()], quarantine)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from lmforge.data.records import JsonlWriter, Record, public


class Quarantine:
    """Writes each dropped record to ``<dir>/<rule>.jsonl`` as ``{"rule", "record"}`` and counts rules."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.counts: Counter[str] = Counter()
        self._writers: dict[str, JsonlWriter] = {}

    def add(self, rule: str, record: Record) -> None:
        if rule not in self._writers:
            self._writers[rule] = JsonlWriter(self.directory / f"{rule}.jsonl")
        original = record.get("_raw", record)
        self._writers[rule].write({"rule": rule, "record": public(original)})
        self.counts[rule] += 1

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self.directory.mkdir(parents=True, exist_ok=True)


class Step:
    """One stage of the stream. Subclasses override ``run`` (mappers) or ``filter`` (via ``Filter``)."""

    name = "step"

    def run(self, records: Iterator[Record], quarantine: Quarantine) -> Iterator[Record]:
        raise NotImplementedError

    def stats(self) -> dict[str, object]:
        """What this step did, for ``metrics.json``."""
        return {}


class Filter(Step):
    """A step that keeps or drops each record; ``filter`` returns ``(keep, reason)``."""

    def __init__(self) -> None:
        self.seen = 0
        self.dropped = 0

    def filter(self, record: Record) -> tuple[bool, str]:
        raise NotImplementedError

    def run(self, records: Iterator[Record], quarantine: Quarantine) -> Iterator[Record]:
        for record in records:
            self.seen += 1
            keep, reason = self.filter(record)
            if keep:
                yield record
            else:
                self.dropped += 1
                quarantine.add(reason, record)

    def stats(self) -> dict[str, object]:
        return {"seen": self.seen, "dropped": self.dropped}


def run_steps(records: Iterable[Record], steps: list[Step], quarantine: Quarantine) -> Iterator[Record]:
    """Chain the steps lazily: nothing is read until the result is iterated."""
    stream: Iterator[Record] = iter(records)
    for step in steps:
        stream = step.run(stream, quarantine)
    return stream
