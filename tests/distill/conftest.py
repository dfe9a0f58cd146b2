"""Distillation tests reuse the training fixtures (tiny shards, tokenizer, ``stage_cfg``) from tests/train."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_path = Path(__file__).parents[1] / "train" / "conftest.py"
_spec = importlib.util.spec_from_file_location("lmforge_train_fixtures", _path)
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

data_dir = _fixtures.data_dir
mlflow_dir = _fixtures.mlflow_dir
stage_cfg = _fixtures.stage_cfg
tokenizer = _fixtures.tokenizer
