"""What every flow shares: offline environment first, then the typed config; stage tasks that are cached by
their real inputs and retried only on transient faults.

    @stage_task("pretrain", stages=dvc_stages("pretrain"))   # the dvc.yaml stages `lmforge pretrain` runs
    def pretrain_task(cfg): ...

    result = run_stage(pretrain_task, cfg)     # in a flow: runs the body, or returns the cached result

A stage task's cache key is the key of the ``dvc.yaml`` stages it runs (``lmforge.ops.stages``); its result is
persisted by Prefect, and after the body finishes its outputs' hashes are recorded, so a re-run with nothing
changed executes no stage body, and one whose outputs were changed or deleted runs again. ``LEDGER`` lists
what each stage task of this process did (ran, cached or failed, and how long), for the run report.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any

from prefect import task

from lmforge import envs
from lmforge.config import LMForgeConfig, load_config
from lmforge.quiet import quiet_third_party

LEDGER: list[dict[str, Any]] = []


def load(profile: str, overrides: list[str] | None) -> LMForgeConfig:
    envs.apply_offline_defaults()
    quiet_third_party()
    return load_config(profile, overrides)


def stage_task(name: str, stages: tuple[str, ...], extra: tuple[str, ...] = ()) -> Callable:
    """A Prefect task for the ``dvc.yaml`` ``stages`` its body runs; its first argument must be the config."""
    from lmforge.ops.cache import StageCache
    from lmforge.ops.retry import retry_options

    def wrap(fn: Callable) -> Any:
        @functools.wraps(fn)
        def body(cfg: LMForgeConfig, *args: Any, **kwargs: Any) -> Any:
            from lmforge.ops.stages import write_records

            start = time.perf_counter()
            result = fn(cfg, *args, **kwargs)
            write_records(cfg, stages, time.perf_counter() - start)
            return result

        policy = StageCache(stages=stages, extra=extra)
        stage = task(name=name, cache_policy=policy, persist_result=True, **retry_options())(body)
        stage.lmforge_stages = stages
        return stage

    return wrap


def run_stage(stage: Any, cfg: LMForgeConfig, *args: Any, still_valid: Callable[[], bool] | None = None,
              **kwargs: Any) -> Any:
    """Run a ``stage_task``: Prefect skips its body when its key has a result and its outputs are unchanged."""
    from lmforge.ops.stages import is_current

    stages = stage.lmforge_stages
    current = is_current(cfg, stages) and (still_valid is None or still_valid())
    start = time.perf_counter()
    state = stage.with_options(refresh_cache=not current)(cfg, *args, return_state=True, **kwargs)
    entry = {"stage": stage.name, "status": "cached" if state.name == "Cached" else "ran",
             "seconds": round(time.perf_counter() - start, 1), "work_dir": str(cfg.paths.work_dir)}
    if not state.is_completed():
        entry["status"] = "failed"
        entry["error"] = (state.message or "")[:2000]
    LEDGER.append(entry)
    return state.result()


def summary(result: Any) -> Any:
    """A stage result as plain JSON-able data (for flow return values and Prefect artifacts)."""
    if is_dataclass(result) and not isinstance(result, type):
        return {k: str(v) if not isinstance(v, int | float | str | bool | dict | list) else v
                for k, v in asdict(result).items()}
    return result
