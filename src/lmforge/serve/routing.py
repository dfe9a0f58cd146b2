"""Where each gateway request goes: the champion, or a challenger on a share of traffic, and what it did.

    router = Router(Arm("champion", "http://127.0.0.1:8100", "3", policy, client))
    router.set_route(Arm("challenger", "http://127.0.0.1:8101", "4", policy, client2), "canary", 10)
    primary, mirror = router.pick()      # 10 of every 100 requests: (challenger, None)
    router.ledger.record(Observation(...))

Two modes. ``canary``: ``share`` % of requests are answered by the challenger. ``shadow``: every request is
answered by the champion and ``share`` % are also sent to the challenger, whose answer is filtered, measured
and dropped. The split is a counter, not a coin: request ``n`` goes to the challenger when
``n * share // 100`` steps up, so every 100 requests hold exactly ``share`` challenger requests and a short
rollout step still measures the challenger (the rollout shuffles its prompts so no prompt is tied to an arm).

Every generation request the gateway routes ends in one ``Observation`` in the ``Ledger``: arm, version,
status, seconds, and the filter's verdicts. The rollout reads them back through ``/admin/observations``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx

from lmforge.compliance import Policy

Mode = Literal["canary", "shadow"]
MODES: tuple[str, ...] = ("canary", "shadow")


@dataclass(frozen=True)
class Arm:
    """One upstream vLLM server and the policy that filters its answers."""

    name: str  # "champion" or "challenger"
    upstream_url: str
    version: str  # registry version: the x-lmforge-model-version header of its answers
    policy: Policy
    client: httpx.AsyncClient

    def stamp(self, model: str) -> dict[str, str]:
        return {
            "x-lmforge-model": model,
            "x-lmforge-model-version": self.version,
            "x-lmforge-policy-version": self.policy.version,
            "x-lmforge-arm": self.name,
        }

    def describe(self) -> dict[str, str]:
        return {"arm": self.name, "upstream_url": self.upstream_url, "version": self.version,
                "policy_version": self.policy.version}


@dataclass(frozen=True)
class Observation:
    """One routed generation request as one arm saw it."""

    arm: str
    version: str
    status: int  # HTTP status of the arm's answer; 502/503 when it failed or was unreachable
    seconds: float  # from sending upstream to the last byte released (whole stream when streamed)
    verdicts: int  # compliance verdicts on the answer (redact, block and flag alike)
    blocked: bool
    mirrored: bool = False  # a shadow copy: the client never saw this answer
    streamed: bool = False  # a streamed answer (its seconds include the filter's hold-back and every chunk)

    @property
    def ok(self) -> bool:
        return self.status == 200

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """The last ``maxlen`` observations, numbered from 1; ``since(n)`` returns those after number ``n``."""

    def __init__(self, maxlen: int = 20_000) -> None:
        self.cursor = 0  # number of the newest observation
        self._items: deque[tuple[int, Observation]] = deque(maxlen=maxlen)

    def record(self, observation: Observation) -> None:
        self.cursor += 1
        self._items.append((self.cursor, observation))

    def since(self, cursor: int) -> list[Observation]:
        return [obs for number, obs in self._items if number > cursor]


class Router:
    def __init__(self, champion: Arm) -> None:
        self.champion = champion
        self.challenger: Arm | None = None
        self.mode: Mode = "canary"
        self.share = 0  # percent of requests the challenger answers (canary) or sees a copy of (shadow)
        self.ledger = Ledger()
        self.shadows: set[asyncio.Task[None]] = set()  # shadow copies in flight
        self._count = 0

    def pick(self) -> tuple[Arm, Arm | None]:
        """The arm that answers this request, and the arm that gets a shadow copy (or None)."""
        if self.challenger is None or self.share == 0:
            return self.champion, None
        self._count += 1
        hit = self._count * self.share // 100 > (self._count - 1) * self.share // 100
        if self.mode == "shadow":
            return self.champion, self.challenger if hit else None
        return (self.challenger if hit else self.champion), None

    def set_route(self, challenger: Arm | None, mode: Mode, share: int) -> Arm | None:
        """Route ``share`` % to ``challenger`` (None: keep the current one); return a replaced challenger."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if not 0 <= share <= 100:
            raise ValueError(f"share must be a percentage 0..100, not {share}")
        replaced = None
        if challenger is not None:
            replaced, self.challenger = self.challenger, challenger
        if self.challenger is None and share:
            raise ValueError("no challenger to route to: give its upstream_url and model_version")
        self.mode, self.share, self._count = mode, share, 0
        return replaced

    def clear(self) -> Arm | None:
        """All traffic back to the champion; return the challenger that was dropped."""
        dropped, self.challenger, self.share, self._count = self.challenger, None, 0, 0
        return dropped

    def promote(self) -> Arm:
        """The challenger becomes the champion (answering everything); return the old champion."""
        if self.challenger is None:
            raise ValueError("no challenger to promote")
        old = self.champion
        self.champion = Arm("champion", self.challenger.upstream_url, self.challenger.version,
                            self.challenger.policy, self.challenger.client)
        self.challenger, self.share, self._count = None, 0, 0
        return old

    def describe(self) -> dict[str, Any]:
        return {
            "champion": self.champion.describe(),
            "challenger": self.challenger.describe() if self.challenger else None,
            "mode": self.mode,
            "share": self.share,
            "cursor": self.ledger.cursor,
        }
