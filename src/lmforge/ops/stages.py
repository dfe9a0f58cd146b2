"""What each pipeline stage reads and writes, taken from ``dvc.yaml``, and whether its outputs are current.

``dvc.yaml`` is the one list of every stage's deps, params and outs; the Prefect pipeline derives its cache
keys from it, so a stage ``dvc status`` calls changed is exactly one whose lmforge key changed:

    specs = load_specs(cfg)                  # {"ingest": StageSpec(...), ...}, ${work} -> cfg.paths.work_dir
    key = group_key(cfg, ["pretrain"])       # sha256 over the deps' DVC hashes and the params' values
    stale_stages(cfg)                        # ["finetune", ...]: no record, another key, or outputs changed

The key hashes each dep by content with DVC's own ``dvc_data`` (``lineage.dvc_md5``), so the code a stage
runs (``src/lmforge/train`` ...) is part of it but the git commit is not: a commit that does not touch a
stage's deps does not re-run it. Params are read from the *effective* config (profile plus overrides), not
from the YAML file. After a stage runs, ``write_record`` stores its key and its outputs' hashes in
``<work>/.lmforge/stages/<stage>.json``; a record whose outputs were changed or deleted no longer counts.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lmforge.artifacts import write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.lineage import dvc_md5


@dataclass(frozen=True)
class StageSpec:
    name: str
    deps: tuple[Path, ...]
    params: tuple[str, ...]  # dotted config keys, e.g. "distill.top_k"
    outs: tuple[Path, ...]


def load_specs(cfg: LMForgeConfig, dvc_yaml: Path | None = None) -> dict[str, StageSpec]:
    """Every stage of ``dvc.yaml`` in file order, with ``${profile}``/``${work}`` resolved for ``cfg``."""
    path = dvc_yaml or cfg.root / "dvc.yaml"
    doc = yaml.safe_load(path.read_text()) or {}
    values = {"profile": cfg.profile, "work": str(cfg.paths.work_dir)}

    def sub(text: str) -> str:
        for name, value in values.items():
            text = text.replace("${" + name + "}", value)
        return text

    def paths(entries: Iterable[Any]) -> tuple[Path, ...]:
        names = (next(iter(e)) if isinstance(e, dict) else e for e in entries or ())
        return tuple(cfg.resolve(Path(sub(n))) for n in names)

    specs = {}
    for name, stage in (doc.get("stages") or {}).items():
        params = tuple(key for entry in stage.get("params") or () for key in _param_keys(entry))
        outs = paths(stage.get("outs")) + paths(stage.get("metrics"))
        specs[name] = StageSpec(name, paths(stage.get("deps")), params, outs)
    return specs


def dvc_stages(command: str, step: str | None = None, dvc_yaml: Path | None = None) -> tuple[str, ...]:
    """The ``dvc.yaml`` stages that ``lmforge COMMAND [--step STEP]`` runs, read from their ``cmd`` lines: the
    stage whose cmd names that step, or with no step (or ``all``) every stage whose cmd is that command.

        dvc_stages("data", "clean")   # ("clean",)
        dvc_stages("distill")         # ("teacher_cache", "distill"): the cache is built first when needed

    ``dvc.yaml`` is the one map from stages to commands; the CLI and the Prefect tasks read it here."""
    from lmforge import envs

    doc = yaml.safe_load((dvc_yaml or envs.project_root() / "dvc.yaml").read_text()) or {}
    found = []
    for name, stage in (doc.get("stages") or {}).items():
        words = shlex.split(stage["cmd"])
        stage_step = words[words.index("--step") + 1] if "--step" in words else None
        if words[1] == command and (step in (None, "all") or stage_step == step):
            found.append(name)
    return tuple(found)


def _param_keys(entry: str | dict[str, list[str]]) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    return [key for keys in entry.values() for key in keys]


def param_value(cfg: LMForgeConfig, dotted: str) -> Any:
    node: Any = cfg.model_dump(mode="json")
    for part in dotted.split("."):
        node = node[part]
    return node


def group_key(cfg: LMForgeConfig, stages: Iterable[str], extra: dict[str, Any] | None = None) -> str:
    """The cache key of running ``stages`` (a DVC stage, or several that one task runs in order) for ``cfg``.

    Deps made by an earlier stage of the same group are not hashed: they are the group's own work.
    """
    specs = load_specs(cfg)
    made: set[Path] = set()
    deps: dict[str, str] = {}
    params: dict[str, Any] = {}
    for name in stages:
        spec = specs[name]
        for dep in spec.deps:
            if dep not in made:
                deps[str(dep)] = content_hash(dep)
        params.update({key: param_value(cfg, key) for key in spec.params})
        made.update(spec.outs)
    blob = {"stages": list(stages), "work": str(cfg.paths.work_dir), "deps": deps, "params": params,
            "extra": extra or {}}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def content_hash(path: Path) -> str:
    """DVC's hash of a file or directory (``lineage.dvc_md5``: ``.dvcignore`` honoured); "missing" if absent."""
    return dvc_md5(path) if Path(path).exists() else "missing"


def record_path(cfg: LMForgeConfig, stage: str) -> Path:
    return cfg.paths.work_dir / ".lmforge" / "stages" / f"{stage}.json"


def outs_hashes(cfg: LMForgeConfig, stage: str) -> dict[str, str]:
    return {str(out): content_hash(out) for out in load_specs(cfg)[stage].outs}


def write_records(cfg: LMForgeConfig, stages: Iterable[str], seconds: float) -> None:
    """Remember, per stage, the key it ran for and what it wrote; called only after all of them finished."""
    for stage in stages:
        write_json_atomic(record_path(cfg, stage), {
            "key": group_key(cfg, [stage]), "outs": outs_hashes(cfg, stage), "seconds": round(seconds, 1),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def read_record(cfg: LMForgeConfig, stage: str) -> dict[str, Any] | None:
    try:
        return json.loads(record_path(cfg, stage).read_text())
    except (OSError, ValueError):
        return None


def is_current(cfg: LMForgeConfig, stages: Iterable[str]) -> bool:
    """True when each stage last finished for its current key and its outputs are still what it wrote."""
    for stage in stages:
        record = read_record(cfg, stage)
        if not record or record.get("key") != group_key(cfg, [stage]) or record.get("outs") != outs_hashes(
                cfg, stage):
            return False
    return True


def stale_stages(cfg: LMForgeConfig) -> list[str]:
    """The ``dvc.yaml`` stages whose inputs or outputs differ from their last recorded run, in order.

    Like ``dvc status``, a stage downstream of a stale one is listed only once its own inputs differ.
    """
    return [name for name in load_specs(cfg) if not is_current(cfg, [name])]


@dataclass(frozen=True)
class StageStatus:
    """What ``lmforge status`` prints: the stages a pipeline run would execute, and when the others finished."""

    work_dir: Path
    stale: list[str]  # in dvc.yaml order
    current: dict[str, str | None]  # stage -> finished_at (UTC) of its last recorded run


def status(cfg: LMForgeConfig) -> StageStatus:
    stale = stale_stages(cfg)
    return StageStatus(cfg.paths.work_dir, stale, {name: (read_record(cfg, name) or {}).get("finished_at")
                                                   for name in load_specs(cfg) if name not in stale})
