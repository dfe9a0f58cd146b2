"""Data flow: ingest -> clean -> validate (Great Expectations gate) -> tokenize -> pack.

    python -m flows.data            # tiny profile

Each step is cached by its ``dvc.yaml`` inputs (``flows.common.stage_task``); a failed gate is a verdict on
the data, not a transient fault, and is never retried.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.common import load, run_stage, stage_task, summary
from lmforge.data import stage
from lmforge.ops.stages import dvc_stages


@stage_task("ingest", stages=dvc_stages("data", "ingest"), extra=("input_path",))
def ingest_task(cfg, input_path: str | None):
    return stage.ingest(cfg, Path(input_path) if input_path else None)


@stage_task("clean", stages=dvc_stages("data", "clean"))
def clean_task(cfg):
    return stage.clean(cfg)


@stage_task("validate", stages=dvc_stages("data", "validate"))
def validate_task(cfg):
    return stage.validate(cfg)


@stage_task("tokenize", stages=dvc_stages("data", "tokenize"))
def tokenize_task(cfg):
    return stage.tokenize(cfg)


@stage_task("pack", stages=dvc_stages("data", "pack"))
def pack_task(cfg):
    return stage.pack(cfg)


@flow(name="lmforge-data", log_prints=True)
def data_flow(profile: str = "tiny", overrides: list[str] | None = None, input_path: str | None = None) -> dict:
    cfg = load(profile, overrides)
    results = {
        "ingest": run_stage(ingest_task, cfg, input_path),
        "clean": run_stage(clean_task, cfg),
        "validate": run_stage(validate_task, cfg),
        "tokenize": run_stage(tokenize_task, cfg),
        "pack": run_stage(pack_task, cfg),
    }
    out = {name: summary(result) for name, result in results.items()}
    create_markdown_artifact(
        key="data-counts",
        markdown="## Data stage\n\n" + "\n".join(f"- **{k}**: `{v}`" for k, v in out.items()),
        description=f"lmforge data stage, profile {profile}",
    )
    return out


if __name__ == "__main__":
    print(data_flow())
