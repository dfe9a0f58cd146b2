"""The evaluation protocol: every token after the first scored once, whatever the stride; baselines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lmforge.train import evaluate
from lmforge.train.data import load_split, read_manifest
from lmforge.train.evaluate import (
    decode_speed,
    evaluate_perplexity,
    paired_decode_speed,
    response_perplexity,
    unigram_perplexity,
)


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


def test_response_perplexity_scores_only_the_responses_of_every_val_pair(tiny_model_dir, data_dir) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.train.data import sft_example

    shards = data_dir / "shards"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    rows = [json.loads(line) for line in (shards / "sft_val.jsonl").read_text().splitlines() if line.strip()]
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for row in rows:  # one pair at a time, no padding: the sum over response tokens, by hand
            ex = sft_example(tok, row["prompt"], row["response"], 64)
            logits = model(input_ids=ex["input_ids"].unsqueeze(0)).logits[0]
            nll += torch.nn.functional.cross_entropy(logits, ex["labels"], ignore_index=-100, reduction="sum").item()
            tokens += int((ex["labels"] != -100).sum())
    got = response_perplexity(tiny_model_dir, shards, seq_len=64, batch_size=3)  # batches padded
    assert got["pairs"] == len(rows)
    assert got["ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-4)


def test_decode_speed_counts_new_tokens(tiny_model_dir) -> None:
    assert decode_speed(tiny_model_dir, ["The harbor", "Ships"], max_new_tokens=4) > 0


def test_paired_decode_speed_takes_turns_and_a_burst_of_load_cannot_move_the_speedup(tiny_model_dir, monkeypatch
                                                                                       ) -> None:
    """A fake clock: the teacher costs 3 s a run, the student 1 s, and every run of prompt 1 meets 10x load."""
    clock, calls, order = [0.0], [0], []
    models: list[object] = []

    def fake_generate(model, enc, pad_token_id, max_new_tokens):
        if model not in models:
            models.append(model)  # warm-up calls come first, in the order of model_dirs
        name = ("teacher", "student")[models.index(model)]
        calls[0] += 1
        order.append(name)
        burst = 10.0 if 2 + 2 * 3 < calls[0] <= 2 + 2 * 3 * 2 else 1.0  # all runs of the second prompt
        clock[0] += (3.0 if name == "teacher" else 1.0) * burst
        return torch.zeros(1, enc["input_ids"].shape[1] + max_new_tokens, dtype=torch.long)

    monkeypatch.setattr(evaluate, "_generate", fake_generate)
    monkeypatch.setattr(evaluate.time, "perf_counter", lambda: clock[0])
    speeds = paired_decode_speed({"teacher": tiny_model_dir, "student": tiny_model_dir}, ["a", "b", "c"],
                                 max_new_tokens=4, repeats=3, reference="teacher")
    assert speeds["speedup"] == {"teacher": 1.0, "student": 3.0}
    assert speeds["teacher"] == pytest.approx(12 / (3 + 30 + 3)) and speeds["student"] == pytest.approx(12 / 12)
    timed = order[2:]
    assert timed[:6] == ["teacher", "student", "student", "teacher", "teacher", "student"]  # turns, alternating
    assert timed.count("teacher") == timed.count("student") == 9


def test_paired_decode_speed_of_one_model_against_itself_is_about_one(tiny_model_dir) -> None:
    speeds = paired_decode_speed({"a": tiny_model_dir, "b": tiny_model_dir}, ["The harbor", "Ships", "Rain"],
                                 max_new_tokens=4, repeats=3, reference="a")
    assert speeds["a"] > 0 and speeds["b"] > 0
    assert 0.5 < speeds["speedup"]["b"] < 2.0 and speeds["speedup"]["a"] == 1.0
