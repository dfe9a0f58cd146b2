"""Ingest: read the shipped sample (or a user's JSONL) into ``raw/{corpus,pairs}.jsonl``.

    lmforge ingest                       # data/sample/{corpus,pairs}.jsonl.gz -> runs/<profile>/raw/
    lmforge ingest --input my.jsonl      # a file (or a folder of *.jsonl[.gz]) of prose and/or pairs

A line that cannot be read goes to ``raw/quarantine.jsonl`` with its reason, file and line number: never a
crash, never dropped silently. Reasons: ``undecodable`` (not UTF-8), ``lone_surrogate`` (a ``\\udXXX`` escape
that is half a character: no UTF-8 file can hold it), ``invalid_json`` (truncated, garbage, nested too deep),
``not_an_object``, ``missing_fields``, ``wrong_field_type``, ``duplicate_id`` (an id already used by an
earlier record of the same kind: the gate requires unique ids), and ``line_too_long`` (a line longer than
``max_line_bytes(cfg)``, skipped in chunks without ever being held whole, so a binary file without newlines
cannot exhaust memory). A file that cannot be read at all (a corrupt ``.gz``) is a ``ValueError`` naming it,
and ``raw/`` is then left as it was.
Missing optional fields get defaults (``id`` from file and line, ``source`` from the file name, ``license``
"unknown"). ``data.max_docs`` / ``data.max_pairs`` keep the first N usable records in file order.

Every line read is accounted for in ``raw/metrics.json``: ``lines == docs + pairs + quarantined + left_out``.
Left out (not an error, nothing to look at) are blank lines (``blank_line``) and usable records past a cap
(``over_max_docs``, ``over_max_pairs``); the runs of lines a cap left out are listed with file and line numbers,
so a user can see exactly which of their records did not enter. The clean step carries these counts on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lmforge.artifacts import atomic_dir, sha256_file, write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.data.records import JsonlWriter, Record, open_text, public

SAMPLE_FILES = ("corpus.jsonl.gz", "pairs.jsonl.gz")
_MAX_QUARANTINED_LINE = 2_000  # characters of a bad line kept for a human to look at
_SURROGATE = re.compile("[\ud800-\udfff]")
_CHUNK = 1 << 20  # bytes read at a time while skipping an over-long line
BLANK = "blank_line"
log = logging.getLogger("lmforge.data.ingest")


def max_line_bytes(cfg: LMForgeConfig) -> int:
    """Longest line ingest parses: 16 bytes per allowed character (JSON escapes and spacing), at least 1 MiB."""
    return max(16 * cfg.data.max_chars, 1 << 20)


@dataclass(frozen=True)
class IngestResult:
    docs: int
    pairs: int
    quarantined: int
    over_limit: int  # usable records past data.max_docs / data.max_pairs (also in left_out)
    reasons: dict[str, int] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    lines: int = 0  # every line read: docs + pairs + quarantined + sum(left_out)
    left_out: dict[str, int] = field(default_factory=dict)


def ingest(cfg: LMForgeConfig, input_path: Path | None = None) -> IngestResult:
    """Read ``input_path`` (default: the shipped sample) and write ``raw/``; raise if nothing is usable."""
    files = _input_files(cfg, input_path)
    limits = {"docs": cfg.data.max_docs, "pairs": cfg.data.max_pairs}
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    left_out = LeftOut()
    seen_ids: dict[str, set[bytes]] = {"docs": set(), "pairs": set()}  # 8-byte digests: ~60 B per record
    manifest = {"stage": "ingest", "inputs": {str(f): sha256_file(f) for f in files},
                "config": cfg.data.model_dump(mode="json")}
    with atomic_dir(cfg.paths.raw, manifest) as tmp, JsonlWriter(tmp / "corpus.jsonl") as docs, \
            JsonlWriter(tmp / "pairs.jsonl") as pairs, JsonlWriter(tmp / "quarantine.jsonl") as quarantine:
        for path in files:
            for record, reason, lineno, line in _parse_lines(path, max_line_bytes(cfg)):
                counts["lines"] += 1
                if reason == BLANK:
                    left_out.add(BLANK, path, lineno)
                    continue
                kind = "pairs" if "prompt" in record else "docs"
                if not reason:
                    digest = hashlib.blake2b(record["id"].encode(), digest_size=8).digest()
                    reason = "duplicate_id" if digest in seen_ids[kind] else None
                    seen_ids[kind].add(digest)
                if reason:
                    reasons[reason] += 1
                    quarantine.write({"reason": reason, "file": str(path), "line": lineno,
                                      "text": line[:_MAX_QUARANTINED_LINE]})
                    continue
                limit = limits[kind]
                if limit is not None and counts[kind] >= limit:
                    left_out.add(f"over_max_{kind}", path, lineno)
                    continue
                (pairs if kind == "pairs" else docs).write(record)
                counts[kind] += 1
        if counts["docs"] + counts["pairs"] == 0:
            if not reasons:
                raise ValueError(f"no records in {', '.join(map(str, files))}: only blank lines")
            raise ValueError(f"no usable records in {', '.join(map(str, files))}: {sum(reasons.values())} "
                             f"bad lines (first reason: {next(iter(reasons))}); prose needs 'text', "
                             "pairs need 'prompt' and 'response'")
        accounting = {"lines": counts["lines"], "docs": counts["docs"], "pairs": counts["pairs"],
                      "quarantined": sum(reasons.values()), "left_out": left_out.total,
                      "reasons": dict(sorted(reasons.items())),
                      "left_out_reasons": dict(sorted(left_out.counts.items())),
                      "left_out_lines": left_out.runs, "limits": {f"max_{k}": v for k, v in limits.items()}}
        check_lines_accounted(accounting)
        write_json_atomic(tmp / "metrics.json", accounting)
        manifest.update({k: accounting[k] for k in ("lines", "docs", "pairs", "quarantined", "left_out")})
    over = {k: v for k, v in left_out.counts.items() if k != BLANK}
    if over:
        log.warning("ingest left out %s usable records past the profile's caps (%s); --set data.max_docs=null "
                    "data.max_pairs=null reads them all", sum(over.values()), over)
    return IngestResult(docs=counts["docs"], pairs=counts["pairs"], quarantined=sum(reasons.values()),
                        over_limit=sum(over.values()), reasons=dict(reasons),
                        inputs=tuple(str(f) for f in files), lines=counts["lines"],
                        left_out=dict(sorted(left_out.counts.items())))


def check_lines_accounted(counts: dict[str, int]) -> None:
    """``lines == docs + pairs + quarantined + left_out`` (raised, so ``-O`` keeps it)."""
    if counts["lines"] != counts["docs"] + counts["pairs"] + counts["quarantined"] + counts["left_out"]:
        raise RuntimeError(f"ingest: lines lost or double-counted: {counts}")


class LeftOut:
    """Lines left out of ``raw/`` (not quarantined): counts per reason, and for each file and cap the range of
    lines whose records of that kind were left out (``[{"file", "reason", "first_line", "last_line", "count"}]``:
    once a cap is reached every later record of its kind is left out, so one range per file says it all)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._runs: dict[tuple[str, str], dict[str, object]] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def runs(self) -> list[dict[str, object]]:
        return list(self._runs.values())

    def add(self, reason: str, path: Path, lineno: int) -> None:
        self.counts[reason] += 1
        if reason == BLANK:
            return
        run = self._runs.setdefault((str(path), reason), {"file": str(path), "reason": reason,
                                                           "first_line": lineno, "count": 0})
        run["last_line"], run["count"] = lineno, int(run["count"]) + 1


