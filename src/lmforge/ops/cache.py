"""Prefect's side of cached re-runs: a cache policy keyed by the ``dvc.yaml`` stages a task runs.

    @task(cache_policy=StageCache(("pretrain",)), persist_result=True)
    def pretrain_task(cfg): ...

The key is ``lmforge.ops.stages.group_key``: the deps' content hashes and the params' effective values (plus
the task inputs named in ``extra``, e.g. the data flow's ``input_path``, hashed by content). Prefect returns
the persisted result without running the body when it has one for the key; the flows ask for a refresh
instead when ``stages.is_current`` says the outputs were changed or deleted since.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy

from lmforge.ops.stages import content_hash, group_key


@dataclass
class StageCache(CachePolicy):
    stages: tuple[str, ...] = ()
    extra: tuple[str, ...] = field(default_factory=tuple)

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        cfg = inputs["cfg"]
        extra = {name: _input_value(inputs.get(name)) for name in self.extra}
        return group_key(cfg, self.stages, extra)


def _input_value(value: Any) -> Any:
    """An input as it enters the key: a path by its content (and its name), anything else as it is."""
    if isinstance(value, str | Path) and value and Path(value).exists():
        return {"path": str(value), "hash": content_hash(Path(value))}
    return value
