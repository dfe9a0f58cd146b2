"""Fixtures for the data-stage tests: a config writing under tmp_path, and the dirty input file."""

from __future__ import annotations

from pathlib import Path

import pytest
from dirty import dirty_corpus, dirty_pairs, write_jsonl

from lmforge.config import LMForgeConfig, load_config


@pytest.fixture
def cfg(tmp_path: Path) -> LMForgeConfig:
    return load_config("tiny", overrides=[f"work_dir={tmp_path / 'work'}", "data.vocab_size=300",
                                          "data.val_fraction=0.1", "data.shard_tokens=2000"])


@pytest.fixture
def dirty_input(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "input.jsonl", dirty_corpus() + dirty_pairs())
