"""The data stage on a user's own file, two checks that ``bench_data.py`` runs and prints:

* ``bench_language``: the quality filters (English test included) on the labelled set of ``lang_cases.py``:
  clean English quarantined by mistake per kind (prose, technical text with code, dialogue), and non-English
  records caught per language;
* ``bench_accounting``: ``ingest`` + ``clean`` + ``validate`` with the profile's caps on a user file larger
  than those caps, with blank, non-JSON, empty and duplicate-id lines: every line read must be kept,
  quarantined or left out, in ``clean/metrics.json``, the gate's ``result.json`` and the run's result.

    python benchmarks/bench_user_data.py     # both alone, ~1-2 min
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from lang_cases import language_cases

from lmforge.config import LMForgeConfig, load_config
from lmforge.data.filters import quality_filters
from lmforge.data.normalize import normalize_text
from lmforge.data.records import Record

Row = tuple[str, str, str, str]  # metric, measured, target, verdict
LENGTH_RULES = ("too_short", "too_long")  # a record the normaliser shortened below min_chars: not a judgement


def bench_language(cfg: LMForgeConfig, per_group: int = 300, seed: int = 0) -> tuple[list[Row], list[str]]:
    """Rows for the main table, and a per-language table (lines of text)."""
    cases = language_cases(per_group=per_group, seed=seed)
    filters = quality_filters(cfg.data)
    verdicts: dict[str, Counter[str]] = defaultdict(Counter)
    chars = 0
    cpu = time.process_time()
    for case in cases:
        text = normalize_text(case.text)
        chars += len(text.encode())
        reason = next((r for f in filters for keep, r in [f.filter({"text": text})] if not keep), "kept")
        verdicts[case.group][reason] += 1
    cpu = time.process_time() - cpu
    rows: list[Row] = []
    for group in ("en prose", "en technical+code", "en dialogue"):
        counts = verdicts[group]
        judged = sum(n for r, n in counts.items() if r not in LENGTH_RULES)
        wrong = {r: n for r, n in counts.items() if r not in ("kept", *LENGTH_RULES)}
        share = sum(wrong.values()) / max(judged, 1)
        rows.append((f"English quarantined by mistake: {group[3:]} ({judged})",
                     f"{share:.2%} {_rules(wrong)}", "<= 2%", "PASS" if share <= 0.02 else "MISS"))
    table, worst = _language_table(verdicts)
    rows.append(("non-English caught, worst language", worst[0], ">= 98% each", "PASS" if worst[1] else "MISS"))
    rows.append(("quality filters on the labelled set", f"{chars / 1e6 / cpu:.2f} MB/s per core (CPU s, "
                 f"{len(cases)} records)", "", ""))
    return rows, table


def _language_table(verdicts: dict[str, Counter[str]]) -> tuple[list[str], tuple[str, bool]]:
    """One line per language: records of each kind, caught as not_english, caught by any rule."""
    langs = sorted({g.split()[0] for g in verdicts} - {"en"})
    lines = ["| language | records (man sections + messages) | caught as not_english | caught by any rule "
             "| target | |", "|---|---|---|---|---|---|"]
    worst = (2.0, "")
    for lang in langs:
        counts = verdicts.get(f"{lang} man", Counter()) + verdicts.get(f"{lang} messages", Counter())
        n_man = sum(verdicts.get(f"{lang} man", Counter()).values())
        total = sum(counts.values())
        english_rule = counts["not_english"] / total
        caught = (total - counts["kept"]) / total
        worst = min(worst, (caught, lang))
        lines.append(f"| {lang} | {total} ({n_man} + {total - n_man}) | {english_rule:.1%} | {caught:.1%} | "
                     f">= 98% | {'PASS' if caught >= 0.98 else 'MISS'} |")
    return lines, (f"{worst[0]:.1%} ({worst[1]}; {len(langs)} languages)", worst[0] >= 0.98)


def _rules(counts: dict[str, int]) -> str:
    return "(" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")" if counts else ""


def bench_accounting(records: list[Record], profile: str = "tiny") -> list[Row]:
    """A user file of ``records`` (more than the profile's caps) plus planted bad lines, through ingest,
    clean and validate with the profile's caps: every line accounted for, in every place that reports it."""
    from lmforge.data.stage import clean, ingest

    bad = ["", "   ", "{not json", "[1, 2]", json.dumps({"id": "e", "text": ""}),
           json.dumps({"title": "no text"}), json.dumps({"id": "dup", "text": "x" * 300}),
           json.dumps({"id": "dup", "text": "y" * 300})]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    for i, line in enumerate(bad):  # spread through the file, before and after the caps
        lines.insert((i + 1) * len(lines) // (len(bad) + 1), line)
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-user-") as tmp:
        path = Path(tmp) / "user.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cfg = load_config(profile, overrides=[f"work_dir={tmp}/work"])
        n_docs = sum("text" in r for r in records)
        if cfg.data.max_docs is None or n_docs <= cfg.data.max_docs:  # a small run: caps below its size
            cfg = load_config(profile, overrides=[f"work_dir={tmp}/work", f"data.max_docs={n_docs // 2}",
                                                  f"data.max_pairs={(len(records) - n_docs) // 2}"])
        ingested = ingest(cfg, path)
        cleaned = clean(cfg)
        gate_lines = _gate_lines(cfg)
    acc = cleaned.lines
    total = acc["kept"] + acc["quarantined"] + acc["left_out"]
    ok = len(lines) == acc["read"] == total == gate_lines.get("read") == ingested.lines
    caps = f"max_docs={cfg.data.max_docs}, max_pairs={cfg.data.max_pairs}"
    return [(f"user file over the caps ({len(lines)} lines; {caps})",
             f"read {acc['read']} = kept {acc['kept']} + quarantined {acc['quarantined']} + left out "
             f"{acc['left_out']} {_rules(acc['left_out_reasons'])}", "every line", "PASS" if ok else "MISS")]


def _gate_lines(cfg: LMForgeConfig) -> dict:
    from lmforge.data.stage import DataGateError, validate

    try:
        validate(cfg)
    except DataGateError:
        pass  # the accounting is in result.json either way
    return json.loads((cfg.paths.validation / "result.json").read_text()).get("lines", {})


if __name__ == "__main__":
    import gzip
    import sys

    from bench_data import SAMPLE, _print_table

    with tempfile.TemporaryDirectory() as work:
        config = load_config("tiny", overrides=[f"work_dir={work}"])
        language_rows, language_table = bench_language(config, seed=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    sample = [json.loads(line) for name in ("corpus", "pairs")
              for line in gzip.open(SAMPLE / f"{name}.jsonl.gz", "rt", encoding="utf-8")]
    _print_table(language_rows + bench_accounting(sample), "lmforge data on a user's own file")
    print("\n".join(["", *language_table]))
