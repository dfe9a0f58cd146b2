"""The sample builder's parsers (on tiny in-code files) and the shipped sample's contract."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from lmforge.data.pair_sources import read_chatterbot, read_wordnet, wordnet_notice
from lmforge.data.records import PAIR_FIELDS, PROSE_FIELDS
from lmforge.data.sources import split_rst_sections, strip_rst_roles

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def test_rst_sections_and_roles() -> None:
    text = ("=====\nTitle\n=====\n\n.. _label:\n\nIntro with :func:`json.dumps` and :class:`~a.B <x>`.\n\n"
            "What is it?\n-----------\n\nAn answer.\n")
    sections = split_rst_sections(text)
    assert [t for t, _ in sections] == ["Title", "What is it?"]
    assert strip_rst_roles(sections[0][1]).strip() == "Intro with json.dumps and a.B."
    assert sections[1][1] == "An answer."


def test_wordnet_pairs_skip_the_licence_header(tmp_path: Path) -> None:
    (tmp_path / "data.noun").write_text(
        "  1 This software and database is provided by Princeton.  \n"
        "00001 03 n 02 harbor 0 seaport 0 000 | a sheltered port; \"the ship reached the harbor\"  \n")
    for pos in ("verb", "adj", "adv"):
        (tmp_path / f"data.{pos}").write_text("")
    (pair,) = read_wordnet(tmp_path)
    assert pair["prompt"] == 'Define the noun "harbor".'
    assert pair["response"] == 'A sheltered port. Synonyms: seaport. Example: "the ship reached the harbor".'
    assert "Princeton" in wordnet_notice(tmp_path)


def test_chatterbot_malformed_conversation_is_noted(tmp_path: Path) -> None:
    yml = "conversations:\n- - Hi\n  - Hello\n  - How are you?\n  - Fine.\n- oops\n"
    (tmp_path / "x.yml").write_text(yml)
    notes: list[str] = []
    pairs = list(read_chatterbot(tmp_path, notes))
    assert [(p["prompt"], p["response"]) for p in pairs] == [("Hi", "Hello"), ("How are you?", "Fine.")]
    assert notes == ["chatterbot x.yml: conversation 1 is not a list of turns, skipped"]


@pytest.mark.skipif(not (SAMPLE / "corpus.jsonl.gz").is_file(), reason="no shipped sample")
def test_shipped_sample_meets_its_contract() -> None:
    with gzip.open(SAMPLE / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    with gzip.open(SAMPLE / "pairs.jsonl.gz", "rt", encoding="utf-8") as fh:
        pairs = [json.loads(line) for line in fh]
    assert sum(len(d["text"].encode()) for d in docs) >= 4_000_000 and len(pairs) >= 4_000
    assert all(tuple(d) == PROSE_FIELDS for d in docs) and all(tuple(p) == PAIR_FIELDS for p in pairs)
    assert len({d["id"] for d in docs}) == len(docs) and len({p["id"] for p in pairs}) == len(pairs)
    assert "gpl" not in " ".join({r["license"].lower() for r in docs + pairs})
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in (SAMPLE / "LICENSES.md").read_text()