def _input_files(cfg: LMForgeConfig, input_path: Path | None) -> list[Path]:
    if input_path is None:
        sample = cfg.resolve(cfg.data.sample_dir)
        files = [sample / name for name in SAMPLE_FILES if (sample / name).is_file()]
        if not files:
            raise FileNotFoundError(f"no sample in {sample} (expected {' and '.join(SAMPLE_FILES)}): "
                                    "run `lmforge ingest --build-sample` or pass --input")
        return files
    path = Path(input_path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")))
        if not files:
            raise FileNotFoundError(f"no *.jsonl or *.jsonl.gz files in {path}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"input {path} is empty")
    return [path]


def _parse_lines(path: Path, max_bytes: int) -> Iterator[tuple[Record, str | None, int, str]]:
    """(record, reason-or-None, line number, line text) for every line of ``path`` (``BLANK`` for a blank one)."""
    stem = path.name.split(".")[0]
    lineno = 0
    try:
        with open_text(path, "rb") as fh:
            while raw := fh.readline(max_bytes + 1):
                lineno += 1
                if len(raw) > max_bytes and not raw.endswith(b"\n"):
                    head = raw[:_MAX_QUARANTINED_LINE].decode("utf-8", errors="replace")
                    while (rest := fh.readline(_CHUNK)) and not rest.endswith(b"\n"):
                        pass  # skip the rest of the line without holding it
                    yield {}, "line_too_long", lineno, head
                    continue
                yield _parse_line(raw, stem, lineno)
    except (OSError, EOFError, zlib.error) as err:  # a corrupt or truncated .gz: nothing more can be read
        raise ValueError(f"cannot read {path} after line {lineno}: {type(err).__name__}: {err}") from err


def _parse_line(raw: bytes, stem: str, lineno: int) -> tuple[Record, str | None, int, str]:
    """As ``_parse_lines`` yields it."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {}, "undecodable", lineno, raw.decode("utf-8", errors="replace")
    if not line.strip():
        return {}, BLANK, lineno, ""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError):  # RecursionError: arrays or objects nested thousands deep
        return {}, "invalid_json", lineno, line
    record, reason = _to_record(obj, stem, lineno)
    if reason is None and any(_SURROGATE.search(v) for v in record.values()):
        return {}, "lone_surrogate", lineno, line
    return record, reason, lineno, line


def _to_record(obj: object, stem: str, lineno: int) -> tuple[Record, str | None]:
    if not isinstance(obj, dict):
        return {}, "not_an_object"
    fields = ("prompt", "response") if ("prompt" in obj or "response" in obj) else ("text",)
    if any(f not in obj or obj[f] is None for f in fields):
        return {}, "missing_fields"
    if not all(isinstance(obj[f], str) for f in fields):
        return {}, "wrong_field_type"
    record: Record = {
        "id": str(obj["id"]) if obj.get("id") not in (None, "") else f"{stem}-{lineno}",
        **{f: obj[f] for f in fields},
        "source": str(obj.get("source") or stem),
        "license": str(obj.get("license") or "unknown"),
    }
    return public(record), None
