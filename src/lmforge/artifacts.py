"""Artifacts that describe themselves and are written atomically.

A stage writes its output into a temporary sibling directory, writes a ``_COMPLETE`` manifest last, then
renames the directory into place. A later stage trusts an output only if ``_COMPLETE`` is there, so a killed
stage never leaves something that looks finished.

    with atomic_dir(out) as tmp:
        ...write files into tmp...
        # on normal exit: tmp/_COMPLETE is written, then tmp is renamed to out
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

COMPLETE = "_COMPLETE"


class IncompleteArtifactError(RuntimeError):
    """An output directory exists but has no completion marker: it was left by a killed run."""


@contextlib.contextmanager
def atomic_dir(out: Path, manifest: dict[str, Any] | None = None) -> Iterator[Path]:
    """Yield a fresh temporary directory that becomes ``out`` only if the block finishes.

    ``manifest`` (mutable: the block may add keys) is written as ``_COMPLETE`` together with a file listing.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    manifest = manifest if manifest is not None else {}
    try:
        yield tmp
        manifest.setdefault("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        manifest["files"] = {
            str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        write_json_atomic(tmp / COMPLETE, manifest)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_complete(path: Path) -> bool:
    return (Path(path) / COMPLETE).is_file()


def require_complete(path: Path, what: str) -> dict[str, Any]:
    """Return the manifest of a finished artifact, or explain in one line what is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found at {path}: run the stage that makes it first")
    if not is_complete(path):
        raise IncompleteArtifactError(
            f"{what} at {path} has no {COMPLETE} marker (left by a killed run?): re-run its stage"
        )
    return json.loads((path / COMPLETE).read_text())


def write_json_atomic(path: Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
