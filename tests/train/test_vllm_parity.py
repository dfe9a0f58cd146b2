"""Parity: a model the training code exported gives the same greedy tokens in transformers and in vLLM.

A short pretraining run (a trained model has clear greedy choices; random weights are full of near-ties)
exports through ``run_pretrain``; one real vLLM OpenAI server (``VLLMEngine``, on CPU, as serving starts it)
loads the directory. Each prompt goes to ``/v1/completions`` as text, so vLLM tokenises it from the exported
tokenizer files; ``return_token_ids`` hands back the prompt and completion token ids. Transformers then
decodes greedily from the same prompt ids. ``min_tokens`` / ``min_new_tokens`` hold eos back on both sides,
so every prompt compares the full 16 tokens. A divergence passes only at a true tie: where transformers gives
both tokens the same log-prob to within 1e-3 (float32 kernels differ in the last bits), and never for all
prompts. vLLM takes 60-150 s to start on a loaded CPU:
    pytest -m integration tests/train/test_vllm_parity.py -s
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmforge.config import LMForgeConfig, ModelConfig, ServeConfig
from lmforge.serve.engine import VLLMEngine
from lmforge.train.pretrain import run_pretrain

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PROMPTS = ["The harbor was", "Ships came in with", "What does the json module"]
NEW_TOKENS = 16
TIE = 1e-3  # nats
# Head size 32: vLLM's CPU attention refuses 16 (see lmforge.serve.engine.CPU_HEAD_SIZES).
MODEL = ModelConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=128, max_seq_len=64)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _exported_model(cfg: LMForgeConfig) -> Path:
    train = cfg.pretrain.train.model_copy(update={"max_steps": 40, "val_every": 1000, "ckpt_every": 1000})
    pretrain = cfg.pretrain.model_copy(update={"model": MODEL, "train": train})
    return run_pretrain(cfg.model_copy(update={"pretrain": pretrain})).model_dir


@torch.no_grad()
def _hf_greedy(model, prompt_ids: list[int]) -> tuple[list[int], torch.Tensor]:
    """The new token ids and each step's log-probs (NEW_TOKENS, V), eos held back like vLLM's min_tokens."""
    ids = torch.tensor([prompt_ids])  # (1, T)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                         min_new_tokens=NEW_TOKENS, do_sample=False, output_scores=True,
                         return_dict_in_generate=True)
    logprobs = torch.log_softmax(torch.cat(out.scores).float(), dim=-1)  # (NEW_TOKENS, V)
    return out.sequences[0, len(prompt_ids):].tolist(), logprobs


def test_vllm_and_transformers_agree_on_greedy_tokens(stage_cfg: LMForgeConfig, tmp_path: Path) -> None:
    model_dir = _exported_model(stage_cfg)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    serve = ServeConfig(max_model_len=MODEL.max_seq_len, startup_timeout_s=600)  # 350 s seen under load
    began = time.monotonic()
    with VLLMEngine(model_dir, ["parity"], serve, port=_free_port(), log_path=tmp_path / "vllm.log") as engine:
        engine.wait_ready()
        print(f"\n[parity] vLLM ready in {time.monotonic() - began:.0f}s")
        replies = [httpx.post(f"{engine.base_url}/v1/completions", timeout=120, json={
            "model": "parity", "prompt": prompt, "max_tokens": NEW_TOKENS, "min_tokens": NEW_TOKENS,
            "temperature": 0.0, "return_token_ids": True}).raise_for_status().json()["choices"][0]
            for prompt in PROMPTS]

    ties = 0
    for prompt, reply in zip(PROMPTS, replies, strict=True):
        assert reply["prompt_token_ids"] == tokenizer(prompt)["input_ids"], prompt  # one tokenizer, both sides
        hf_ids, logprobs = _hf_greedy(model, reply["prompt_token_ids"])
        vllm_ids = reply["token_ids"]
        assert len(vllm_ids) == len(hf_ids) == NEW_TOKENS
        print(f"[parity] {prompt!r}: HF {hf_ids}\n{'':>{len(prompt) + 12}}vLLM {vllm_ids}")
        diverged = next((i for i, (a, b) in enumerate(zip(hf_ids, vllm_ids, strict=True)) if a != b), None)
        if diverged is None:
            assert reply["text"] == tokenizer.decode(hf_ids, skip_special_tokens=True)
            continue
        gap = float(logprobs[diverged, hf_ids[diverged]] - logprobs[diverged, vllm_ids[diverged]])
        assert gap < TIE, (f"{prompt!r}: token {diverged} is {hf_ids[diverged]} in transformers but "
                           f"{vllm_ids[diverged]} in vLLM, {gap:.4f} nats apart: not a tie")
        ties += 1
    assert ties < len(PROMPTS), "every prompt diverged at a tie: the comparison proved nothing"
