"""The whole data stage on the dirty fixture: the same call the CLI, DVC and Prefect make."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.artifacts import is_complete
from lmforge.config import LMForgeConfig
from lmforge.data.stage import run_data_stage


@pytest.mark.integration
def test_run_data_stage_end_to_end(cfg: LMForgeConfig, dirty_input: Path) -> None:
    result = run_data_stage(cfg, dirty_input)
    assert result.ingest.docs == 50 and result.clean.docs_kept == 34 and result.validate.success
    assert result.pack.train_docs + result.pack.val_docs == 34
    assert result.pack.sft_train_pairs + result.pack.sft_val_pairs == result.clean.pairs_kept == 8
    assert set(result.seconds) == {"ingest", "clean", "validate", "tokenize", "pack"}
    paths = cfg.paths
    assert all(is_complete(p) for p in (paths.raw, paths.clean, paths.validation, paths.tokenizer,
                                        paths.shards))
