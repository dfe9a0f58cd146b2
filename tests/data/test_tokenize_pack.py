"""Tokenizer (HF format, specials, chat template) and pack (flat token files, manifest, SFT split)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dirty import dirty_corpus, dirty_pairs, write_jsonl

from lmforge.config import LMForgeConfig
from lmforge.data.clean import clean
from lmforge.data.ingest import ingest
from lmforge.data.pack import pack
from lmforge.data.records import read_jsonl
from lmforge.data.tokenizer import SPECIAL_TOKENS, tokenize


@pytest.fixture
def packed(cfg: LMForgeConfig, tmp_path: Path) -> LMForgeConfig:
    good = [r for r in dirty_corpus() if r["id"].startswith(("good", "pii"))]
    ingest(cfg, write_jsonl(tmp_path / "in.jsonl", good + dirty_pairs()))
    clean(cfg)
    tokenize(cfg)
    pack(cfg)
    return cfg


def test_tokenizer_loads_with_specials_and_chat_template(packed: LMForgeConfig) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(packed.paths.tokenizer)
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tok.bos_token == tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    text = "The quiet harbor crossed the wide river, café ☕ and <EMAIL>."
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode("the harbor")) < len("the harbor")  # merges were learned
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == ("<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello\n<|endoftext|>"
                        "<|user|>\nBye\n<|assistant|>\n")
    ids = tok.apply_chat_template(messages[:2], tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert ids[0] == tok.convert_tokens_to_ids("<|system|>") and ids[-2] == tok.convert_tokens_to_ids(
        "<|assistant|>")


def test_pack_manifest_matches_the_token_files(packed: LMForgeConfig) -> None:
    shards = packed.paths.shards
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["dtype"] == "uint16" and manifest["eos_id"] == manifest["bos_id"] == 0
    assert manifest["pad_id"] == 1 and manifest["vocab_size"] <= 300
    docs = {s: 0 for s in ("train", "val")}
    for split, info in manifest["splits"].items():
        tokens = [np.memmap(shards / f, dtype=manifest["dtype"], mode="r") for f in info["files"]]
        flat = np.concatenate(tokens)
        assert len(flat) == info["tokens"] > 0
        assert all(len(t) <= packed.data.shard_tokens for t in tokens)
        assert flat[-1] == manifest["eos_id"]
        docs[split] = int((flat == manifest["eos_id"]).sum())  # one eos closes each document
        assert docs[split] == info["docs"]
    assert len(manifest["splits"]["train"]["files"]) > 1  # shard_tokens=2000 forces several files
    kept = len(list(read_jsonl(packed.paths.clean / "corpus.jsonl")))
    assert docs["train"] + docs["val"] == kept and docs["val"] >= 1
    sft = manifest["sft"]
    train = list(read_jsonl(shards / sft["train"]))
    val = list(read_jsonl(shards / sft["val"]))
    assert (len(train), len(val)) == (sft["train_pairs"], sft["val_pairs"])
    assert set(train[0]) == {"id", "prompt", "response"}
    assert {p["id"] for p in train}.isdisjoint(p["id"] for p in val)


def test_pack_is_deterministic(packed: LMForgeConfig) -> None:
    first = json.loads((packed.paths.shards / "manifest.json").read_text())["splits"]
    pack(packed)
    assert json.loads((packed.paths.shards / "manifest.json").read_text())["splits"] == first
