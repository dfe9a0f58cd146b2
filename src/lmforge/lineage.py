"""Where a model came from: git commit, DVC hashes of the data it saw, and the config that made it.

These values become MLflow tags (``lmforge.git_commit``, ``lmforge.data_hash`` ...) on every run and model
version, so a reviewer can trace a served model back to the exact code and data.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import yaml

from lmforge import envs
from lmforge.artifacts import COMPLETE


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


def dir_hash(path: Path) -> str:
    """A content hash of a finished output directory: sha256 over (relative path, file sha256), sorted.

    Used when a stage ran outside ``dvc repro`` (the Prefect flow) so lineage never depends on how it ran.
    """
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != COMPLETE):
        digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as fh:
            digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()[:16]


def config_hash(section: object) -> str:
    dump = section.model_dump(mode="json") if hasattr(section, "model_dump") else section
    return hashlib.sha256(json.dumps(dump, sort_keys=True, default=str).encode()).hexdigest()[:16]
