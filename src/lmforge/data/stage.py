"""The data stage as one call: ingest -> clean -> validate -> tokenize -> pack.

    lmforge data                       # all steps; or --step clean (etc.) for one
    run_data_stage(load_config("tiny"))

The CLI, ``dvc.yaml`` and the Prefect flow all call these same functions; each step reads the previous
step's finished (``_COMPLETE``) output under ``cfg.paths`` and returns a small frozen result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lmforge.config import LMForgeConfig
from lmforge.data.clean import CleanResult, clean
from lmforge.data.ingest import IngestResult, ingest
from lmforge.data.pack import PackResult, pack
from lmforge.data.tokenizer import TokenizerResult, tokenize
from lmforge.data.validate import DataGateError, GateResult, validate

T = TypeVar("T")

__all__ = ["DataGateError", "DataResult", "clean", "ingest", "pack", "run_data_stage", "tokenize", "validate"]


@dataclass(frozen=True)
class DataResult:
    ingest: IngestResult
    clean: CleanResult
    validate: GateResult
    tokenize: TokenizerResult
    pack: PackResult
    seconds: dict[str, float]


def run_data_stage(cfg: LMForgeConfig, input_path: Path | None = None) -> DataResult:
    """Run every data step in order; a failed gate (``DataGateError``) stops before tokenizing."""
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., T], *args: Any) -> T:
        start = time.perf_counter()
        result = fn(*args)
        seconds[name] = round(time.perf_counter() - start, 2)
        return result

    ingested = timed("ingest", ingest, cfg, input_path)
    cleaned = timed("clean", clean, cfg)
    gate = timed("validate", validate, cfg)
    tok = timed("tokenize", tokenize, cfg)
    packed = timed("pack", pack, cfg)
    return DataResult(ingest=ingested, clean=cleaned, validate=gate, tokenize=tok, pack=packed,
                      seconds=seconds)
