"""The rollout's own requests: the fixed prompt set sent through the gateway like any client would.

    tally = send_requests(gateway_url, key, "lmforge-tiny-student", cfg.rollout, n=20, rng=random.Random(0))
    tally.statuses   # Counter({200: 20})
    tally.versions   # Counter({"3": 18, "4": 2}): which model version answered (x-lmforge-model-version)

Requests go one at a time (so each latency is one request's, not a queue's), as chat completions, greedy,
one in ``stream_every`` streamed, picked by the seeded generator: a fixed pattern (every 2nd) would line up with
the gateway's counter split (at 50 % the challenger would get every streamed request and the champion none).
A 429 is waited out (Retry-After) and retried: the rate limit is not the challenger's fault. What each arm did
is measured by the gateway itself (its observation ledger); the tally is the client's side, to check what
clients actually got.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from lmforge.config import RolloutConfig

MAX_RATE_LIMIT_RETRIES = 5


@dataclass
class ClientTally:
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    arms: Counter[str] = field(default_factory=Counter)
    sent: int = 0  # requests the gateway routed (429s excluded)

    def to_dict(self) -> dict:
        return {"sent": self.sent, "statuses": dict(self.statuses), "versions": dict(self.versions),
                "arms": dict(self.arms)}


def send_requests(
    gateway_url: str, api_key: str, model: str, cfg: RolloutConfig, n: int, rng: random.Random,
    timeout: float = 120.0,
) -> ClientTally:
    tally = ClientTally()
    with httpx.Client(base_url=gateway_url, timeout=timeout, headers={"Authorization": f"Bearer {api_key}"}) as http:
        for prompt, stream in plan_requests(cfg, n, rng):
            body = {"model": model, "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": cfg.max_tokens, "temperature": 0.0, "stream": stream}
            status, headers = _send(http, body)
            tally.statuses[status] += 1
            if status != 429:
                tally.sent += 1
            tally.versions[headers.get("x-lmforge-model-version", "?")] += 1
            tally.arms[headers.get("x-lmforge-arm", "?")] += 1
    return tally


def plan_requests(cfg: RolloutConfig, n: int, rng: random.Random) -> list[tuple[str, bool]]:
    """``n`` (prompt, streamed) pairs: the prompts in shuffled passes, one in ``stream_every`` streamed at random."""
    prompts = _shuffled_cycle(cfg.prompts, n, rng)
    return [(prompt, cfg.stream_every > 0 and rng.random() < 1.0 / cfg.stream_every) for prompt in prompts]


def warm_up(vllm_url: str, model: str, cfg: RolloutConfig, timeout: float = 120.0, api_key: str | None = None) -> int:
    """Send each prompt straight to a fresh vLLM (not through the gateway, so nothing is measured), plain and
    streamed, so one-time start-up costs of its first real answers are not judged against a champion that has
    been serving. Returns how many answered."""
    answered = 0
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}  # the key vLLM requires (the stack's)
    with httpx.Client(base_url=vllm_url, timeout=timeout, headers=headers) as http:
        for prompt in cfg.prompts:
            for stream in (False, True):
                body = {"model": model, "messages": [{"role": "user", "content": prompt}],
                        "max_tokens": cfg.max_tokens, "temperature": 0.0, "stream": stream}
                try:
                    with http.stream("POST", "/v1/chat/completions", json=body) as r:
                        for _line in r.iter_lines():
                            pass
                    answered += r.status_code == 200
                except httpx.HTTPError:
                    pass  # a challenger that fails here fails its first step, where it is recorded
    return answered


def _send(http: httpx.Client, body: dict) -> tuple[int, httpx.Headers]:
    for _ in range(MAX_RATE_LIMIT_RETRIES):
        try:
            with http.stream("POST", "/v1/chat/completions", json=body) as r:
                for _line in r.iter_lines():  # read it all: a streamed answer is measured to its end
                    pass
        except httpx.HTTPError:
            return 599, httpx.Headers()  # the gateway itself did not answer
        if r.status_code != 429:
            return r.status_code, r.headers
        time.sleep(min(float(r.headers.get("retry-after", "1")), 10.0))
    return 429, r.headers


def _shuffled_cycle(prompts: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` prompts: the set over and over, each pass in a fresh shuffled order (no prompt is tied to an arm)."""
    out: list[str] = []
    while len(out) < n:
        batch = list(prompts)
        rng.shuffle(batch)
        out += batch
    return out[:n]
