"""Rollout flow: serve the champion on vLLM behind the compliance gateway and answer one real request.

    python -m flows.rollout
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import load


@task(name="serve-champion", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def serve_task(cfg) -> dict:
    from lmforge.rollout import serve_champion

    return serve_champion(cfg)


@flow(name="lmforge-rollout", log_prints=True)
def rollout_flow(profile: str = "tiny", overrides: list[str] | None = None) -> dict:
    return serve_task(load(profile, overrides))


if __name__ == "__main__":
    print(rollout_flow())
