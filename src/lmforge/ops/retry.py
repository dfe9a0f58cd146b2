"""Which failures a stage retries, and how long it waits: transient faults only, with jittered backoff.

Transient: a server that is not up yet or stopped answering (connection refused or reset, timeouts, MLflow's
``TrackingUnavailable``, HTTP 5xx / TEMPORARILY_UNAVAILABLE, a vLLM or gateway that did not start) and a
SQLite database locked by another writer. Everything else is a verdict or a bug and fails at once: a Great
Expectations gate (``DataGateError``), the distillation gate (``GateFailed``), a refused promotion, denied
registry access, bad config, missing or incomplete inputs.

    @task(**retry_options())          # retries, retry_delay_seconds, retry_jitter_factor, retry_condition_fn
"""

from __future__ import annotations

import sqlite3
from typing import Any

# Cause names, not imports: the classifier must not import MLflow, SQLAlchemy, httpx or vLLM to answer.
TRANSIENT_TYPES = frozenset({
    "ConnectionError", "ConnectionRefusedError", "ConnectionResetError", "ConnectionAbortedError",
    "BrokenPipeError", "TimeoutError", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout",
    "ConnectError", "RemoteProtocolError", "ReadError", "TrackingUnavailable", "EngineError",
})
TRANSIENT_TEXT = ("database is locked", "database table is locked", "temporarily_unavailable",
                  "too many requests", "connection refused", "503 service unavailable", "502 bad gateway")
NEVER = frozenset({"DataGateError", "GateFailed", "PromotionRefused", "RegistryAccessDenied", "CacheMismatch",
                   "IncompleteArtifactError", "ValidationError", "StudentTooLarge", "NotAModelError",
                   "PolicyError", "FileNotFoundError", "AuthConfigError", "InsecureAuthConfig"})


def is_transient(exc: BaseException | None) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a fault that may pass by itself."""
    seen = 0
    while exc is not None and seen < 10:
        names = {cls.__name__ for cls in type(exc).__mro__}
        if names & NEVER:
            return False
        if names & TRANSIENT_TYPES:
            return True
        if isinstance(exc, sqlite3.OperationalError) or "OperationalError" in names or "MlflowException" in names:
            if any(text in str(exc).lower() for text in TRANSIENT_TEXT):
                return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect 3 ``retry_condition_fn``: retry the task run only when it failed transiently."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


def retry_options(retries: int = 3, first_s: float = 2.0, jitter: float = 0.5) -> dict[str, Any]:
    """Keyword arguments for ``@task``: retries with Prefect's ``exponential_backoff`` (``first_s``, doubling:
    2, 4, 8 s by default) and ``jitter`` spread."""
    from prefect.tasks import exponential_backoff

    return {"retries": retries, "retry_delay_seconds": exponential_backoff(backoff_factor=first_s),
            "retry_jitter_factor": jitter, "retry_condition_fn": retry_condition}
