"""Training data: random windows over memory-mapped token shards, and prompt/response pairs for SFT.

Both streams are a pure function of ``(seed, item index)``, so the data order is deterministic and a resumed
run continues exactly where the checkpoint stopped: the datamodule saves how many items each rank consumed.

Every batch is ``{"input_ids": (B, T), "labels": (B, T)}`` with ``labels[:, t]`` the target of position
``t`` (already shifted) and ``-100`` where no loss is taken.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

IGNORE = -100


def read_manifest(shards_dir: Path) -> dict[str, Any]:
    return json.loads((Path(shards_dir) / "manifest.json").read_text())


def load_split(shards_dir: Path, split: str) -> list[np.memmap]:
    """The split's shard files as read-only memmaps (flat token ids, documents separated by eos)."""
    manifest = read_manifest(shards_dir)
    dtype = np.dtype(manifest["dtype"])
    return [np.memmap(Path(shards_dir) / name, dtype=dtype, mode="r") for name in manifest["splits"][split]["files"]]


class IndexedStream(IterableDataset):
    """An endless stream ``item(start), item(start + world), ...`` for one rank: resumable by ``start``."""

    def __init__(self, item: Callable[[int], dict[str, torch.Tensor]], start: int = 0, rank: int = 0,
                 world: int = 1) -> None:
        self.item, self.start, self.rank, self.world = item, start, rank, world

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        i = self.start
        while True:
            yield self.item(i * self.world + self.rank)
            i += 1


class RandomWindows:
    """Item ``i``: a window of ``seq_len + 1`` tokens at a position drawn from ``rng((seed, i))``."""

    def __init__(self, shards: list[np.memmap], seq_len: int, seed: int) -> None:
        self.shards = [s for s in shards if len(s) > seq_len + 1]
        if not self.shards:
            raise ValueError(f"no shard holds more than seq_len + 1 = {seq_len + 1} tokens")
        self.seq_len, self.seed = seq_len, seed
        sizes = np.array([len(s) - seq_len - 1 for s in self.shards], dtype=np.float64)
        self.cum = np.cumsum(sizes)  # window starts, counted over all shards

    def __call__(self, i: int) -> dict[str, torch.Tensor]:
        pos = int(np.random.default_rng((self.seed, i)).integers(0, int(self.cum[-1])))
        f = int(np.searchsorted(self.cum, pos, side="right"))
        start = pos - (int(self.cum[f - 1]) if f else 0)
        window = torch.from_numpy(self.shards[f][start:start + self.seq_len + 1].astype(np.int64))  # (T+1,)
        return {"input_ids": window[:-1], "labels": window[1:]}


def fixed_windows(shards: list[np.memmap], seq_len: int, count: int) -> list[dict[str, torch.Tensor]]:
    """The first ``count`` non-overlapping windows of a split: the same validation batches at every check."""
    tokens = np.concatenate([np.asarray(s) for s in shards]).astype(np.int64)
    n = min(count, (len(tokens) - 1) // seq_len)
    out = []
    for k in range(n):
        window = torch.from_numpy(tokens[k * seq_len:(k + 1) * seq_len + 1])  # (T+1,)
        out.append({"input_ids": window[:-1], "labels": window[1:]})
    return out


def sft_example(tokenizer: Any, prompt: str, response: str, seq_len: int) -> dict[str, torch.Tensor] | None:
    """``[prompt][response eos]`` with loss only on the response; None if truncation leaves no response token.

    The prompt comes from the chat template (generation prompt included) and the response is tokenised
    without specials, so bos is never added twice.
    """
    encoded = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            tokenize=True)
    prompt_ids = list(encoded["input_ids"] if isinstance(encoded, Mapping) else encoded)
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:seq_len + 1]
    labels = ([IGNORE] * len(prompt_ids) + response_ids)[:seq_len + 1]
    if all(t == IGNORE for t in labels[1:]):
        return None
    return {"input_ids": torch.tensor(ids[:-1]), "labels": torch.tensor(labels[1:])}  # (T,), shifted


class SFTPairs(Dataset):
    """Prompt/response JSONL lines (``{id, prompt, response}``) tokenised once into SFT examples."""

    def __init__(self, path: Path, tokenizer: Any, seq_len: int) -> None:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        made = (sft_example(tokenizer, r["prompt"], r["response"], seq_len) for r in rows)
        self.examples = [e for e in made if e is not None]
        self.dropped = len(rows) - len(self.examples)
        if not self.examples:
            raise ValueError(f"{path}: no pair keeps a response token within seq_len={seq_len}")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.examples[i]


