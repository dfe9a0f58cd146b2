"""One pipeline run per work directory at a time; runs in different work directories run side by side.

Everything a run writes lives in its work directory (``runs/<profile>`` or ``work_dir=...``), so that is what
is locked: an exclusive ``fcntl`` lock on ``<work>/.lmforge/lock``, held for the whole run and released by
the kernel when the process dies (a ``kill -9`` leaves no stale lock). A second run on the same directory
waits for it (``LMFORGE_LOCK_TIMEOUT_S``, default: wait as long as it takes; ``0``: fail at once). The
shared MLflow SQLite store takes concurrent writers itself (SQLite's own locking; a locked database is a
transient fault the stage retries), and the DVC cache is only written by ``dvc`` commands, which lock it.

    with work_lock(cfg.paths.work_dir):
        ...
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lmforge import envs


class WorkDirBusy(RuntimeError):
    """Another run holds the work directory and did not let go in time."""


@contextmanager
def work_lock(work_dir: Path, timeout_s: float | None = None, poll_s: float = 0.5) -> Iterator[Path]:
    """Hold the exclusive lock of ``work_dir`` for the block; wait up to ``timeout_s`` (None: forever)."""
    if timeout_s is None:
        value = envs.LMFORGE_LOCK_TIMEOUT_S.get()
        timeout_s = float(value) if value else None
    path = Path(work_dir) / ".lmforge" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another run"
                if deadline is not None and time.monotonic() >= deadline:
                    raise WorkDirBusy(f"{work_dir} is in use by {holder}; waited {timeout_s:g} s "
                                      "(LMFORGE_LOCK_TIMEOUT_S)") from None
                if not told:
                    print(f"lmforge: {work_dir} is in use by {holder}; waiting for it to finish")
                    told = True
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
