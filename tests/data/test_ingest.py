"""Ingest: defaults, limits, and every kind of bad line quarantined with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.artifacts import is_complete
from lmforge.config import LMForgeConfig
from lmforge.data.ingest import ingest
from lmforge.data.records import read_jsonl


def test_good_and_bad_lines(cfg: LMForgeConfig, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps({"id": "d1", "text": "Some prose.", "source": "s", "license": "CC0"}).encode(),
        json.dumps({"text": "No id, source or licence."}).encode(),
        json.dumps({"id": 7, "prompt": "Q?", "response": "A."}).encode(),
        b"",  # a blank line is not a record
        b'{"id": "x", "text": "caf\xe9 in latin-1"}',
        b"{not json",
        b"[1, 2, 3]",
        json.dumps({"id": "no-text", "title": "wrong field"}).encode(),
        json.dumps({"id": "half-pair", "prompt": "Q?"}).encode(),
        json.dumps({"id": "num", "text": 42}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")

    result = ingest(cfg, path)

    assert (result.docs, result.pairs, result.quarantined) == (2, 1, 6)
    assert result.reasons == {"undecodable": 1, "invalid_json": 1, "not_an_object": 1, "missing_fields": 2,
                              "wrong_field_type": 1}
    raw = cfg.paths.raw
    assert is_complete(raw)
    docs = list(read_jsonl(raw / "corpus.jsonl"))
    assert docs[1] == {"id": "mixed-2", "text": "No id, source or licence.", "source": "mixed",
                       "license": "unknown"}
    assert list(read_jsonl(raw / "pairs.jsonl"))[0]["id"] == "7"
    bad = list(read_jsonl(raw / "quarantine.jsonl"))
    assert [b["line"] for b in bad] == [5, 6, 7, 8, 9, 10]
    assert bad[0]["reason"] == "undecodable" and "caf" in bad[0]["text"]


def test_limits_keep_the_first_records(cfg: LMForgeConfig, dirty_input: Path) -> None:
    from lmforge.config import load_config

    limited = load_config("tiny", overrides=[f"work_dir={cfg.paths.work_dir}", "data.max_docs=5",
                                             "data.max_pairs=2"])
    result = ingest(limited, dirty_input)
    assert (result.docs, result.pairs) == (5, 2)
    kept = [r["id"] for r in read_jsonl(limited.paths.raw / "corpus.jsonl")]
    assert kept == [f"good-{i}" for i in range(5)]


def test_empty_or_unusable_input_is_a_clear_error(cfg: LMForgeConfig, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        ingest(cfg, empty)
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n{}\n")
    with pytest.raises(ValueError, match="no usable records.*2 bad lines"):
        ingest(cfg, junk)
    assert not cfg.paths.raw.exists()  # nothing half-written


def test_missing_input_file(cfg: LMForgeConfig, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ingest(cfg, tmp_path / "nope.jsonl")


def test_a_file_over_the_caps_is_accounted_line_by_line(cfg: LMForgeConfig, tmp_path: Path) -> None:
    from lmforge.config import load_config
    from lmforge.data.clean import clean

    docs = [json.dumps({"id": f"d{i}", "text": f"Document number {i} is here."}) for i in range(8)]
    pairs = [json.dumps({"id": f"p{i}", "prompt": f"Q{i}?", "response": "A."}) for i in range(3)]
    lines = [docs[0], "", pairs[0], docs[1], "{not json", docs[2], "   ", pairs[1], *docs[3:], pairs[2],
             json.dumps({"id": "e", "text": ""})]
    path = tmp_path / "user.jsonl"
    path.write_text("\n".join(lines) + "\n")
    capped = load_config("tiny", overrides=[f"work_dir={cfg.paths.work_dir}", "data.max_docs=3",
                                            "data.max_pairs=2"])

    result = ingest(capped, path)

    assert result.lines == len(lines) == 15
    assert (result.docs, result.pairs, result.quarantined) == (3, 2, 1)
    assert result.left_out == {"blank_line": 2, "over_max_docs": 6, "over_max_pairs": 1} and result.over_limit == 7
    metrics = json.loads((capped.paths.raw / "metrics.json").read_text())
    assert metrics["left_out_lines"] == [
        {"file": str(path), "reason": "over_max_docs", "first_line": 9, "count": 6, "last_line": 15},
        {"file": str(path), "reason": "over_max_pairs", "first_line": 14, "count": 1, "last_line": 14}]
    acc = clean(capped).lines
    assert acc["read"] == 15 == acc["kept"] + acc["quarantined"] + acc["left_out"]
    assert acc["quarantined_at_ingest"] == {"invalid_json": 1} and acc["left_out"] == 9
