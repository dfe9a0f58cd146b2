"""Unattended runs: transient faults retried, gates not; kill -9 in training resumed; no half-written output
taken as done; two runs at once each complete and consistent. Real Prefect, Lightning, SQLite and MLflow."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]  # whole runs

ROOT = Path(__file__).resolve().parents[2]


def test_retries_absorb_a_locked_database(prefect_harness, tmp_path: Path) -> None:
    """A SQLite file held by another writer for a few seconds is waited out by the stage retry options."""
    from prefect import flow, task

    from lmforge.ops.retry import retry_options

    db = tmp_path / "store.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table runs (id integer)")
    attempts = []

    @task(**{**retry_options(retries=4, first_s=0.5), "retry_jitter_factor": None})
    def write_row() -> int:
        attempts.append(time.monotonic())
        with sqlite3.connect(db, timeout=0.1) as conn:
            conn.execute("insert into runs values (1)")
        return len(attempts)

    @flow
    def writer() -> int:
        return write_row()

    holder = sqlite3.connect(db, check_same_thread=False)
    holder.execute("begin exclusive")
    release = threading.Timer(2.0, holder.commit)
    release.start()
    try:
        used = writer()
    finally:
        release.join()
        holder.close()
    assert used >= 2, "the lock should have failed the first attempt"
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from runs").fetchone()[0] == 1


def test_a_failed_gate_is_not_retried_and_its_reason_reported(prefect_harness, tmp_path: Path) -> None:
    from flows.common import LEDGER
    from flows.pipeline import pipeline_flow
    from lmforge.config import load_config

    # Records that clean quarantines to the last one: a kind that had input but kept nothing fails the gate.
    source = tmp_path / "short.jsonl"
    source.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Too short {i}.", "source": "test",
                                          "license": "CC0"}) + "\n" for i in range(5)))
    overrides = [f"work_dir={tmp_path / 'work'}"]
    state = pipeline_flow(profile="tiny", overrides=overrides, input_path=str(source), return_state=True)
    assert state.is_failed()
    assert "DataGateError" in state.message and "corpus" in state.message
    validate = [e for e in LEDGER if e["stage"] == "validate" and e["work_dir"] == str(tmp_path / "work")]
    assert [e["status"] for e in validate] == ["failed"]
    cfg = load_config("tiny", overrides)
    report = (cfg.paths.reports / "pipeline.md").read_text()
    assert report.startswith("# lmforge pipeline run: failed") and "DataGateError" in report
    assert "| validate | failed" in report and "| tokenize" not in report
    client = MlflowClient(tracking_uri=cfg.tracking_uri())
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`lmforge.stage` = 'pipeline' and tags.`lmforge.status` = 'failed'")
    assert runs, "the failed run's report is an MLflow artifact too"


def _flow_env(api_url: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": api_url, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


TRAIN = """
import sys
from flows.data import data_flow
from flows.train import pretrain_flow
overrides = sys.argv[1:]
data_flow(profile="tiny", overrides=overrides)
print("PRETRAIN", pretrain_flow(profile="tiny", overrides=overrides), flush=True)
"""


def _start(overrides: list[str], api_url: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRAIN, *overrides], cwd=ROOT, env=_flow_env(api_url),
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def test_kill_9_in_training_then_rerun_resumes_and_leaves_nothing_half_done(prefect_harness, tmp_path) -> None:
    from lmforge.artifacts import require_complete
    from lmforge.config import load_config
    from lmforge.ops.stages import is_current

    overrides = [f"work_dir={tmp_path / 'work'}", "pretrain.train.max_steps=120", "pretrain.train.ckpt_every=40",
                 "pretrain.train.val_every=40"]
    cfg = load_config("tiny", overrides)
    ckpts = cfg.paths.checkpoints / "pretrain"
    proc = _start(overrides, _api_url(), tmp_path / "first.log")
    deadline = time.monotonic() + 600
    while not list(ckpts.glob("step=*.ckpt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    first = sorted(ckpts.glob("step=*.ckpt"))
    assert first, (tmp_path / "first.log").read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    # What the killed stage left cannot be taken as done: no model, no record; the next stage refuses.
    assert not (cfg.paths.models / "pretrain").exists()
    assert not is_current(cfg, ["pretrain"])
    with pytest.raises(FileNotFoundError, match="pretrained model"):
        from lmforge.train.finetune import run_finetune

        run_finetune(cfg)

    start = time.monotonic()
    rerun = _start(overrides, _api_url(), tmp_path / "second.log")
    assert rerun.wait(timeout=900) == 0, (tmp_path / "second.log").read_text()[-3000:]
    resume_s = time.monotonic() - start
    log = (tmp_path / "second.log").read_text()
    assert f"Restoring states from the checkpoint path at {ckpts}" in log
    meta = require_complete(cfg.paths.models / "pretrain", "pretrained model")
    exported = json.loads((cfg.paths.models / "pretrain" / "lmforge.json").read_text())
    assert exported["metrics"]["global_step"] == 120, meta
    assert exported["resumed_from"].startswith(str(ckpts))
    assert is_current(cfg, ["pretrain"])
    print(f"resume after kill -9 at {first[0].name}: {resume_s:.1f} s to a finished pretrain")


def test_two_runs_at_once_in_their_own_work_dirs(prefect_harness, tmp_path: Path) -> None:
    from lmforge.artifacts import require_complete
    from lmforge.config import load_config

    runs = {
        "a": [f"work_dir={tmp_path / 'a'}", "pretrain.train.max_steps=20", "data.vocab_size=512"],
        "b": [f"work_dir={tmp_path / 'b'}", "pretrain.train.max_steps=30", "data.vocab_size=640"],
    }
    procs = {name: _start(o, _api_url(), tmp_path / f"{name}.log") for name, o in runs.items()}
    for name, proc in procs.items():
        assert proc.wait(timeout=900) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    for overrides in runs.values():
        cfg = load_config("tiny", overrides)
        client = MlflowClient(tracking_uri=cfg.tracking_uri())  # the store both runs shared
        require_complete(cfg.paths.shards, "token shards")
        meta = json.loads((cfg.paths.models / "pretrain" / "lmforge.json").read_text())
        assert meta["metrics"]["global_step"] == cfg.pretrain.train.max_steps
        config = json.loads((cfg.paths.models / "pretrain" / "config.json").read_text())
        assert config["vocab_size"] == cfg.data.vocab_size
        run = client.get_run(meta["run_id"])
        assert run.info.status == "FINISHED" and int(run.data.params["train/max_steps"]) == cfg.pretrain.train.max_steps