class ShuffledEpochs:
    """Item ``i`` of an endless stream of epochs, each a permutation drawn from ``rng((seed, epoch))``."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.n = dataset, seed, len(dataset)
        self._perm: tuple[int, np.ndarray] | None = None

    def __call__(self, i: int) -> dict[str, torch.Tensor]:
        epoch = i // self.n
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng((self.seed, epoch)).permutation(self.n))
        return self.dataset[int(self._perm[1][i % self.n])]


class Mixture:
    """Item ``i`` comes from source ``k`` with probability ``shares[k]``, drawn from ``rng((seed, i))``.

    Each source is itself a pure function of the item index, so the mixture stays deterministic and resumable.
    """

    def __init__(self, sources: list[Callable[[int], dict[str, torch.Tensor]]], shares: list[float],
                 seed: int) -> None:
        if len(sources) != len(shares) or any(s < 0 for s in shares) or not sum(shares):
            raise ValueError(f"mixture shares {shares} do not fit {len(sources)} sources")
        self.sources, self.seed = sources, seed
        self.cum = np.cumsum(shares) / sum(shares)

    def __call__(self, i: int) -> dict[str, torch.Tensor]:
        u = np.random.default_rng((self.seed, i, 1)).random()  # stream 1: independent of the sources' draws
        return self.sources[min(int(np.searchsorted(self.cum, u, side="right")), len(self.sources) - 1)](i)


def pad_collate(pad_id: int) -> Callable[[list[dict[str, torch.Tensor]]], dict[str, torch.Tensor]]:
    """Right-pad ``input_ids`` with ``pad_id`` and ``labels`` with -100 (causal attention never sees the pads)."""

    def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        width = max(len(x["input_ids"]) for x in items)
        ids = torch.full((len(items), width), pad_id, dtype=torch.long)  # (B, T)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)  # (B, T)
        for row, x in enumerate(items):
            ids[row, :len(x["input_ids"])] = x["input_ids"]
            labels[row, :len(x["labels"])] = x["labels"]
        return {"input_ids": ids, "labels": labels}

    return collate


class StreamDataModule(L.LightningDataModule):
    """An endless seeded training stream plus fixed validation examples; checkpoints its stream position."""

    def __init__(self, train_item: Callable[[int], dict[str, torch.Tensor]], val_items: list | Dataset,
                 batch_size: int, pad_id: int) -> None:
        super().__init__()
        self.train_item, self.val_items = train_item, val_items
        self.batch_size, self.pad_id = batch_size, pad_id
        self.start = 0  # items this rank has consumed, restored from a checkpoint

    def train_dataloader(self) -> DataLoader:
        stream = IndexedStream(self.train_item, self.start, self.trainer.global_rank, self.trainer.world_size)
        return DataLoader(stream, batch_size=self.batch_size, collate_fn=pad_collate(self.pad_id))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_items, batch_size=self.batch_size, collate_fn=pad_collate(self.pad_id))

    def state_dict(self) -> dict[str, int]:
        # Checkpoints are written at optimizer-step boundaries, so this is exact (the loader prefetches ahead).
        t = self.trainer
        return {"position": t.global_step * t.accumulate_grad_batches * self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.start = int(state["position"])


def pretrain_datamodule(shards_dir: Path, seq_len: int, batch_size: int, seed: int, val_batches: int,
                        pad_id: int) -> StreamDataModule:
    windows = RandomWindows(load_split(shards_dir, "train"), seq_len, seed)
    val = fixed_windows(load_split(shards_dir, "val"), seq_len, val_batches * batch_size)
    return StreamDataModule(windows, val, batch_size, pad_id)


def sft_datamodule(shards_dir: Path, tokenizer: Any, seq_len: int, batch_size: int, seed: int,
                   val_batches: int) -> StreamDataModule:
    sft = read_manifest(shards_dir)["sft"]
    train = SFTPairs(Path(shards_dir) / sft["train"], tokenizer, seq_len)
    val = SFTPairs(Path(shards_dir) / sft["val"], tokenizer, seq_len)
    val_items = [val[i] for i in range(min(len(val), val_batches * batch_size))]
    return StreamDataModule(ShuffledEpochs(train, seed), val_items, batch_size, tokenizer.pad_token_id)


def distill_datamodule(shards_dir: Path, tokenizer: Any, seq_len: int, batch_size: int, seed: int,
                       val_batches: int, sft_share: float) -> StreamDataModule:
    """Pretraining windows mixed with chat-formatted instruction pairs (``sft_share`` of the items).

    The student is served as a chat model, so it must see the chat format the teacher was fine-tuned on;
    validation stays on pretraining windows, the protocol every model is compared with.
    """
    windows = RandomWindows(load_split(shards_dir, "train"), seq_len, seed)
    sft = read_manifest(shards_dir)["sft"]
    pairs = ShuffledEpochs(SFTPairs(Path(shards_dir) / sft["train"], tokenizer, seq_len), seed)
    val = fixed_windows(load_split(shards_dir, "val"), seq_len, val_batches * batch_size)
    train = Mixture([windows, pairs], [1.0 - sft_share, sft_share], seed)
    return StreamDataModule(train, val, batch_size, tokenizer.pad_token_id)
