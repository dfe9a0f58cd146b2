"""The evaluation protocol: every token after the first scored once, whatever the stride; baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmforge.train.data import load_split, read_manifest
from lmforge.train.evaluate import decode_speed, evaluate_perplexity, unigram_perplexity


def test_windows_score_every_token_once(tiny_model_dir, data_dir) -> None:
    shards = data_dir / "shards"
    plain = evaluate_perplexity(tiny_model_dir, shards, seq_len=32, max_tokens=200)
    strided = evaluate_perplexity(tiny_model_dir, shards, seq_len=32, stride=8, max_tokens=200)
    assert plain["tokens"] == strided["tokens"] == 199
    assert plain["ppl"] == pytest.approx(math.exp(plain["loss"]))
    assert strided["loss"] <= plain["loss"] + 0.05  # more context per scored token never hurts much
    assert plain["bits_per_byte"] == pytest.approx(plain["loss"] * 199 / math.log(2) / plain["bytes"])
    with pytest.raises(ValueError, match="stride"):
        evaluate_perplexity(tiny_model_dir, shards, seq_len=8, stride=16)


def test_unigram_perplexity_is_add_one_on_train_counts(data_dir) -> None:
    shards = data_dir / "shards"
    vocab = read_manifest(shards)["vocab_size"]
    train = np.concatenate(load_split(shards, "train")).astype(np.int64)
    val = np.concatenate(load_split(shards, "val")).astype(np.int64)
    counts = np.bincount(train, minlength=vocab) + 1.0
    expected = math.exp(-np.mean(np.log(counts[val] / counts.sum())))
    assert unigram_perplexity(shards) == pytest.approx(expected)
    assert unigram_perplexity(shards) < vocab  # the corpus is far from uniform


def test_decode_speed_counts_new_tokens(tiny_model_dir) -> None:
    assert decode_speed(tiny_model_dir, ["The harbor", "Ships"], max_new_tokens=4) > 0
