"""The work-directory lock: one run per directory, released when its holder dies, even by kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmforge.ops.locks import WorkDirBusy, work_lock

HOLD = """
import sys, time
from lmforge.ops.locks import work_lock
with work_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(work: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(work), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_on_the_same_directory_waits_or_gives_up(tmp_path: Path) -> None:
    proc = _holder(tmp_path, 2.0)
    try:
        with pytest.raises(WorkDirBusy, match="in use by pid"):
            with work_lock(tmp_path, timeout_s=0):
                pass
        start = time.monotonic()
        with work_lock(tmp_path, timeout_s=30, poll_s=0.05):
            waited = time.monotonic() - start
        assert 0.5 < waited < 30
    finally:
        proc.wait(timeout=30)


def test_kill_9_releases_the_lock(tmp_path: Path) -> None:
    proc = _holder(tmp_path, 60.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    with work_lock(tmp_path, timeout_s=1):
        pass


def test_other_directories_are_not_blocked(tmp_path: Path) -> None:
    proc = _holder(tmp_path / "a", 30.0)
    try:
        with work_lock(tmp_path / "b", timeout_s=0):
            pass
    finally:
        proc.kill()
        proc.wait(timeout=10)
