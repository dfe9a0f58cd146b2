"""Rollout flow: serve the champion on vLLM behind the compliance gateway, roll the challenger out beside it
(canary or shadow steps, then promote or roll back), and answer one real request.

    python -m flows.rollout

With ``require_approval=True`` (the scheduled rollout deployment) the flow run first pauses in the Prefect UI
with what it would roll out, and waits for a reviewer's ``RolloutApproval``: an approval is recorded on the
challenger's MLflow version (the promotion gate reads it) and the rollout runs; a rejection ends the run
without touching what is served.
"""

from __future__ import annotations

from prefect import flow, pause_flow_run, task
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput

from flows.common import load


class RolloutApproval(RunInput):
    approve: bool = False
    reviewer: str = ""
    note: str = ""


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
def rollout_flow(profile: str = "tiny", overrides: list[str] | None = None, require_approval: bool = False,
                 approval_timeout_s: int = 86_400) -> dict:
    cfg = load(profile, overrides)
    if require_approval:
        rejected = _wait_for_approval(cfg, approval_timeout_s)
        if rejected:
            print(f"rollout: rejected: {rejected['rollout']['reason']}")
            return rejected
    result = rollout_task(cfg)
    print(f"rollout: {result['rollout']['decision']}: {result['rollout']['reason']}")
    return result


def _wait_for_approval(cfg, timeout_s: int) -> dict | None:
    """Pause until a reviewer answers; None when approved (and recorded), else the rejection as a result."""
    from lmforge.registry.promote import approve
    from lmforge.rollout.canary import plan_rollout, record_verdict

    plan = plan_rollout(cfg)
    if plan.skip:
        return None  # nothing to approve: the run only makes sure the champion is served
    question = (f"Roll out {plan.model} v{plan.challenger} against champion v{plan.champion} "
                f"({cfg.rollout.mode}, steps {cfg.rollout.steps} %)?")
    print(f"rollout: waiting for approval: {question}")
    answer = pause_flow_run(wait_for_input=RolloutApproval.with_initial_data(description=question),
                            timeout=timeout_s)
    if not answer.approve or not answer.reviewer.strip():
        reason = (f"rejected by {answer.reviewer.strip() or 'an unnamed reviewer'}: {answer.note or 'no reason given'}"
                  if not answer.approve else "an approval needs the reviewer's name: nothing rolled out")
        record_verdict(plan.model, plan.challenger, {"decision": "rejected", "reason": reason,
                                                     "against_champion": plan.champion})
        return {"model": plan.model, "version": plan.champion,
                "rollout": {"decision": "rejected", "challenger": plan.challenger, "reason": reason}}
    approve(cfg, plan.model, plan.challenger, by=answer.reviewer, reason=answer.note or "approved in Prefect")
    return None


if __name__ == "__main__":
    print(rollout_flow())
