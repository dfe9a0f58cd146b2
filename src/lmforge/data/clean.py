"""Clean: ``raw/`` -> ``clean/{corpus,pairs}.jsonl`` + ``clean/quarantine/<rule>.jsonl`` + ``metrics.json``.

The counts are also written to ``reports/clean.json``, which ``dvc.yaml`` declares as the stage's metrics.

    lmforge data --step clean

Prose: normalise -> non-empty -> quality filters -> PII scrub -> exact dedup -> MinHash near-dedup.
Pairs: normalise -> non-empty prompt and response -> PII scrub -> exact dedup.
PII is scrubbed before dedup so that two records differing only in an e-mail address count as copies.
Every record that goes in comes out once, kept or quarantined under one rule; the stage asserts it. With the
ingest step's counts (``raw/metrics.json``) the metrics also account for every line of the input:
``lines.read == lines.kept + lines.quarantined + lines.left_out`` (quarantined at ingest or here; left out:
blank lines and records past ``data.max_docs`` / ``data.max_pairs``), also asserted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.artifacts import atomic_dir, require_complete, write_json_atomic
from lmforge.config import DataConfig, LMForgeConfig
from lmforge.data.dedup import ExactDedup, MinHashDedup
from lmforge.data.filters import NonEmpty, quality_filters
from lmforge.data.normalize import Normalize, ScrubPii
from lmforge.data.pipeline import Quarantine, Step, run_steps
from lmforge.data.records import JsonlWriter, Record, public, read_jsonl


@dataclass(frozen=True)
class CleanResult:
    docs_in: int
    docs_kept: int
    pairs_in: int
    pairs_kept: int
    quarantined: int
    rules: dict[str, int] = field(default_factory=dict)
    pii: dict[str, int] = field(default_factory=dict)
    lines: dict[str, Any] = field(default_factory=dict)  # every input line: read = kept + quarantined + left_out


def prose_steps(cfg: DataConfig) -> list[Step]:
    return [Normalize(), NonEmpty(), *quality_filters(cfg), ScrubPii(), ExactDedup(),
            MinHashDedup(cfg.minhash_perm, cfg.minhash_bands, cfg.minhash_threshold, cfg.shingle_size)]


def pair_steps(cfg: DataConfig) -> list[Step]:
    return [Normalize(), NonEmpty(), ScrubPii(), ExactDedup()]


def clean(cfg: LMForgeConfig) -> CleanResult:
    """Run both pipelines over ``raw/`` and write ``clean/``; raise if a record went missing."""
    raw = cfg.paths.raw
    require_complete(raw, "raw data (ingest output)")
    manifest: dict[str, Any] = {"stage": "clean", "config": cfg.data.model_dump(mode="json")}
    with atomic_dir(cfg.paths.clean, manifest) as tmp:
        quarantine = Quarantine(tmp / "quarantine")
        corpus = _run(raw / "corpus.jsonl", tmp / "corpus.jsonl", prose_steps(cfg.data), quarantine)
        pairs = _run(raw / "pairs.jsonl", tmp / "pairs.jsonl", pair_steps(cfg.data), quarantine)
        quarantine.close()
        metrics = _metrics(corpus, pairs, quarantine)
        metrics["lines"] = line_accounting(raw, metrics)
        write_json_atomic(tmp / "metrics.json", metrics)
        manifest.update({k: metrics[k] for k in ("in", "kept", "quarantined", "lines")})
    # The same counts outside the tracked output, where DVC can read them as metrics.
    write_json_atomic(cfg.paths.reports / "clean.json", metrics)
    return CleanResult(docs_in=corpus["in"], docs_kept=corpus["kept"], pairs_in=pairs["in"],
                       pairs_kept=pairs["kept"], quarantined=metrics["quarantined"], rules=metrics["rules"],
                       pii=metrics["pii"], lines=metrics["lines"])


def _run(src: Path, dst: Path, steps: list[Step], quarantine: Quarantine) -> dict[str, Any]:
    """Stream ``src`` through ``steps`` into ``dst``; return in/kept/quarantined, per-rule, per-step."""
    before = Counter(quarantine.counts)
    n_in = 0

    def counted() -> Iterator[Record]:
        nonlocal n_in
        for record in read_jsonl(src):
            n_in += 1
            yield record

    with JsonlWriter(dst) as out:
        for record in run_steps(counted(), steps, quarantine):
            out.write(public(record))
    rules = dict(sorted((quarantine.counts - before).items()))
    result = {"in": n_in, "kept": out.count, "quarantined": sum(rules.values()), "rules": rules,
              "steps": {step.name: step.stats() for step in steps}}
    check_accounted(result, src.name)
    return result


def _metrics(corpus: dict[str, Any], pairs: dict[str, Any], quarantine: Quarantine) -> dict[str, Any]:
    pii: Counter[str] = Counter()
    for part in (corpus, pairs):
        pii.update(part["steps"].get("scrub_pii", {}).get("matches", {}))  # absent if the step is off
    total = {k: corpus[k] + pairs[k] for k in ("in", "kept", "quarantined")}
    check_accounted(total, "clean")
    return {**total, "rules": dict(sorted(quarantine.counts.items())), "pii": dict(sorted(pii.items())),
            "corpus": corpus, "pairs": pairs, "minhash": corpus["steps"]["minhash_dedup"]}


def line_accounting(raw: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Every line of the input, from ingest's counts and this step's: read == kept + quarantined + left out."""
    ingest_path = raw / "metrics.json"
    if ingest_path.is_file():
        ingested = json.loads(ingest_path.read_text())
    else:  # raw/ from before ingest counted lines: what it quarantined is all that is known
        bad = sum(1 for _ in read_jsonl(raw / "quarantine.jsonl")) if (raw / "quarantine.jsonl").is_file() else 0
        ingested = {"lines": metrics["in"] + bad, "quarantined": bad, "reasons": {}, "left_out": 0,
                    "left_out_reasons": {}, "left_out_lines": []}
    if ingested["lines"] - ingested["quarantined"] - ingested["left_out"] != metrics["in"]:
        raise RuntimeError(f"clean read {metrics['in']} records but ingest wrote "
                           f"{ingested['lines'] - ingested['quarantined'] - ingested['left_out']}: raw/ changed?")
    lines = {"read": ingested["lines"], "kept": metrics["kept"],
             "quarantined": ingested["quarantined"] + metrics["quarantined"], "left_out": ingested["left_out"],
             "quarantined_at_ingest": ingested["reasons"], "quarantined_at_clean": metrics["rules"],
             "left_out_reasons": ingested["left_out_reasons"], "left_out_lines": ingested["left_out_lines"]}
    if lines["read"] != lines["kept"] + lines["quarantined"] + lines["left_out"]:
        raise RuntimeError(f"input lines lost or double-counted: {lines}")
    return lines


def check_accounted(counts: dict[str, Any], what: str) -> None:
    """The invariant of every cleaning run: in == kept + quarantined (raised, so ``-O`` keeps it)."""
    if counts["in"] != counts["kept"] + counts["quarantined"]:
        raise RuntimeError(f"{what}: records lost or double-counted: in={counts['in']} kept={counts['kept']} "
                           f"quarantined={counts['quarantined']}")
