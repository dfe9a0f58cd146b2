"""Named API keys: the keys file ``lmforge keys`` edits, and the gateway's view of it that follows every edit.

    secret = create_key(path, "alice", rpm=60)   # shown once; the file keeps only its sha256
    list_keys(path)                              # [{"name": "alice", "rpm": 60, "created_at": ...}]
    revoke_key(path, "alice")
    ring = KeyRing(path, static=[("default", sha256_hex)], reload_s=1.0)
    ring.identify("Bearer lmf-...")              # ClientKey(name="alice", rpm=60), or None

The file (``<state>/serve/<profile>-keys.json``, mode 0600) is replaced atomically on every change, under a lock
so two edits never lose one. A gateway re-reads it when its inode, size or modification time changes (looked at
no more often than every ``reload_s`` seconds), so a key works, or stops working, on a running gateway without a
restart. Keys given when the gateway starts (LMFORGE_API_KEYS, the generated key, the admin key) are static:
they have names too (``default``, ``admin``), which file keys may not take.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.serve.auth import bearer, hash_key

log = logging.getLogger("lmforge.gateway")
RESERVED_NAMES = ("default", "admin")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ClientKey:
    """Who a request is from: the key's name (in metrics and logs) and its own requests per minute, if any."""

    name: str
    rpm: int | None = None


def create_key(path: Path, name: str, rpm: int | None = None) -> str:
    """Add a key named ``name``; return its secret (the only time it exists outside the client)."""
    if not _NAME.fullmatch(name) or name.startswith(RESERVED_NAMES):
        raise ValueError(f"key name {name!r}: use 1-64 of a-z 0-9 _ . - (not starting with {RESERVED_NAMES})")
    if rpm is not None and rpm < 1:
        raise ValueError(f"--rpm must be at least 1, not {rpm}")
    secret = f"lmf-{secrets.token_urlsafe(24)}"
    with _editing(path) as keys:
        if name in keys:
            raise ValueError(f"a key named {name!r} exists: revoke it first or choose another name")
        keys[name] = {"sha256": hash_key(secret), "rpm": rpm,
                      "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return secret


def revoke_key(path: Path, name: str) -> None:
    with _editing(path) as keys:
        if keys.pop(name, None) is None:
            raise LookupError(f"no key named {name!r} in {path}")


def list_keys(path: Path) -> list[dict[str, Any]]:
    """Name, rpm and creation time of each key (never a hash)."""
    return [{"name": name, "rpm": k.get("rpm"), "created_at": k.get("created_at")}
            for name, k in sorted(_read(path).items())]


class KeyRing:
    """The keys a gateway accepts: static ones plus the keys file, re-read when it changes."""

    def __init__(self, path: Path | None, static: Iterable[tuple[str, str]] = (), reload_s: float = 1.0) -> None:
        self.path, self.reload_s = path, reload_s
        self._static = {digest.lower(): ClientKey(name) for name, digest in static}
        self._by_hash = dict(self._static)
        self._signature: tuple[int, int, int] | None = None
        self._checked = float("-inf")

    def identify(self, authorization: str | None) -> ClientKey | None:
        """The key of a valid ``Bearer <key>`` header, else None."""
        key = bearer(authorization)
        if key is None:
            return None
        self._refresh()
        # A lookup by the key's sha256: its timing can tell at most something about a hash, never the key.
        return self._by_hash.get(hash_key(key))

    def names(self) -> list[str]:
        self._refresh()
        return sorted({k.name for k in self._by_hash.values()})

    def _refresh(self) -> None:
        now = time.monotonic()
        if self.path is None or now - self._checked < self.reload_s:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            signature = None
        if signature == self._signature:
            return
        try:
            loaded = _read(self.path)
        except (OSError, ValueError) as err:  # keep serving the keys we had; say why once per change
            log.error("keys file %s unreadable, keeping %d keys: %s", self.path, len(self._by_hash), err)
            self._signature = signature
            return
        by_hash = dict(self._static)
        for name, k in loaded.items():
            if name not in RESERVED_NAMES:
                by_hash[str(k["sha256"]).lower()] = ClientKey(name, k.get("rpm"))
        self._by_hash, self._signature = by_hash, signature
        log.info("keys file %s loaded: %d keys (%s)", self.path, len(loaded), ", ".join(sorted(loaded)) or "none")


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    keys = json.loads(text).get("keys", {})
    if not isinstance(keys, dict):
        raise ValueError(f"{path}: 'keys' must map names to keys")
    return keys


@contextmanager
def _editing(path: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """The keys of ``path`` to change in place; written back atomically (mode 0600) under an exclusive lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        keys = _read(path)
        yield keys
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": keys}, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
