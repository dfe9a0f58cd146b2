"""API keys (kept only as sha256 hashes) and per-key rate limits for the gateway.

    keys = ApiKeys([hash_key("lmf-secret")])
    keys.identify("Bearer lmf-secret")     # the key's hash, or None
    limits = RateLimits("memory://", rpm=600, burst=60)      # or "redis://127.0.0.1:6379": shared by replicas
    await limits.acquire("alice")          # 0.0 when allowed, else seconds until a request is allowed

Rate limits use the ``limits`` library's moving window. A token bucket of ``burst`` requests refilled at
``rpm`` per minute is held as a window of ``burst * 60 / rpm`` seconds that admits at most ``burst`` requests:
the same long-run rate and the same largest burst. With Redis as the storage every gateway replica counts
into the same window, so a client gets its limit once, not once per replica.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from functools import lru_cache

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, hashes: Iterable[str]) -> None:
        self._hashes = tuple(h.lower() for h in hashes)

    @property
    def enabled(self) -> bool:
        return bool(self._hashes)

    def identify(self, authorization: str | None) -> str | None:
        """The hash of a valid ``Bearer <key>`` header, else None (constant-time comparison)."""
        key = bearer(authorization)
        if key is None:
            return None
        digest = hash_key(key)
        found = None
        for known in self._hashes:  # no early exit: timing does not tell which prefix matched
            if hmac.compare_digest(digest, known):
                found = known
        return found


def bearer(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None."""
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


class RateLimitStorageError(RuntimeError):
    """The shared rate-limit storage (Redis) did not answer."""


class RateLimits:
    """Per-key request limits: ``rpm`` per minute with bursts of ``burst`` (a key may carry its own rpm)."""

    def __init__(self, storage_uri: str, rpm: int, burst: int, namespace: str = "lmforge") -> None:
        if rpm < 1 or burst < 1:
            raise ValueError("rate limit rpm and burst must be at least 1")
        self.rpm, self.burst, self.namespace = rpm, burst, namespace
        uri, options = _async_storage(storage_uri)
        self.storage = storage_from_string(uri, **options)
        self._limiter = MovingWindowRateLimiter(self.storage)

    async def acquire(self, key: str, rpm: int | None = None) -> float:
        """Count one request of ``key``: 0.0 when it is allowed, else the seconds until one is. A key with its
        own ``rpm`` bursts no more than that rpm (a key allowed 5 a minute never sends 60 at once)."""
        item = rate_limit_item(rpm, min(self.burst, rpm)) if rpm else rate_limit_item(self.rpm, self.burst)
        try:
            if await self._limiter.hit(item, self.namespace, key):
                return 0.0
            reset_at, _ = await self._limiter.get_window_stats(item, self.namespace, key)
        except Exception as err:  # the storage's client raises its own errors (redis.ConnectionError, ...)
            raise RateLimitStorageError(f"rate-limit storage failed: {type(err).__name__}: {err}") from err
        return max(reset_at - time.time(), 0.001)  # the window's reset time is wall-clock, as Redis keeps it


@lru_cache(maxsize=256)
def rate_limit_item(rpm: int, burst: int) -> RateLimitItem:
    """At most ``burst`` requests in any window of ``burst * 60 / rpm`` seconds (whole seconds, at least 1)."""
    seconds = max(1, round(burst * 60 / rpm))
    return RateLimitItemPerSecond(max(1, rpm * seconds // 60), seconds)


def _async_storage(uri: str) -> tuple[str, dict[str, str]]:
    """``limits``' asyncio storage for a plain URI: memory:// or redis:// (through redis-py's asyncio client)."""
    scheme = uri.split("://", 1)[0]
    if scheme.startswith("async+"):
        return uri, {}
    if scheme in ("redis", "rediss", "redis+unix"):
        return f"async+{uri}", {"implementation": "redispy"}
    return f"async+{uri}", {}

