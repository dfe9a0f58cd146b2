"""Pack: encode the clean prose into flat token files and split the pairs for fine-tuning.

    lmforge data --step pack           # clean/ + tokenizer/ -> shards/

Writes ``shards/{train,val}_NNN.bin``: token ids back to back (uint16 below 65,536 ids, else uint32), each
document followed by eos, ``data.shard_tokens`` tokens per file; read one with
``np.memmap(path, dtype=manifest["dtype"], mode="r")``. ``shards/sft_{train,val}.jsonl`` hold
``{id, prompt, response}``. ``shards/manifest.json`` records dtype, special ids, files, token counts and
sha256 of every file. The split is by document id, seeded (``records.val_ids``), the same one the tokenizer
was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.artifacts import atomic_dir, require_complete, sha256_file, write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.data.records import JsonlWriter, read_jsonl, val_ids

_BATCH_DOCS = 256  # documents encoded per call into the Rust tokenizer


@dataclass(frozen=True)
class PackResult:
    dtype: str
    train_tokens: int
    val_tokens: int
    train_docs: int
    val_docs: int
    sft_train_pairs: int
    sft_val_pairs: int
    files: tuple[str, ...]


def pack(cfg: LMForgeConfig) -> PackResult:
    """Encode ``clean/corpus.jsonl`` into token shards and split ``clean/pairs.jsonl``; write ``shards/``."""
    from tokenizers import Tokenizer

    clean, tok_dir = cfg.paths.clean, cfg.paths.tokenizer
    require_complete(clean, "clean data")
    tok_manifest = require_complete(tok_dir, "tokenizer")
    tokenizer = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    vocab = tokenizer.get_vocab_size()
    dtype = np.uint16 if vocab < 2**16 else np.uint32
    # A base's tokenizer names its own separator and pad (tokenizer.copy_base_tokenizer); a trained one has ours.
    eos = tok_manifest.get("eos_id", tokenizer.token_to_id("<|endoftext|>"))
    pad = tok_manifest.get("pad_id", tokenizer.token_to_id("<|pad|>"))
    held_out = val_ids(clean / "corpus.jsonl", cfg.data.seed, cfg.data.val_fraction)
    if not held_out:
        raise ValueError(f"pack needs at least 2 clean documents for a train/val split; "
                         f"see {clean}/metrics.json")

    manifest: dict[str, Any] = {"stage": "pack"}
    with atomic_dir(cfg.paths.shards, manifest) as tmp:
        writers = {split: ShardWriter(tmp, split, dtype, cfg.data.shard_tokens) for split in ("train", "val")}
        docs = {"train": 0, "val": 0}
        batch: list[tuple[str, str]] = []
        for record in read_jsonl(clean / "corpus.jsonl"):
            batch.append(("val" if record["id"] in held_out else "train", record["text"]))
            if len(batch) == _BATCH_DOCS:
                _encode_into(tokenizer, batch, writers, eos, docs)
                batch = []
        _encode_into(tokenizer, batch, writers, eos, docs)
        sft = split_pairs(clean / "pairs.jsonl", tmp, cfg.data.seed, cfg.data.val_fraction)
        splits = {name: w.close() for name, w in writers.items()}
        for name in splits:
            splits[name]["docs"] = docs[name]
        body = {"dtype": np.dtype(dtype).name, "vocab_size": vocab, "eos_id": eos, "bos_id": eos,
                "pad_id": pad, "splits": splits, "sft": sft,
                "tokenizer_sha256": sha256_file(tok_dir / "tokenizer.json")}
        write_json_atomic(tmp / "manifest.json", body)
        manifest.update(tokens={k: v["tokens"] for k, v in splits.items()})
    return PackResult(dtype=body["dtype"], train_tokens=splits["train"]["tokens"],
                      val_tokens=splits["val"]["tokens"], train_docs=docs["train"], val_docs=docs["val"],
                      sft_train_pairs=sft["train_pairs"], sft_val_pairs=sft["val_pairs"],
                      files=tuple(f for s in splits.values() for f in s["files"]))


class ShardWriter:
    """Appends token ids to ``<split>_NNN.bin`` files of at most ``shard_tokens`` tokens each."""

    def __init__(self, directory: Path, split: str, dtype: type, shard_tokens: int) -> None:
        self.directory, self.split, self.dtype, self.shard_tokens = directory, split, dtype, shard_tokens
        self.files: list[str] = []
        self.tokens = 0
        self._buffer: list[np.ndarray] = []
        self._buffered = 0

    def write(self, ids: list[int]) -> None:
        array = np.asarray(ids, dtype=self.dtype)
        self._buffer.append(array)
        self._buffered += len(array)
        self.tokens += len(array)
        while self._buffered >= self.shard_tokens:
            flat = np.concatenate(self._buffer)
            self._flush(flat[:self.shard_tokens])
            rest = flat[self.shard_tokens:]
            self._buffer, self._buffered = [rest], len(rest)

    def close(self) -> dict[str, Any]:
        if self._buffered or not self.files:  # always at least one file, even if empty
            self._flush(np.concatenate(self._buffer) if self._buffer else np.zeros(0, self.dtype))
        return {"files": self.files, "tokens": self.tokens,
                "sha256": {f: sha256_file(self.directory / f) for f in self.files}}

    def _flush(self, ids: np.ndarray) -> None:
        name = f"{self.split}_{len(self.files):03d}.bin"
        ids.astype(self.dtype, copy=False).tofile(self.directory / name)
        self.files.append(name)
        self._buffer, self._buffered = [], 0


def split_pairs(pairs_path: Path, out: Path, seed: int, val_fraction: float) -> dict[str, Any]:
    """Write ``sft_train.jsonl`` / ``sft_val.jsonl`` (``{id, prompt, response}``) by the seeded id split."""
    held_out = val_ids(pairs_path, seed, val_fraction)
    with JsonlWriter(out / "sft_train.jsonl") as train, JsonlWriter(out / "sft_val.jsonl") as val:
        for record in read_jsonl(pairs_path):
            row = {k: record[k] for k in ("id", "prompt", "response")}
            (val if record["id"] in held_out else train).write(row)
    return {"train": "sft_train.jsonl", "val": "sft_val.jsonl", "train_pairs": train.count,
            "val_pairs": val.count}


def _encode_into(tokenizer: Any, batch: list[tuple[str, str]], writers: dict[str, ShardWriter], eos: int,
                 docs: dict[str, int]) -> None:
    if not batch:
        return
    encodings = tokenizer.encode_batch([text for _, text in batch], add_special_tokens=False)
    for (split, _), encoding in zip(batch, encodings, strict=True):
        writers[split].write([*encoding.ids, eos])  # eos closes every document
        docs[split] += 1
