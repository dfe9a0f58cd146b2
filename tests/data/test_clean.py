"""Cleaning: each step on its own, then the whole clean stage on the dirty 50-record corpus."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from datasketch.hashfunc import sha1_hash32
from dirty import PII_DOCS, PLANTED, english_doc

from lmforge.config import LMForgeConfig
from lmforge.data.clean import _run, clean
from lmforge.data.dedup import ExactDedup, MinHashDedup, shingle_hashes, shingles
from lmforge.data.filters import (
    AlphaRatio,
    English,
    LengthBounds,
    NonEmpty,
    RepeatedLines,
    TopNgramShare,
    letter_counts,
)
from lmforge.data.ingest import ingest
from lmforge.data.normalize import Normalize, ScrubPii, normalize_text
from lmforge.data.pipeline import Quarantine, Step, run_steps
from lmforge.data.records import Record, read_jsonl


def test_normalize_text() -> None:
    messy = "\ufb01ne\u00a0 caf\u0065\u0301\r\n\r\n\r\nthe\tend\x07\u200b "
    assert normalize_text(messy) == "fine café\n\nthe end"
    assert normalize_text("  Code:\n\n\n      x  =  1\n  done  ") == "Code:\n\n    x = 1\ndone"
    # Other Unicode blanks collapse too; a line of only blanks empties; tidy text comes back as it was.
    assert normalize_text("a\u2028\u2028b \u1680c") == "a b c"
    assert normalize_text("  x\n  \u1680\n\tyes\x0b\u200d") == "x\n\n  yes"
    assert normalize_text(" one\n two") == "one\ntwo"
    assert normalize_text("tidy prose.\nsecond line") == "tidy prose.\nsecond line"


def test_filters_answer_keep_and_reason() -> None:
    doc = {"id": "a", "text": english_doc(random.Random(1))}
    assert LengthBounds(10, 100_000).filter(doc) == (True, "")
    assert LengthBounds(10_000, 100_000).filter(doc) == (False, "too_short")
    assert LengthBounds(1, 10).filter(doc) == (False, "too_long")
    assert AlphaRatio(0.6).filter({"text": "12 34 56 78 ab"}) == (False, "low_alpha")
    assert RepeatedLines(0.3).filter({"text": "same line\nsame line\nsame line\nother"}) == (False,
                                                                                           "repetitive_lines")
    assert TopNgramShare(0.2).filter({"text": "buy it now " * 20}) == (False, "repetitive_ngrams")
    assert TopNgramShare(0.2).filter(doc) == (True, "")
    assert English(0.5).filter({"text": "Der Hund schläft im Garten neben dem Haus"}) == (
        False, "not_english")
    assert English(0.5).filter(doc) == (True, "")
    assert NonEmpty().filter({"prompt": "q", "response": " "}) == (False, "empty_response")


def test_dedup_exact_and_near(tmp_path: Path) -> None:
    rng = random.Random(3)
    base = english_doc(rng)
    near = base.split()
    near[50] = "zeppelin"
    records = [{"id": "a", "text": base}, {"id": "b", "text": base}, {"id": "c", "text": " ".join(near)},
               {"id": "d", "text": english_doc(rng)}]
    quarantine = Quarantine(tmp_path / "q")
    kept = list(run_steps(records, [ExactDedup(), MinHashDedup(128, 16, 0.8, 5)], quarantine))
    assert [r["id"] for r in kept] == ["a", "d"]
    assert quarantine.counts == {"exact_dup": 1, "near_dup": 1}
    assert len(shingles("one two three four five six", 5)) == 2


def test_fast_paths_count_and_hash_as_the_plain_definitions() -> None:
    text = english_doc(random.Random(5)) + " Ünïcödé   naïve café ½ \u2028 \u00a0 x\t\x1c"
    chars = [c for c in text if not c.isspace()]
    assert letter_counts(text) == (sum(c.isalpha() for c in chars), len(chars))
    # MinHash gets datasketch's own default hash of each shingle, so signatures match update_batch(shingles).
    assert sorted(shingle_hashes(text, 5).tolist()) == sorted(map(sha1_hash32, shingles(text, 5)))
    assert len(shingle_hashes("too short", 5)) == 1


def test_scrub_and_quarantine_keep_the_original(tmp_path: Path) -> None:
    records = [{"id": "a", "text": "Mail  jane@example.com now"}, {"id": "b", "text": "\x00"}]
    quarantine = Quarantine(tmp_path / "q")
    scrub = ScrubPii()
    kept = list(run_steps(records, [Normalize(), NonEmpty(), scrub], quarantine))
    quarantine.close()
    assert kept[0]["text"] == "Mail <EMAIL> now" and scrub.counts == {"EMAIL": 1}
    line = json.loads((tmp_path / "q" / "empty.jsonl").read_text())
    assert line == {"rule": "empty", "record": {"id": "b", "text": "\x00"}}


def test_clean_dirty_corpus_keeps_every_record_accounted(cfg: LMForgeConfig, dirty_input: Path) -> None:
    ingest(cfg, dirty_input)
    result = clean(cfg)

    assert result.docs_in == 50 and result.pairs_in == 10
    corpus_rules = {k: v for k, v in result.rules.items() if not k.startswith("empty_")}
    assert corpus_rules == {**PLANTED, "exact_dup": PLANTED["exact_dup"] + 1}  # + the duplicate pair
    assert result.docs_kept == 50 - sum(PLANTED.values()) and result.pairs_kept == 8
    metrics = json.loads((cfg.paths.clean / "metrics.json").read_text())
    assert metrics["in"] == metrics["kept"] + metrics["quarantined"] == 60
    assert metrics["minhash"]["bands"] == 16 and metrics["minhash"]["rows"] == 8
    assert metrics["pii"] == {"EMAIL": 2, "PHONE": 1, "CREDIT_CARD": 1, "IP_ADDRESS": 1, "SSN": 1}
    assert metrics["corpus"]["steps"]["scrub_pii"]["records_with_pii"] == PII_DOCS
    kept_ids = {r["id"] for r in read_jsonl(cfg.paths.clean / "corpus.jsonl")}
    quarantined = [json.loads(line) for f in (cfg.paths.clean / "quarantine").glob("*.jsonl")
                   for line in f.read_text().splitlines()]
    assert len(quarantined) == result.quarantined
    assert kept_ids.isdisjoint(q["record"]["id"] for q in quarantined)
    near = [q for q in quarantined if q["rule"] == "near_dup"]
    assert sorted(q["record"]["id"] for q in near) == ["near-0", "near-1", "near-2"]
    exact = next(q for q in quarantined if q["record"]["id"] == "exact-0")
    assert exact["record"]["text"].startswith("  ")  # the record as ingested, not normalised


def test_a_step_that_loses_records_is_caught(tmp_path: Path) -> None:
    class Swallow(Step):  # a buggy step: drops records without quarantining them
        name = "swallow"

        def run(self, records: Iterator[Record], quarantine: Quarantine) -> Iterator[Record]:
            return (r for r in records if r["id"] != "b")

    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n')
    with pytest.raises(RuntimeError, match="records lost or double-counted: in=2 kept=1 quarantined=0"):
        _run(src, tmp_path / "out.jsonl", [Swallow()], Quarantine(tmp_path / "q"))


def test_minhash_catches_pairs_at_the_threshold_and_not_below() -> None:
    """Pairs at true 5-shingle Jaccard 0.8 are caught (LSH curve: 0.95); pairs at 0.5 never are."""
    rng = random.Random(11)

    def pair(replaced: int) -> tuple[str, str]:
        words = [f"w{rng.randrange(10**6)}" for _ in range(300)]
        return " ".join(words), " ".join(words[:300 - replaced] + [f"n{rng.randrange(10**6)}"
                                                                    for _ in range(replaced)])

    def caught(replaced: int, n: int = 40) -> int:
        step = MinHashDedup(128, 16, 0.8, 5)
        pairs = [pair(replaced) for _ in range(n)]
        for i, (a, _) in enumerate(pairs):
            step.filter({"id": f"a{i}", "text": a})
        return sum(not step.filter({"id": f"b{i}", "text": b})[0] for i, (_, b) in enumerate(pairs))

    a, b = pair(33)  # 33 of 300 words replaced: 263 of 296 shingles shared, Jaccard 0.80
    sa, sb = shingles(a, 5), shingles(b, 5)
    assert abs(len(sa & sb) / len(sa | sb) - 0.8) < 0.01
    assert caught(33) >= 34 and caught(99) == 0  # 99 replaced: Jaccard 0.50
