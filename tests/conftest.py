"""Shared fixtures: every test session gets its own tool state, and a tiny real HF model to work on.

The state directory (MLflow store, Prefect home, caches) is a fresh temporary folder, so tests never touch
the user's `.state/` and never reach the network.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SPECIALS = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% if message['role'] == 'assistant' %}<|endoftext|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
TEXT = (
    "The harbor was quiet in the morning. Ships came in with the tide and left at night. "
    "What does the json module do? It encodes and decodes JSON documents. "
) * 20


def pytest_configure(config: pytest.Config) -> None:
    # Before any lmforge import reads them: one state dir for the whole session.
    state = Path(tempfile.mkdtemp(prefix="lmforge-test-state-"))
    os.environ["LMFORGE_STATE_DIR"] = str(state)
    os.environ["LMFORGE_ROOT"] = str(config.rootpath)
    from lmforge import envs

    for name, value in envs.offline_defaults(state).items():
        os.environ[name] = value  # override, not setdefault: tests must not use the user's state
    state.mkdir(parents=True, exist_ok=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    state = os.environ.get("LMFORGE_STATE_DIR", "")
    if Path(state).name.startswith("lmforge-test-state-"):
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer with lmforge's special tokens and chat template (vocab ~400)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|pad|>", chat_template=CHAT_TEMPLATE)
    out = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A finished (``_COMPLETE``) 2-layer random-weight Llama in HF format that vLLM's CPU backend serves
    (head size 32: its CPU attention refuses 16)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from lmforge.artifacts import atomic_dir

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("models") / "tiny"
    with atomic_dir(out, {"kind": "test-fixture"}) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "lmforge.json").write_text(json.dumps({"run_id": None, "metrics": {"val_ppl": 400.0}}))
    return out


def wait_until(check: Callable[[], Any], timeout_s: float, what: str = "", poll_s: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy (returned), failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what or check.__name__}")


@pytest.fixture
def until() -> Callable[..., Any]:
    """``until(check, timeout_s, what)``: every server wait in a test has a timeout."""
    return wait_until
