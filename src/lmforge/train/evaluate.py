"""Model evaluation with one fixed protocol, so teacher, student and baseline are comparable.

Perplexity protocol (``evaluate_perplexity``): the split's token stream (shards concatenated in manifest
order, cut at ``max_tokens``) is scored in windows of ``seq_len`` tokens that start every ``stride`` tokens;
each window scores only the tokens the previous window did not (Hugging Face's sliding-window recipe), so
every token after the first is scored exactly once. ``stride == seq_len`` (the default) gives
non-overlapping windows. Bits per byte divide the total NLL by the UTF-8 bytes of the scored tokens decoded
without special tokens, which makes models with different tokenizers comparable.

    evaluate_perplexity(models / "student", shards, seq_len=128)  # {"loss", "ppl", "bits_per_byte", ...}

Response perplexity (``response_perplexity``): the fine-tuning's validation loss on every pair of the
instruction val split, chat-formatted, scored on the response tokens only: the teacher's own domain, where
the pretraining split above shows what fine-tuning cost it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from lmforge.train.data import SFTPairs, load_split, pad_collate, read_manifest
from lmforge.train.module import mean_loss


@torch.no_grad()
def evaluate_perplexity(model_dir: Path, shards_dir: Path, split: str = "val", seq_len: int | None = None,
                        stride: int | None = None, max_tokens: int | None = None) -> dict[str, float]:
    """Token-level perplexity and bits per byte of the exported model on a shard split (protocol above)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return perplexity_of(model, AutoTokenizer.from_pretrained(model_dir), shards_dir, split, seq_len, stride,
                         max_tokens)


@torch.no_grad()
def perplexity_of(model: PreTrainedModel, tokenizer: Any, shards_dir: Path, split: str = "val",
                  seq_len: int | None = None, stride: int | None = None,
                  max_tokens: int | None = None) -> dict[str, float]:
    """``evaluate_perplexity`` on a model in memory (on its current device)."""
    was_training = model.training
    model.eval()
    seq_len = seq_len or model.config.max_position_embeddings
    stride = stride or seq_len
    if not 0 < stride <= seq_len:
        raise ValueError(f"stride must be in (0, seq_len={seq_len}], got {stride}")
    tokens = np.concatenate([np.asarray(s) for s in load_split(shards_dir, split)]).astype(np.int64)
    tokens = torch.from_numpy(tokens[:max_tokens] if max_tokens else tokens)  # (N,)
    nll, scored, prev_end = 0.0, 0, 0
    for begin in range(0, len(tokens) - 1, stride):
        end = min(begin + seq_len + 1, len(tokens))  # +1: the window's inputs and shifted targets
        window = tokens[begin:end].unsqueeze(0).to(model.device)  # (1, W+1)
        logits = model(input_ids=window[:, :-1]).logits.float()  # (1, W, V)
        targets = window[:, 1:].clone()  # (1, W)
        fresh = end - max(prev_end, begin + 1)  # targets not scored by the previous window
        targets[:, : targets.shape[1] - fresh] = -100
        nll += F.cross_entropy(logits[0], targets[0], ignore_index=-100, reduction="sum").item()
        scored += fresh
        prev_end = end
        if end == len(tokens):
            break
    model.train(was_training)
    n_bytes = len(tokenizer.decode(tokens[1:1 + scored].tolist(), skip_special_tokens=True).encode("utf-8"))
    loss = nll / max(scored, 1)
    return {"loss": loss, "ppl": math.exp(loss), "bits_per_byte": nll / math.log(2) / max(n_bytes, 1),
            "tokens": scored, "bytes": n_bytes, "seq_len": seq_len, "stride": stride}


@torch.no_grad()
def response_perplexity(model_dir: Path, shards_dir: Path, seq_len: int, batch_size: int = 16) -> dict[str, float]:
    """Perplexity of the exported model on the responses of the instruction val split (protocol above)."""
    from torch.utils.data import DataLoader

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    pairs = SFTPairs(Path(shards_dir) / read_manifest(shards_dir)["sft"]["val"], tokenizer, seq_len)
    loss = mean_loss(model, DataLoader(pairs, batch_size=batch_size, collate_fn=pad_collate(tokenizer.pad_token_id)))
    return {"loss": loss, "ppl": math.exp(loss), "pairs": len(pairs), "seq_len": seq_len}


