"""Tiny training and distillation fixtures built in code: shards + SFT pairs from the session tokenizer,
and a config on them.

``stage_cfg`` is an ``LMForgeConfig`` whose work dir (a fresh ``tmp_path``) already holds ``tokenizer/`` and
``shards/`` with ``_COMPLETE``, sized so a whole stage runs in seconds on one CPU core. MLflow goes to a
sqlite file in a per-session folder (``LMFORGE_MLFLOW_URI``, ``LMFORGE_STATE_DIR``).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from lmforge.artifacts import atomic_dir
from lmforge.config import LMForgeConfig

SENTENCES = [
    "The harbor was quiet in the morning.", "Ships came in with the tide and left at night.",
    "What does the json module do?", "It encodes and decodes JSON documents.",
    "The morning tide was quiet.", "Ships left the harbor at night.",
]
PAIRS = [("What does the json module do?", "It encodes and decodes JSON documents."),
         ("When do ships leave?", "Ships leave the harbor at night."),
         ("Describe the harbor.", "The harbor was quiet in the morning.")]

TINY = {
    "pretrain": {"model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 2,
                           "intermediate_size": 64, "max_seq_len": 64},
                 "train": {"max_steps": 6, "batch_size": 4, "seq_len": 32, "lr": 3e-3, "warmup_steps": 2,
                           "val_every": 3, "val_batches": 2, "ckpt_every": 3, "precision": "32-true"}},
    "finetune": {"train": {"max_steps": 4, "batch_size": 4, "seq_len": 32, "lr": 1e-3, "warmup_steps": 1,
                           "val_every": 2, "val_batches": 1, "ckpt_every": 2, "precision": "32-true"}},
    "distill": {"student": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2,
                            "intermediate_size": 32, "max_seq_len": 64},
                "train": {"max_steps": 4, "batch_size": 4, "seq_len": 32, "lr": 3e-3, "warmup_steps": 1,
                          "val_every": 2, "val_batches": 1, "ckpt_every": 2, "precision": "32-true"},
                "top_k": 8, "decode_new_tokens": 4},
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """``tokenizer/`` and ``shards/`` (uint16 train/val bins, SFT JSONL, manifest) as the data stage makes them."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    root = tmp_path_factory.mktemp("data")
    with atomic_dir(root / "tokenizer", {"kind": "test"}) as tmp:
        for f in tiny_tokenizer_dir.iterdir():
            shutil.copy2(f, tmp / f.name)
    rng = random.Random(0)
    docs = [" ".join(rng.choices(SENTENCES, k=rng.randint(2, 6))) for _ in range(120)]
    splits = {"train": docs[:100], "val": docs[100:]}
    with atomic_dir(root / "shards", {"kind": "test"}) as tmp:
        meta = {}
        for split, texts in splits.items():
            ids = [t for d in texts for t in tok(d)["input_ids"] + [tok.eos_token_id]]
            np.asarray(ids, dtype=np.uint16).tofile(tmp / f"{split}_000.bin")
            meta[split] = {"files": [f"{split}_000.bin"], "tokens": len(ids)}
        for split in ("train", "val"):
            lines = [json.dumps({"id": f"{split}-{i}", "prompt": p, "response": r})
                     for i, (p, r) in enumerate(PAIRS * 4)]
            (tmp / f"sft_{split}.jsonl").write_text("\n".join(lines) + "\n")
        manifest = {"dtype": "uint16", "vocab_size": len(tok), "eos_id": tok.eos_token_id, "bos_id": tok.bos_token_id,
                    "pad_id": tok.pad_token_id, "splits": meta,
                    "sft": {"train": "sft_train.jsonl", "val": "sft_val.jsonl"}}
        (tmp / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="session")
def mlflow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def stage_cfg(tmp_path: Path, data_dir: Path, mlflow_dir: Path, monkeypatch: pytest.MonkeyPatch) -> LMForgeConfig:
    monkeypatch.setenv("LMFORGE_MLFLOW_URI", f"sqlite:///{mlflow_dir / 'mlflow.db'}")
    monkeypatch.setenv("LMFORGE_STATE_DIR", str(mlflow_dir / "state"))
    work = tmp_path / "work"
    for name in ("tokenizer", "shards"):
        shutil.copytree(data_dir / name, work / name)
    return LMForgeConfig.model_validate({"profile": "test", "work_dir": str(work), **TINY})


@pytest.fixture
def tokenizer(data_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(data_dir / "tokenizer")
