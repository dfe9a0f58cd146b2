"""Rollout flow: serve the champion on vLLM behind the compliance gateway, roll the challenger out beside it
(canary or shadow steps, then promote or roll back), and answer one real request.

    python -m flows.rollout
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import load


def _server_failed_to_start(task, task_run, state) -> bool:
    """Retry only when vLLM or the gateway did not come up (a slow start on busy cores). A rollout that judged
    its challenger has already promoted or rolled back: running it again is a decision, not a retry."""
    from lmforge.serve.engine import EngineError

    try:
        state.result()
    except EngineError:
        return True
    except Exception:
        return False
    return False


@task(name="rollout", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5,
      retry_condition_fn=_server_failed_to_start)
def rollout_task(cfg) -> dict:
    from lmforge.rollout import run_rollout

    return run_rollout(cfg)


@flow(name="lmforge-rollout", log_prints=True)
def rollout_flow(profile: str = "tiny", overrides: list[str] | None = None) -> dict:
    result = rollout_task(load(profile, overrides))
    print(f"rollout: {result['rollout']['decision']}: {result['rollout']['reason']}")
    return result


if __name__ == "__main__":
    print(rollout_flow())
