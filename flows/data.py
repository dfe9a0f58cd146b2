"""Data flow: ingest -> clean -> validate (Great Expectations gate) -> tokenize -> pack.

    python -m flows.data            # tiny profile
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import load, summary
from lmforge.data import stage


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(cfg, input_path: str | None):
    return stage.ingest(cfg, Path(input_path) if input_path else None)


@task(name="clean", cache_policy=NO_CACHE)
def clean_task(cfg):
    return stage.clean(cfg)


# A failed gate is a verdict on the data, not a transient fault: never retried.
@task(name="validate", cache_policy=NO_CACHE, retries=0)
def validate_task(cfg):
    return stage.validate(cfg)


@task(name="tokenize", cache_policy=NO_CACHE)
def tokenize_task(cfg):
    return stage.tokenize(cfg)


@task(name="pack", cache_policy=NO_CACHE)
def pack_task(cfg):
    return stage.pack(cfg)


@flow(name="lmforge-data", log_prints=True)
def data_flow(profile: str = "tiny", overrides: list[str] | None = None, input_path: str | None = None) -> dict:
    cfg = load(profile, overrides)
    results = {
        "ingest": ingest_task(cfg, input_path),
        "clean": clean_task(cfg),
        "validate": validate_task(cfg),
        "tokenize": tokenize_task(cfg),
        "pack": pack_task(cfg),
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
