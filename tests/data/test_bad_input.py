"""Bad input never crashes half-way: each bad line is quarantined with a reason, an unusable file is one
clear error, and a failed ingest leaves the previous ``raw/`` as it was."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from dirty import english_doc, write_jsonl

from lmforge.artifacts import is_complete
from lmforge.config import LMForgeConfig
from lmforge.data.ingest import ingest, max_line_bytes
from lmforge.data.records import read_jsonl

ROOT = Path(__file__).resolve().parents[2]


def _good(i: int) -> bytes:
    return json.dumps({"id": f"g{i}", "text": english_doc(random.Random(i))}).encode()


def _ingest_around(cfg: LMForgeConfig, path: Path, bad: bytes) -> dict[str, int]:
    """Ingest good, bad, good; the two good records must get through; return the quarantine reasons."""
    path.write_bytes(b"\n".join([_good(0), bad, _good(1)]) + b"\n")
    result = ingest(cfg, path)
    assert [r["id"] for r in read_jsonl(cfg.paths.raw / "corpus.jsonl")] == ["g0", "g1"]
    return result.reasons


@pytest.mark.parametrize(("bad", "reason"), [
    (_good(9)[:70], "invalid_json"),  # truncated mid-record
    (b"\x00" * 64, "invalid_json"),
    (b"[" * 100_000, "invalid_json"),  # nested past the parser's recursion limit
    (b'{"id": "s", "text": "half an emoji \\ud83d here"}', "lone_surrogate"),
    (b'{"id": "l", "text": "caf\xe9 in latin-1"}', "undecodable"),
    (b'{"id": "w", "text": ["a", "list"]}', "wrong_field_type"),
    (b'{"id": "m", "body": "no text field"}', "missing_fields"),
    (b'"just a string"', "not_an_object"),
    (_good(0), "duplicate_id"),
])
def test_bad_line_is_quarantined_with_its_reason(cfg: LMForgeConfig, tmp_path: Path, bad: bytes,
                                                 reason: str) -> None:
    reasons = _ingest_around(cfg, tmp_path / "in.jsonl", bad)
    assert reasons == {reason: 1}
    quarantined = list(read_jsonl(cfg.paths.raw / "quarantine.jsonl"))
    assert [(q["reason"], q["line"]) for q in quarantined] == [(reason, 2)]


def test_binary_garbage(cfg: LMForgeConfig, tmp_path: Path) -> None:
    noise = random.Random(0).randbytes(20_000)
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(noise)
    with pytest.raises(ValueError, match="no usable records in .*junk.jsonl"):
        ingest(cfg, junk)
    assert not cfg.paths.raw.exists()
    reasons = _ingest_around(cfg, tmp_path / "mixed.jsonl", noise)
    assert set(reasons) <= {"undecodable", "invalid_json"} and sum(reasons.values()) >= 1


def test_a_50_mb_record_is_quarantined_without_being_loaded(cfg: LMForgeConfig, tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as fh:
        fh.write(_good(0) + b"\n" + b'{"id": "huge", "text": "' + b"word " * 10_000_000 + b'"}\n' + _good(1))
    assert big.stat().st_size > 50_000_000 > max_line_bytes(cfg)
    result = ingest(cfg, big)
    assert (result.docs, result.reasons) == (2, {"line_too_long": 1})
    (bad,) = read_jsonl(cfg.paths.raw / "quarantine.jsonl")
    assert bad["line"] == 2 and bad["text"].startswith('{"id": "huge"') and len(bad["text"]) <= 2_000


def test_unreadable_file_is_an_error_and_leaves_raw_untouched(cfg: LMForgeConfig, tmp_path: Path) -> None:
    ingest(cfg, write_jsonl(tmp_path / "first.jsonl", [{"text": english_doc(random.Random(0))}]))
    before = (cfg.paths.raw / "corpus.jsonl").read_bytes()
    payload = gzip.compress(b"\n".join(_good(i) for i in range(200)) + b"\n")
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(payload[: len(payload) // 2])  # cut mid-stream
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n\n")
    for path, message in ((corrupt, "cannot read .*corrupt.jsonl.gz after line"),
                          (blank, "only blank lines")):
        with pytest.raises(ValueError, match=message):
            ingest(cfg, path)
        assert is_complete(cfg.paths.raw) and (cfg.paths.raw / "corpus.jsonl").read_bytes() == before
    assert not [p for p in cfg.paths.raw.parent.iterdir() if ".tmp-" in p.name]


@pytest.mark.integration
@pytest.mark.slow
def test_cli_on_a_users_prose_only_jsonl_prints_the_counts(tmp_path: Path) -> None:
    """The path a user takes: their JSONL, optional fields missing, no pairs; one bad line."""
    rng = random.Random(7)
    records = [{"text": english_doc(rng)} | ({"id": f"u{i}"} if i % 2 else {}) for i in range(12)]
    user = write_jsonl(tmp_path / "mine.jsonl", records)
    with open(user, "a") as fh:
        fh.write('{"text": "cut off\n')
    env = {**os.environ, "LMFORGE_ROOT": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "lmforge.cli", "data", "--input", str(user), "--out",
                          str(tmp_path / "out"), "--set", "data.vocab_size=300"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    counts = json.loads(run.stdout)
    assert counts["ingest"]["docs"] == 12 and counts["ingest"]["reasons"] == {"invalid_json": 1}
    assert counts["clean"]["docs_in"] == 12 and counts["clean"]["docs_kept"] == 12
    assert counts["clean"]["pairs_in"] == 0 and counts["validate"]["skipped"] == ["pairs"]
    lines = counts["clean"]["lines"]  # the summary accounts for every line of the file, the cut-off one too
    assert (lines["read"], lines["kept"], lines["quarantined"], lines["left_out"]) == (13, 12, 1, 0)
    assert counts["validate"]["success"] and counts["pack"]["train_docs"] + counts["pack"]["val_docs"] == 12
    first = next(read_jsonl(tmp_path / "out" / "clean" / "corpus.jsonl"))
    assert first == {"id": "mine-1", "text": records[0]["text"], "source": "mine", "license": "unknown"}
