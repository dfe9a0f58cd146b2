"""Where a model came from: git commit, DVC hashes of the data it saw, and the config that made it.

These values become MLflow tags on every run and model version, so a reviewer can trace a served model back
to the exact code and data. ``stage_tags`` builds them, once, inside each training stage, so a run started by
``lmforge pretrain``, ``dvc repro`` or the Prefect flow records the same tags:

    lmforge.git_commit    HEAD (``-dirty`` when tracked files differ)
    lmforge.profile       the config profile
    lmforge.data_hash     the shard manifest's sha256 (``data_hash``)
    lmforge.config_hash   the digest of the config section of the stage that made the run's model
                          (``cfg.pretrain``, ``cfg.finetune`` or ``cfg.distill``); a registered version
                          carries the one of the stage that trained it
    lmforge.dvc_input_md5 the hash DVC tracks the raw input by

``model_hash`` names a model by what a loader reads from its directory (weights, config, tokenizer), so a
stage keys its resume and cache decisions on the content of its parent, not on the parent's run id.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lmforge import envs
from lmforge.artifacts import COMPLETE

MODEL_METADATA = "lmforge.json"  # the self-description every exported model carries (``train.loop.stage_meta``)

if TYPE_CHECKING:
    from lmforge.config import LMForgeConfig


def git_commit(root: Path | None = None) -> str:
    """HEAD's commit, suffixed ``-dirty`` when tracked files differ; ``unknown`` outside a checkout."""
    root = root or envs.project_root()
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def dvc_lock_hashes(root: Path | None = None) -> dict[str, str]:
    """``{stage/out_path: md5}`` from ``dvc.lock``: the hashes DVC recorded for each stage output."""
    lock = (root or envs.project_root()) / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {
        f"{name}/{out['path']}": out.get("md5", "")
        for name, stage in stages.items()
        for out in stage.get("outs", [])
    }


def dir_hash(path: Path, leave_out: tuple[str, ...] = ()) -> str:
    """A content hash of a finished output directory: sha256 over (relative path, file sha256), sorted.

    The ``_COMPLETE`` marker and the top-level files named in ``leave_out`` are not part of it.
    """
    path = Path(path)
    skipped = {path / name for name in leave_out}
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p not in skipped and p.name != COMPLETE):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(bytes.fromhex(_file_digest(file, "sha256")))
    return digest.hexdigest()[:16]


def model_hash(model_dir: Path) -> str:
    """A model directory's content as a loader reads it: weights, config and tokenizer, not ``lmforge.json``
    (which names runs and tags, so it differs between two exports of the same weights). The
    ``lmforge.model_hash`` tag of a registered version, and the parent identity of every stage that trains
    from a model: a changed parent always retrains its children."""
    return dir_hash(model_dir, leave_out=(MODEL_METADATA,))


def model_tags(model_dir: Path) -> dict[str, str]:
    """Tags naming a model directory: its content (``lmforge.model_hash``) and, when its ``lmforge.json`` says,
    the ``lmforge.config_hash`` of the stage that trained it."""
    tags = {"lmforge.model_hash": model_hash(model_dir)}
    meta_file = Path(model_dir) / MODEL_METADATA
    if meta_file.is_file() and (trained_by := json.loads(meta_file.read_text()).get("config_hash")):
        tags["lmforge.config_hash"] = trained_by
    return tags


def data_hash(shards_dir: Path) -> str:
    """The data a model was trained on: the shard manifest's sha256 (it lists every shard's own sha256).

    The one definition used by training runs, exported ``lmforge.json`` files and registered versions.
    """
    return _file_digest(Path(shards_dir) / "manifest.json", "sha256")[:16]


def dvc_md5(path: Path) -> str:
    """The hash DVC 3 records for ``path`` in ``dvc.lock``: a file's md5, or a directory's ``.dir`` tree hash,
    computed by DVC's own ``dvc_data`` with the project's ``.dvcignore``, so lineage matches ``dvc status``.

    Hashes are remembered in a DVC state database (by inode, size and mtime) in the state dir, as DVC does."""
    from dvc_data.hashfile.build import build

    fs, odb, ignore = _dvc_hashing(envs.project_root())
    _, _, obj = build(odb, str(Path(path).resolve()), fs, "md5", dry_run=True, ignore=ignore)
    return obj.hash_info.value


@functools.cache
def _dvc_hashing(root: Path) -> tuple[Any, Any, Any]:
    """DVC's local filesystem, an object database with a state cache (never written to: builds are dry runs)
    and the ``.dvcignore`` filter of the repository at ``root``."""
    from dvc.ignore import DvcIgnoreFilter
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.state import State
    from dvc_objects.fs.local import LocalFileSystem

    fs = LocalFileSystem()
    ignore = DvcIgnoreFilter(fs, str(root))
    state_dir = envs.state_dir() / "dvc-hashes"
    state_dir.mkdir(parents=True, exist_ok=True)
    odb = HashFileDB(fs, str(state_dir / "odb"), state=State(str(root), str(state_dir), ignore))
    return fs, odb, ignore


def data_lineage(cfg: LMForgeConfig) -> dict[str, str]:
    """MLflow tags naming the data: the shard hash, and the hash DVC tracks the raw input by.

    ``lmforge.dvc_input_md5`` is the shipped sample's directory hash (as in ``dvc.lock``'s ingest deps) when
    the raw records came from it; for other inputs it is the md5 of each input file, as DVC records files.
    """
    paths = cfg.paths
    tags = {"lmforge.data_hash": data_hash(paths.shards) if (paths.shards / "manifest.json").is_file() else ""}
    raw = paths.raw / COMPLETE
    if raw.is_file():
        inputs = [Path(f) for f in json.loads(raw.read_text()).get("inputs", {})]
        sample = cfg.resolve(cfg.data.sample_dir)
        if inputs and all(f.is_relative_to(sample) for f in inputs) and sample.is_dir():
            tags["lmforge.dvc_input_md5"] = dvc_md5(sample)
        elif all(f.is_file() for f in inputs):
            tags["lmforge.dvc_input_md5"] = ",".join(dvc_md5(f) for f in inputs)
    return tags


def _file_digest(path: Path, algorithm: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


TRAINING_STAGES = ("pretrain", "finetune", "distill")


def config_hash(cfg: LMForgeConfig, stage: str) -> str:
    """``lmforge.config_hash``: the digest of the config section ``stage`` reads (``cfg.<stage>.digest()``)."""
    if stage not in TRAINING_STAGES:
        raise ValueError(f"config_hash names the config of a training stage ({TRAINING_STAGES}), not {stage!r}")
    return getattr(cfg, stage).digest()


def stage_tags(cfg: LMForgeConfig, stage: str) -> dict[str, str]:
    """The lineage tags every run of a training ``stage`` records, whichever entry point started it."""
    return {"lmforge.git_commit": git_commit(), "lmforge.profile": cfg.profile,
            "lmforge.config_hash": config_hash(cfg, stage), **data_lineage(cfg)}
