"""Register flow: every model in MLflow with its dossier; champion moves only through the gates.

    python -m flows.register

Cached like every stage; a cached registration counts only while its versions are still in the registry.
"""

from __future__ import annotations

from prefect import flow

from flows.common import load, run_stage, stage_task, summary
from lmforge.ops.stages import dvc_stages


@stage_task("register", stages=dvc_stages("register"), extra=("promote", "replace_champion", "tracking_uri"))
def register_task(cfg, promote: bool, replace_champion: bool, tracking_uri: str):
    from lmforge.registry.stage import has_champion, register_all

    # Decided here, not in the flow: whether a champion exists is registry state, not an input of the key
    # (else the run that made the first champion would never be a cache hit for the next one).
    return register_all(cfg, promote=promote and (replace_champion or not has_champion(cfg)))


@flow(name="lmforge-register", log_prints=True)
def register_flow(profile: str = "tiny", overrides: list[str] | None = None, promote: bool = True,
                  replace_champion: bool = True) -> dict:
    """``replace_champion=False`` (the pipeline's choice) promotes only a first champion: a later version stays
    ``challenger`` for the rollout to canary against the running champion."""
    from lmforge.registry.stage import recorded_versions_exist

    cfg = load(profile, overrides)
    versions = run_stage(register_task, cfg, promote, replace_champion, cfg.tracking_uri(),
                         still_valid=lambda: recorded_versions_exist(cfg))
    return {role: summary(version) for role, version in versions.items()}


if __name__ == "__main__":
    print(register_flow())
