"""Stage specs from dvc.yaml and the cache keys derived from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from lmforge.config import load_config
from lmforge.ops import stages


@pytest.fixture
def cfg(tmp_path: Path):
    return load_config("tiny", [f"work_dir={tmp_path / 'work'}"])


def test_specs_follow_dvc_yaml_with_work_resolved(cfg) -> None:
    specs = stages.load_specs(cfg)
    assert list(specs) == list(yaml.safe_load((cfg.root / "dvc.yaml").read_text())["stages"])
    pretrain = specs["pretrain"]
    assert cfg.paths.shards in pretrain.deps and cfg.root / "src/lmforge/train" in pretrain.deps
    assert pretrain.params == ("pretrain",) and pretrain.outs == (cfg.paths.models / "pretrain",)
    assert specs["teacher_cache"].params == ("distill.top_k", "distill.sft_share", "distill.train")
    assert cfg.paths.reports / "distill.json" in specs["distill"].outs  # metrics count as outputs


def test_key_changes_with_its_own_params_only(tmp_path: Path) -> None:
    base = load_config("tiny", [f"work_dir={tmp_path}"])
    lr = load_config("tiny", [f"work_dir={tmp_path}", "finetune.train.lr=0.123"])
    assert stages.group_key(base, ["pretrain"]) == stages.group_key(lr, ["pretrain"])
    assert stages.group_key(base, ["finetune"]) != stages.group_key(lr, ["finetune"])
    other_dir = load_config("tiny", [f"work_dir={tmp_path / 'other'}"])
    assert stages.group_key(base, ["pretrain"]) != stages.group_key(other_dir, ["pretrain"])


def test_key_follows_dep_content_not_pycache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A project whose work dir lies inside it, as runs/<profile> does: DVC applies its .dvcignore there.
    root = tmp_path / "project"
    shutil.copytree(Path(__file__).resolve().parents[2] / "configs", root / "configs")
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy2(Path(__file__).resolve().parents[2] / name, root / name)
    monkeypatch.setenv("LMFORGE_ROOT", str(root))
    cfg = load_config("tiny", [f"work_dir={root / 'runs' / 'tiny'}"])
    shards = cfg.paths.shards
    shards.mkdir(parents=True)
    (shards / "manifest.json").write_text("{}")
    before = stages.group_key(cfg, ["pretrain"])
    (shards / "__pycache__").mkdir()
    (shards / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert stages.group_key(cfg, ["pretrain"]) == before
    (shards / "manifest.json").write_text('{"tokens": 1}')
    assert stages.group_key(cfg, ["pretrain"]) != before


def test_group_key_does_not_hash_what_the_group_makes(cfg) -> None:
    """The distill task builds the teacher cache itself: its key must not depend on the cache's contents."""
    before = stages.group_key(cfg, ["teacher_cache", "distill"])
    cfg.paths.teacher_cache.mkdir(parents=True)
    (cfg.paths.teacher_cache / "index.npy").write_bytes(b"1")
    assert stages.group_key(cfg, ["teacher_cache", "distill"]) == before


def test_a_record_counts_only_while_outputs_are_unchanged(cfg) -> None:
    out = cfg.paths.models / "pretrain"
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"weights")
    assert not stages.is_current(cfg, ["pretrain"])
    stages.write_records(cfg, ["pretrain"], seconds=1.0)
    assert stages.is_current(cfg, ["pretrain"])
    assert "pretrain" not in stages.stale_stages(cfg)
    (out / "model.safetensors").write_bytes(b"other weights")
    assert not stages.is_current(cfg, ["pretrain"])
    stages.write_records(cfg, ["pretrain"], seconds=1.0)
    shutil.rmtree(out)
    assert not stages.is_current(cfg, ["pretrain"])


def test_a_changed_param_makes_the_stage_stale(tmp_path: Path) -> None:
    cfg = load_config("tiny", [f"work_dir={tmp_path}"])
    (cfg.paths.models / "teacher").mkdir(parents=True)
    stages.write_records(cfg, ["finetune"], seconds=1.0)
    assert stages.is_current(cfg, ["finetune"])
    changed = load_config("tiny", [f"work_dir={tmp_path}", "finetune.train.max_steps=7"])
    assert not stages.is_current(changed, ["finetune"])
    assert stages.is_current(cfg, ["finetune"])


def test_commands_map_to_the_dvc_stages_their_cmd_lines_name() -> None:
    assert stages.dvc_stages("data") == ("ingest", "clean", "validate", "tokenize", "pack")
    assert stages.dvc_stages("data", "clean") == ("clean",)
    assert stages.dvc_stages("distill") == ("teacher_cache", "distill")
    assert stages.dvc_stages("distill", "cache") == ("teacher_cache",)
    assert stages.dvc_stages("pretrain") == ("pretrain",) and stages.dvc_stages("promote") == ()


def test_flow_tasks_and_cli_record_the_same_stages() -> None:
    import argparse

    from flows.data import clean_task
    from flows.distill import distill_task
    from lmforge.cli import stages_run

    assert clean_task.lmforge_stages == stages_run(argparse.Namespace(command="data", step="clean", input=None))
    assert distill_task.lmforge_stages == stages_run(argparse.Namespace(command="distill", step="all"))
    assert stages_run(argparse.Namespace(command="register", no_promote=True)) == ()


def test_status_lists_stale_stages_in_order_and_when_the_others_finished(cfg) -> None:
    first = stages.status(cfg)
    assert first.stale == list(stages.load_specs(cfg)) and first.current == {}
    stages.write_records(cfg, ["base"], seconds=1.0)
    assert "base" not in stages.status(cfg).stale and stages.status(cfg).current["base"].endswith("Z")
