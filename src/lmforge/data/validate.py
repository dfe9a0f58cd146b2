"""Validate: the data gate. Great Expectations suites over ``clean/`` -> ``validation/``.

    lmforge data --step validate

Two suites, one per file: schema, unique ids, non-null fields, length bounds, duplicate rate, English share
(prose: the share of records the English test, run again on the text as written, calls English; records that
are code with too little prose to judge are not counted) and zero
PII residue (every text re-scanned with ``lmforge.pii.find_pii``, the count kept as a column). A third suite,
``lines``, holds the input's line accounting from ``clean/metrics.json`` (read, kept, quarantined, left out by
reason) and expects every line read to be kept, quarantined or left out; ``result.json`` repeats it.
Writes ``validation/result.json`` (one entry per expectation) and Great Expectations Data Docs under
``validation/data_docs/`` (open ``index.html``). A failed expectation raises ``DataGateError`` after the
outputs are written, so the report is there to read. A kind the input never had (pairs in a user's prose-only
JSONL, per ``clean/metrics.json``) is skipped, not failed; a kind that had input but lost every record fails.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lmforge.artifacts import atomic_dir, require_complete, write_json_atomic
from lmforge.config import DataConfig, LMForgeConfig
from lmforge.data.dedup import content_hash
from lmforge.data.filters import is_english
from lmforge.data.records import PAIR_FIELDS, PROSE_FIELDS, read_jsonl, text_fields
from lmforge.pii import find_pii

DERIVED = ("n_chars", "english", "pii_residue", "content_hash")
LINE_COLUMNS = ("read", "kept", "quarantined", "left_out", "accounted")
PREVIEW_CHARS = 200  # characters of each text field the frame (and the Data Docs examples) keep


class DataGateError(RuntimeError):
    """The clean data failed the gate; the message lists each failed expectation."""


@dataclass(frozen=True)
class GateResult:
    success: bool
    evaluated: int
    failed: tuple[str, ...]
    result_path: str
    data_docs: str
    skipped: tuple[str, ...] = ()  # kinds the input never had (see ``kinds_with_input``)


def validate(cfg: LMForgeConfig) -> GateResult:
    """Run the gate over ``clean/``; write ``validation/``; raise ``DataGateError`` if anything failed."""
    require_complete(cfg.paths.clean, "clean data")
    present = kinds_with_input(cfg.paths.clean)
    frames = {name: load_frame(cfg.paths.clean / f"{name}.jsonl", fields,
                               cfg.data.min_english_score if name == "corpus" else None)
              for name, fields in (("corpus", PROSE_FIELDS), ("pairs", PAIR_FIELDS)) if name in present}
    lines = line_accounting(cfg.paths.clean)
    if lines:
        frames["lines"] = pd.DataFrame([{k: lines[k] for k in LINE_COLUMNS[:-1]}
                                        | {"accounted": lines["kept"] + lines["quarantined"] + lines["left_out"]}])
    manifest: dict[str, Any] = {"stage": "validate", "skipped": sorted({"corpus", "pairs"} - present)}
    out = cfg.paths.validation
    with atomic_dir(out, manifest) as tmp:
        results = run_suites(frames, cfg.data, tmp / "data_docs")
        failed = tuple(r["message"] for r in results if not r["success"])
        summary = {"success": not failed, "evaluated": len(results), "failed": len(failed),
                   "skipped": manifest["skipped"], "lines": lines, "results": results}
        write_json_atomic(tmp / "result.json", summary)
        manifest.update(success=not failed, evaluated=len(results), failed=len(failed))
    gate = GateResult(success=not failed, evaluated=len(results), failed=failed,
                      result_path=str(out / "result.json"), data_docs=str(out / "data_docs" / "index.html"),
                      skipped=tuple(manifest["skipped"]))
    if failed:
        lines = "\n".join(f"  - {message}" for message in failed)
        raise DataGateError(f"data gate failed: {len(failed)} of {len(results)} expectations "
                            f"(report: {gate.data_docs}):\n{lines}")
    return gate


def kinds_with_input(clean_dir: Path) -> set[str]:
    """``corpus`` / ``pairs`` if the clean step received any such record (both if it left no metrics)."""
    metrics_path = clean_dir / "metrics.json"
    if not metrics_path.is_file():
        return {"corpus", "pairs"}
    metrics = json.loads(metrics_path.read_text())
    present = {name for name in ("corpus", "pairs") if metrics.get(name, {}).get("in", 1) > 0}
    if not present:
        raise DataGateError(f"clean data in {clean_dir} received no records at all")
    return present


def line_accounting(clean_dir: Path) -> dict[str, Any]:
    """The ``lines`` block of ``clean/metrics.json`` (empty if the clean step wrote none)."""
    metrics_path = clean_dir / "metrics.json"
    return json.loads(metrics_path.read_text()).get("lines", {}) if metrics_path.is_file() else {}


def load_frame(path: Path, fields: tuple[str, ...], min_english_score: float | None = None) -> pd.DataFrame:
    """The records of ``path`` plus the derived columns the expectations look at (``english`` only with
    ``min_english_score``: the prose suite checks it; pairs are not language-filtered).

    Text columns keep only their first ``PREVIEW_CHARS`` (enough for the null and non-empty checks and the
    report's examples); lengths are checked on ``n_chars``. So the frame stays ~1 KB a row however long the
    documents are: 100 MB of prose makes a ~30 MB frame, not a copy of the corpus.
    """
    rows = []
    for record in read_jsonl(path):
        texts = {f: record.get(f) or "" for f in text_fields(record)}
        rows.append({**{f: _preview(record.get(f)) if f in texts else record.get(f) for f in fields},
                     "n_chars": sum(map(len, texts.values())),
                     "english": None if min_english_score is None else _english(" ".join(texts.values()),
                                                                                min_english_score),
                     "pii_residue": sum(len(find_pii(t)) for t in texts.values()),
                     "content_hash": content_hash(texts).hex()})
    return pd.DataFrame(rows, columns=[*fields, *DERIVED])


def _english(text: str, min_score: float) -> float | None:
    """1.0 or 0.0 as the English test judges ``text``; None (not counted by the gate) for code-only text."""
    verdict = is_english(text, min_score)
    return None if verdict is None else float(verdict)


def _preview(value: object) -> object:
    return value[:PREVIEW_CHARS] if isinstance(value, str) else value


def expectations(name: str, cfg: DataConfig) -> list[Any]:
    """The suite for ``corpus``, ``pairs`` or ``lines``."""
    import great_expectations as gx

    e = gx.expectations
    if name == "lines":  # one row: every line read was kept, quarantined or left out
        return [e.ExpectTableColumnsToMatchSet(column_set=list(LINE_COLUMNS), exact_match=True),
                e.ExpectColumnPairValuesToBeEqual(column_A="read", column_B="accounted")]
    fields = PROSE_FIELDS if name == "corpus" else PAIR_FIELDS
    suite: list[Any] = [
        e.ExpectTableRowCountToBeBetween(min_value=1),
        e.ExpectTableColumnsToMatchSet(column_set=[*fields, *DERIVED], exact_match=True),
        e.ExpectColumnValuesToBeUnique(column="id"),
        *(e.ExpectColumnValuesToNotBeNull(column=f) for f in fields),
        e.ExpectColumnProportionOfUniqueValuesToBeBetween(column="content_hash",
                                                          min_value=1.0 - cfg.max_duplicate_rate),
        e.ExpectColumnValuesToBeInSet(column="pii_residue", value_set=[0]),
    ]
    if name == "corpus":
        suite += [
            e.ExpectColumnValuesToBeBetween(column="n_chars", min_value=cfg.min_chars, max_value=cfg.max_chars),
            e.ExpectColumnValuesToBeInSet(column="english", value_set=[1.0], mostly=cfg.min_english_share),
        ]
    else:
        suite += [e.ExpectColumnValueLengthsToBeBetween(column=f, min_value=1)
                  for f in ("prompt", "response")]
    return suite


def run_suites(frames: dict[str, pd.DataFrame], cfg: DataConfig, docs_dir: Path) -> list[dict[str, Any]]:
    """Validate each frame with its suite through a Checkpoint, then build Data Docs once in ``docs_dir``.

    Each frame needs its own Checkpoint (a run passes one ``dataframe`` to all of its definitions), and an
    ``UpdateDataDocsAction`` on each would rebuild the whole site, every page and template, once per suite;
    so the Checkpoints only validate and store their results, and one ``build_data_docs`` renders them all.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    page_view = {"module_name": "lmforge.data.data_docs", "class_name": "SharedJinjaPageView"}
    context.update_data_docs_site("local_site", {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        # GX's views, compiling each template once per process rather than once per section (data_docs.py)
        "site_section_builders": {section: {"view": page_view}
                                  for section in ("expectations", "validations", "profiling")},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                               "view": {**page_view, "class_name": "SharedJinjaIndexPageView"}},
    })
    source = context.data_sources.add_pandas("lmforge_clean")
    results: list[dict[str, Any]] = []
    for name, frame in frames.items():
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("all")
        # The suite goes to the store whole: adding to a stored suite re-serialises it on every expectation.
        wanted = expectations(name, cfg)
        suite = context.suites.add(gx.ExpectationSuite(name=f"clean_{name}", expectations=wanted))
        if len(suite.expectations) != len(wanted):  # the constructor logs and drops a bad one; never drop one
            raise RuntimeError(f"suite clean_{name} kept {len(suite.expectations)} of {len(wanted)} expectations")
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch,
                                                                                 suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"data_gate_{name}", validation_definitions=[definition], actions=[],
            result_format={"result_format": "SUMMARY"}))
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        for suite_result in run.run_results.values():
            results += [_summarise(name, r) for r in suite_result.results]
    context.build_data_docs(site_names=["local_site"])
    return results


def _summarise(name: str, result: Any) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    observed = result.result or {}
    entry = {"suite": name, "expectation": config.type, "kwargs": kwargs, "success": bool(result.success),
             "observed_value": observed.get("observed_value"),
             "unexpected_count": observed.get("unexpected_count"),
             "element_count": observed.get("element_count"),
             "examples": list(observed.get("partial_unexpected_list") or [])[:5]}
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    if entry["unexpected_count"] is not None:
        detail = f"{entry['unexpected_count']} of {entry['element_count']} rows unexpected"
        detail += f", e.g. {[str(x)[:60] for x in entry['examples']]}" if entry["examples"] else ""
    else:
        detail = f"observed {entry['observed_value']}"
    if result.exception_info and result.exception_info.get("raised_exception"):
        detail = f"raised {result.exception_info.get('exception_message')}"
    entry["message"] = f"{name}: {config.type}({args}): {detail}"
    return entry
