"""The Great Expectations data gate: passes on cleaned data, fails readably on planted defects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.artifacts import atomic_dir
from lmforge.config import LMForgeConfig
from lmforge.data.clean import clean
from lmforge.data.ingest import ingest
from lmforge.data.records import read_jsonl
from lmforge.data.validate import DataGateError, validate

pytestmark = pytest.mark.integration


def test_gate_passes_on_clean_data_and_fails_on_planted_defects(cfg: LMForgeConfig,
                                                                  dirty_input: Path) -> None:
    ingest(cfg, dirty_input)
    clean(cfg)
    gate = validate(cfg)
    assert gate.success and gate.evaluated >= 15 and gate.failed == ()
    assert Path(gate.data_docs).is_file()
    summary = json.loads(Path(gate.result_path).read_text())
    assert summary["success"] and {r["suite"] for r in summary["results"]} == {"corpus", "pairs", "lines"}
    assert summary["lines"]["read"] == 60 == summary["lines"]["kept"] + summary["lines"]["quarantined"]

    # Plant a duplicate id and a PII residue (an e-mail the scrubber never saw) into the clean corpus.
    docs = list(read_jsonl(cfg.paths.clean / "corpus.jsonl"))
    docs[1]["id"] = docs[0]["id"]
    docs[2]["text"] += " Contact leak@example.com."
    pairs = (cfg.paths.clean / "pairs.jsonl").read_text()
    with atomic_dir(cfg.paths.clean) as tmp:
        (tmp / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        (tmp / "pairs.jsonl").write_text(pairs)

    with pytest.raises(DataGateError) as err:
        validate(cfg)
    message = str(err.value)
    assert "2 of" in message.splitlines()[0]
    assert "corpus: expect_column_values_to_be_unique(column=id): 2 of" in message
    assert "corpus: expect_column_values_to_be_in_set(column=pii_residue, value_set=[0]): 1 of" in message
    result = json.loads((cfg.paths.validation / "result.json").read_text())
    assert result["success"] is False and result["failed"] == 2  # the report is written before raising


def test_gate_fails_when_non_english_prose_reaches_clean(cfg: LMForgeConfig, dirty_input: Path) -> None:
    """min_english_share checks the text as written: prose that bypassed the English filter fails the gate."""
    ingest(cfg, dirty_input)
    clean(cfg)
    docs = list(read_jsonl(cfg.paths.clean / "corpus.jsonl"))
    german = ("Der schnelle braune Fuchs springt über den faulen Hund, während die Katze im Garten schläft und "
              "der Vogel auf dem Dach singt. ")
    for doc in docs[:3]:
        doc["text"] = german * 3 + doc["id"]
    files = {name: (cfg.paths.clean / name).read_text() for name in ("pairs.jsonl", "metrics.json")}
    with atomic_dir(cfg.paths.clean) as tmp:
        (tmp / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        for name, text in files.items():
            (tmp / name).write_text(text)

    with pytest.raises(DataGateError) as err:
        validate(cfg)
    assert "1 of" in str(err.value).splitlines()[0]
    assert f"corpus: expect_column_values_to_be_in_set(column=english, mostly=0.95, value_set=[1.0]): 3 of " \
           f"{len(docs)} rows unexpected" in str(err.value)
