"""API keys (kept only as sha256 hashes) and a per-key token-bucket rate limit for the gateway.

keys = ApiKeys([hash_key("lmf-secret")])
keys.identify("Bearer lmf-secret")     # the key's hash, or None
limiter = RateLimiter(rpm=600, burst=60)
limiter.try_acquire(key_hash)          # 0.0 when allowed, else seconds until a request is allowed
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable


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
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        digest = hash_key(key.strip())
        found = None
        for known in self._hashes:  # no early exit: timing does not tell which prefix matched
            if hmac.compare_digest(digest, known):
                found = known
        return found


class RateLimiter:
    """One token bucket per key: ``burst`` tokens, refilled at ``rpm / 60`` tokens per second."""

    def __init__(self, rpm: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rpm < 1 or burst < 1:
            raise ValueError("rate limit rpm and burst must be at least 1")
        self.rate = rpm / 60.0  # tokens per second
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)

    def try_acquire(self, key: str) -> float:
        now = self._clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate
