"""`dvc repro` runs the same data stages as the flow, and a second repro with nothing changed does nothing.

Runs in a scratch copy of the project (its own git repo, DVC cache and local remote) so the user's
`runs/` and `.dvc/cache` are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmforge import lineage

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture
def scratch_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("pyproject.toml", "dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    for name in ("configs", "data", "src", ".dvc"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("cache", "tmp", "__pycache__"))
    # A small data stage: fewer records, same code.
    tiny = yaml.safe_load((repo / "configs" / "tiny.yaml").read_text())
    tiny["data"].update({"max_docs": 60, "max_pairs": 200, "vocab_size": 512})
    (repo / "configs" / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", LMFORGE_ROOT=str(repo))
    _run(["git", "init", "-q"], repo, env)
    return repo, env


def test_dvc_repro_data_stages_then_nothing_to_do(scratch_repo: tuple[Path, dict[str, str]]) -> None:
    repo, env = scratch_repo
    dvc = [sys.executable, "-m", "dvc"]
    first = _run([*dvc, "repro", "pack"], repo, env)
    for stage in ("ingest", "clean", "validate", "tokenize", "pack"):
        assert f"Running stage '{stage}'" in first
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["pack"]["outs"][0]["md5"].endswith(".dir")
    # The lineage tags name the data by the same hashes DVC records.
    sample = next(d for d in lock["ingest"]["deps"] if d["path"] == "data/sample")
    assert lineage.dvc_md5(repo / "data" / "sample") == sample["md5"]
    shards = lock["pack"]["outs"][0]
    assert lineage.dvc_md5(repo / shards["path"]) == shards["md5"]
    assert (repo / "runs" / "tiny" / "shards" / "manifest.json").is_file()

    second = _run([*dvc, "repro", "pack"], repo, env)
    assert "Running stage" not in second
    assert "up to date" in second

    _run([*dvc, "push"], repo, env)
    assert any((repo / ".dvcstore").rglob("*")), "nothing reached the local DVC remote"
    status = _run([*dvc, "status", "-c"], repo, env)
    assert "new:" not in status and "missing:" not in status

    # DVC and lmforge agree on what is stale: the stage commands dvc ran left lmforge's records, and one
    # changed param makes the same stages stale for both.
    lmforge = [str(Path(sys.executable).parent / "lmforge"), "status"]
    assert json.loads(_run(lmforge, repo, env))["stale"] == ["pretrain", "finetune", "teacher_cache", "distill", "eval",
                                                             "register", "quantize"]
    tiny = yaml.safe_load((repo / "configs" / "tiny.yaml").read_text())
    tiny["data"]["vocab_size"] = 600
    (repo / "configs" / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    data_stages = {"ingest", "clean", "validate", "tokenize", "pack"}
    dvc_status = subprocess.run([*dvc, "status", "--json"], cwd=repo, env=env, capture_output=True, text=True,
                                timeout=300)
    dvc_stale = set(json.loads(dvc_status.stdout)) & data_stages
    ours = set(json.loads(_run(lmforge, repo, env))["stale"]) & data_stages
    assert dvc_stale == ours == {"ingest", "clean", "validate", "tokenize", "pack"}  # validate reads data params