def unigram_perplexity(shards_dir: Path) -> float:
    """Perplexity on val of an add-one (Laplace) unigram model counted on train: the bar any LM must clear."""
    vocab = int(read_manifest(shards_dir)["vocab_size"])
    counts = np.zeros(vocab, dtype=np.float64)
    for shard in load_split(shards_dir, "train"):
        counts += np.bincount(np.asarray(shard), minlength=vocab)[:vocab]
    log_p = np.log(counts + 1.0) - np.log(counts.sum() + vocab)  # (V,)
    val = np.concatenate([np.asarray(s) for s in load_split(shards_dir, "val")]).astype(np.int64)
    return float(math.exp(-log_p[val].mean()))


@torch.no_grad()
def decode_speed(model_dir: Path, prompts: list[str], max_new_tokens: int = 32, repeats: int = 3) -> float:
    """Greedy HF ``generate`` throughput in new tokens per second, batch 1, one thread, after a warm-up call.

    ``min_new_tokens`` forces exactly ``max_new_tokens`` per prompt, so an early eos cannot flatter a model.
    Each prompt is timed ``repeats`` times and its fastest run counts: a burst of load from another process
    slows single runs, never the best one.
    """
    return paired_decode_speed({"model": model_dir}, prompts, max_new_tokens, repeats)["model"]


@torch.no_grad()
def paired_decode_speed(model_dirs: dict[str, Path], prompts: list[str], max_new_tokens: int = 32,
                        repeats: int = 3, reference: str | None = None, threads: int | None = 1) -> dict[str, Any]:
    """``decode_speed`` of several models measured side by side: ``{name: tok/s}``, plus ``speedup[name]``.

    The models take turns on every run (prompt by prompt, repeat by repeat, the order alternating), so a
    stretch of load from another process falls on all of them instead of on whichever was being timed.
    With ``reference`` set, ``speedup[name]`` is the median over prompts of reference's fastest time over
    name's: one prompt that met a burst of load cannot move it, where a ratio of two totals would move.

    ``threads`` intra-op threads (None: torch's setting). One by default: at batch 1 these models gain little
    from more, and with two, another process on the cores stalls every op at its thread barrier and skews the
    student/teacher ratio (figures: benchmarks/README.md, distillation).
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _paired_decode_speed(model_dirs, prompts, max_new_tokens, repeats, reference)
    finally:
        torch.set_num_threads(before)


def _paired_decode_speed(model_dirs: dict[str, Path], prompts: list[str], max_new_tokens: int, repeats: int,
                         reference: str | None) -> dict[str, Any]:
    models, encoded, pad = {}, {}, {}
    for name, model_dir in model_dirs.items():
        models[name] = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        encoded[name], pad[name] = [tokenizer(p, return_tensors="pt") for p in prompts], tokenizer.pad_token_id
    names = list(models)
    for name in names:
        _generate(models[name], encoded[name][0], pad[name], max_new_tokens)  # warm-up: allocator, kernels
    best = {name: [float("inf")] * len(prompts) for name in names}
    new_tokens = dict.fromkeys(names, 0)
    for i in range(len(prompts)):
        for r in range(repeats):
            for name in names if (i + r) % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                out = _generate(models[name], encoded[name][i], pad[name], max_new_tokens)
                best[name][i] = min(best[name][i], time.perf_counter() - start)
                if r == 0:
                    new_tokens[name] += out.shape[1] - encoded[name][i]["input_ids"].shape[1]
    speeds: dict[str, Any] = {name: new_tokens[name] / sum(best[name]) for name in names}
    if reference is not None:
        speeds["speedup"] = {name: float(np.median([b / t for b, t in zip(best[reference], best[name], strict=True)]))
                             for name in names}
    return speeds


def _generate(model: PreTrainedModel, enc: Any, pad_token_id: int | None, max_new_tokens: int) -> torch.Tensor:
    """Greedy, exactly ``max_new_tokens`` (``min_new_tokens``): an early eos cannot flatter a model."""
    return model.generate(**enc, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False,
                          pad_token_id=pad_token_id)
