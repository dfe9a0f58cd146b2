"""Training data: seeded resumable windows, SFT examples with loss on the response only, padding."""

from __future__ import annotations

import torch

from lmforge.train.data import (
    IGNORE,
    IndexedStream,
    RandomWindows,
    load_split,
    pad_collate,
    pretrain_datamodule,
    sft_example,
)


def test_windows_are_shifted_seeded_and_resumable(data_dir) -> None:
    windows = RandomWindows(load_split(data_dir / "shards", "train"), seq_len=16, seed=7)
    item = windows(3)
    assert item["input_ids"].shape == item["labels"].shape == (16,)
    assert torch.equal(item["input_ids"][1:], item["labels"][:-1])  # labels are the next tokens
    assert torch.equal(windows(3)["input_ids"], item["input_ids"])  # a pure function of (seed, index)
    full = [x["input_ids"] for _, x in zip(range(6), IndexedStream(windows), strict=False)]
    resumed = [x["input_ids"] for _, x in zip(range(2), IndexedStream(windows, start=4), strict=False)]
    assert all(torch.equal(a, b) for a, b in zip(full[4:], resumed, strict=True))
    other_seed = RandomWindows(load_split(data_dir / "shards", "train"), seq_len=16, seed=8)
    assert any(not torch.equal(other_seed(i)["input_ids"], windows(i)["input_ids"]) for i in range(4))


def test_ranks_read_disjoint_items(data_dir) -> None:
    windows = RandomWindows(load_split(data_dir / "shards", "train"), seq_len=16, seed=7)
    rank1 = next(iter(IndexedStream(windows, start=2, rank=1, world=2)))
    assert torch.equal(rank1["input_ids"], windows(5)["input_ids"])  # item 2 * world + rank


def test_sft_labels_mask_the_prompt(tokenizer) -> None:
    prompt_ids = list(tokenizer.apply_chat_template([{"role": "user", "content": "Describe the harbor."}],
                                                    add_generation_prompt=True, tokenize=True)["input_ids"])
    response_ids = tokenizer("The harbor was quiet.", add_special_tokens=False)["input_ids"]
    ex = sft_example(tokenizer, "Describe the harbor.", "The harbor was quiet.", seq_len=64)
    full = prompt_ids + response_ids + [tokenizer.eos_token_id]
    assert ex["input_ids"].tolist() == full[:-1]
    # label t is the target of position t: prompt targets ignored, then every response token and eos
    expected = [IGNORE] * (len(prompt_ids) - 1) + response_ids + [tokenizer.eos_token_id]
    assert ex["labels"].tolist() == expected
    assert full.count(tokenizer.bos_token_id) == 1  # the eos at the end only: no second bos


def test_sft_truncates_and_drops_pairs_without_a_response_token(tokenizer) -> None:
    ex = sft_example(tokenizer, "Describe the harbor.", "The harbor was quiet. " * 20, seq_len=24)
    assert len(ex["input_ids"]) == len(ex["labels"]) == 24
    assert sft_example(tokenizer, "Describe the harbor. " * 30, "Quiet.", seq_len=8) is None


def test_pad_collate_pads_inputs_and_ignores_padded_labels() -> None:
    items = [{"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor([6, 7, 0])},
             {"input_ids": torch.tensor([5]), "labels": torch.tensor([IGNORE])}]
    batch = pad_collate(pad_id=1)(items)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 1, 1]]
    assert batch["labels"].tolist() == [[6, 7, 0], [IGNORE, IGNORE, IGNORE]]


def test_validation_windows_are_fixed(data_dir) -> None:
    dm = pretrain_datamodule(data_dir / "shards", seq_len=16, batch_size=2, seed=0, val_batches=3, pad_id=1)
    first = [b["input_ids"] for b in dm.val_dataloader()]
    again = [b["input_ids"] for b in dm.val_dataloader()]
    assert len(first) == 3 and all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
