"""Register flow: every model in MLflow with its dossier; champion moves only through the gates.

    python -m flows.register
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import load, summary


@task(name="register", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=3)
def register_task(cfg, promote: bool):
    from lmforge.registry.stage import register_all

    return register_all(cfg, promote=promote)


@flow(name="lmforge-register", log_prints=True)
def register_flow(profile: str = "tiny", overrides: list[str] | None = None, promote: bool = True) -> dict:
    cfg = load(profile, overrides)
    return {role: summary(version) for role, version in register_task(cfg, promote).items()}


if __name__ == "__main__":
    print(register_flow())
