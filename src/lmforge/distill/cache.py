"""The teacher's top-k log-probs, computed once per data version and reused by every student run.

    cache = build_teacher_cache(teacher, train_item, n_items=2400, top_k=32, out=work / "teacher_cache",
                                key={...})          # one teacher pass, written atomically
    item = with_teacher(train_item, TeacherCache(work / "teacher_cache"))(17)
    # {"input_ids": (T,), "labels": (T,), "teacher_logprobs": (T, k) fp16, "teacher_ids": (T, k)}

The training stream is a pure function of the item index (``lmforge.train.data``), so item ``i`` of the
stream is the same window or pair in every run with the same data, seed and mixture; the cache stores the
teacher's answer for items ``0 .. n_items - 1`` and a student run reads it by index instead of running the
teacher. Layout: ``logprobs.npy`` (float16, (tokens, k)), ``ids.npy`` (uint16 when the vocabulary fits, else
int32, (tokens, k)), ``offsets.npy`` (int64, (n_items + 1,)) and ``_COMPLETE`` with the key it was built for,
so a student never trains on a cache made by another teacher, data version or mixture.

Size: k x (2 + 2) bytes per token with a vocabulary under 65,536 (128 B per token at k = 32), against
4 x vocab bytes for full fp32 logits (32 KiB per token at an 8k vocabulary).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.artifacts import COMPLETE, atomic_dir, require_complete
from lmforge.distill.loss import teacher_topk

Item = dict[str, torch.Tensor]


class CacheMismatch(ValueError):
    """The cache on disk was built for another teacher, data version, mixture or size."""


def bytes_per_token(top_k: int, vocab_size: int) -> int:
    return top_k * (2 + (2 if vocab_size <= 65_536 else 4))


def cache_key(teacher_hash: str, data_hash: str, stream: dict[str, Any], top_k: int, n_items: int) -> dict[str, Any]:
    """What a cache must match to stand in for the online teacher: the teacher, the data, how the stream
    draws items (seq_len, seed, mixture), k and how many items it covers."""
    return {"teacher": teacher_hash, "data": data_hash, "stream": stream, "top_k": top_k, "n_items": n_items}


@torch.no_grad()
def build_teacher_cache(teacher: nn.Module, train_item: Callable[[int], Item], n_items: int, top_k: int, out: Path,
                        key: dict[str, Any], vocab_size: int, batch_size: int = 8) -> Path:
    """Run ``teacher`` once over items ``0 .. n_items - 1`` and write their top-k log-probs to ``out``."""
    teacher.eval()
    lengths = [len(train_item(i)["input_ids"]) for i in range(n_items)]
    offsets = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    id_dtype = np.uint16 if vocab_size <= 65_536 else np.int32
    manifest = {**key, "vocab_size": vocab_size, "tokens": int(offsets[-1]),
                "bytes_per_token": bytes_per_token(top_k, vocab_size)}
    with atomic_dir(out, manifest) as tmp:
        logprobs = np.lib.format.open_memmap(tmp / "logprobs.npy", "w+", np.float16, (int(offsets[-1]), top_k))
        ids = np.lib.format.open_memmap(tmp / "ids.npy", "w+", id_dtype, (int(offsets[-1]), top_k))
        np.save(tmp / "offsets.npy", offsets)
        for start, batch in _batches(train_item, n_items, batch_size):
            logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            lp, ix = teacher_topk(logits, top_k)  # (B, T, k) each
            for row in range(lp.shape[0]):
                i = start + row
                n = int(offsets[i + 1] - offsets[i])
                logprobs[offsets[i]:offsets[i + 1]] = lp[row, :n].numpy().astype(np.float16)
                ids[offsets[i]:offsets[i + 1]] = ix[row, :n].numpy().astype(id_dtype)
        logprobs.flush()
        ids.flush()
        del logprobs, ids
    return out


def _batches(train_item: Callable[[int], Item], n_items: int, batch_size: int) -> Iterator[tuple[int, Item]]:
    """Right-padded batches of consecutive items with their attention masks; causal attention makes the real
    positions' logits independent of the padding after them."""
    for start in range(0, n_items, batch_size):
        items = [train_item(i)["input_ids"] for i in range(start, min(start + batch_size, n_items))]
        width = max(len(x) for x in items)
        input_ids = torch.zeros(len(items), width, dtype=torch.long)  # (B, T)
        mask = torch.zeros(len(items), width, dtype=torch.long)  # (B, T)
        for row, x in enumerate(items):
            input_ids[row, :len(x)] = x
            mask[row, :len(x)] = 1
        yield start, {"input_ids": input_ids, "attention_mask": mask}


class TeacherCache:
    """Read access to a finished cache, checked against the key the caller expects."""

    def __init__(self, path: Path, expected_key: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.manifest = require_complete(self.path, "teacher logit cache")
        if expected_key is not None:
            differs = {k: (self.manifest.get(k), v) for k, v in expected_key.items() if self.manifest.get(k) != v}
            if differs:
                raise CacheMismatch(f"{self.path} was built for other inputs (cache vs wanted: {differs}); "
                                    "rebuild it with `lmforge distill --step cache`")
        self.logprobs = np.load(self.path / "logprobs.npy", mmap_mode="r")
        self.ids = np.load(self.path / "ids.npy", mmap_mode="r")
        self.offsets = np.load(self.path / "offsets.npy")
        self.n_items = len(self.offsets) - 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < self.n_items:
            raise IndexError(f"item {i} is past the teacher cache's {self.n_items} items ({self.path}): the run "
                             "trains longer than the cache was built for; rebuild it")
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return (torch.from_numpy(np.array(self.logprobs[lo:hi])),
                torch.from_numpy(np.array(self.ids[lo:hi]).astype(np.int64)))


def with_teacher(train_item: Callable[[int], Item], cache: TeacherCache) -> Callable[[int], Item]:
    """Item ``i`` of the stream with the teacher's cached top-k for each of its positions."""

    def item(i: int) -> Item:
        x = train_item(i)
        logprobs, ids = cache[i]
        if len(logprobs) != len(x["input_ids"]):
            raise CacheMismatch(f"teacher cache item {i} has {len(logprobs)} positions, the stream's has "
                                f"{len(x['input_ids'])}: the cache is not for this data")
        return {**x, "teacher_logprobs": logprobs, "teacher_ids": ids}

    return item


def teacher_collate(pad_id: int) -> Callable[[list[Item]], Item]:
    """``pad_collate`` plus the teacher's (B, T, k) tensors; padded positions are ignored by their labels."""
    from lmforge.train.data import pad_collate

    base = pad_collate(pad_id)

    def collate(items: list[Item]) -> Item:
        batch = base(items)
        width, k = batch["input_ids"].shape[1], items[0]["teacher_ids"].shape[1]
        logprobs = torch.zeros(len(items), width, k, dtype=torch.float16)  # (B, T, k)
        ids = torch.zeros(len(items), width, k, dtype=torch.long)  # (B, T, k)
        for row, x in enumerate(items):
            logprobs[row, :len(x["teacher_ids"])] = x["teacher_logprobs"]
            ids[row, :len(x["teacher_ids"])] = x["teacher_ids"]
        return {**batch, "teacher_logprobs": logprobs, "teacher_ids": ids}

    return collate


def describe(path: Path) -> str:
    manifest = json.loads((Path(path) / COMPLETE).read_text())
    mib = sum(manifest["files"].values()) / 2**20
    return (f"teacher cache {path}: {manifest['n_items']} items, {manifest['tokens']:,} tokens, k={manifest['top_k']}, "
            f"{manifest['bytes_per_token']} B/token, {mib:.1f} MiB")
