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

import json
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
    answers: list[tuple[str, str, str]] = field(default_factory=list)  # (arm, prompt, text) of each 200 answer

    def answers_of(self, arm: str) -> dict[str, list[str]]:
        """Prompt -> the texts ``arm`` answered it with (as clients got them: filtered)."""
        out: dict[str, list[str]] = {}
        for who, prompt, text in self.answers:
            if who == arm:
                out.setdefault(prompt, []).append(text)
        return out

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
            status, headers, text = _send(http, body)
            if status == 200:
                tally.answers.append((headers.get("x-lmforge-arm", "?"), prompt, text))
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


def direct_answers(vllm_url: str, model: str, prompts: list[str], max_tokens: int,
                   timeout: float = 120.0) -> dict[str, list[str]]:
    """Each prompt answered once by a vLLM server directly (greedy, unfiltered): in shadow mode the challenger's
    answers through the gateway are measured and dropped, so this is what its answers are compared on."""
    out: dict[str, list[str]] = {}
    with httpx.Client(base_url=vllm_url, timeout=timeout) as http:
        for prompt in dict.fromkeys(prompts):
            body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                    "temperature": 0.0, "stream": False}
            try:
                r = http.post("/v1/chat/completions", json=body)
            except httpx.HTTPError:
                continue  # an unreachable challenger fails its step on errors, not here
            if r.status_code == 200:
                out[prompt] = [answer_text(r.text.splitlines(), streamed=False)]
    return out


def _send(http: httpx.Client, body: dict) -> tuple[int, httpx.Headers, str]:
    for _ in range(MAX_RATE_LIMIT_RETRIES):
        try:
            with http.stream("POST", "/v1/chat/completions", json=body) as r:
                lines = list(r.iter_lines())  # read it all: a streamed answer is measured to its end
        except httpx.HTTPError:
            return 599, httpx.Headers(), ""  # the gateway itself did not answer
        if r.status_code != 429:
            return r.status_code, r.headers, answer_text(lines, body["stream"]) if r.status_code == 200 else ""
        time.sleep(min(float(r.headers.get("retry-after", "1")), 10.0))
    return 429, r.headers, ""


def answer_text(lines: list[str], streamed: bool) -> str:
    """The assistant's text of a chat completion: the message, or the streamed deltas joined."""
    try:
        if not streamed:
            return json.loads("\n".join(lines))["choices"][0]["message"]["content"] or ""
        chunks = [json.loads(line[5:]) for line in lines if line.startswith("data:") and "[DONE]" not in line]
        return "".join((c["choices"][0].get("delta") or {}).get("content") or "" for c in chunks if c.get("choices"))
    except (ValueError, KeyError, IndexError, TypeError):
        return ""  # a body that is not a chat completion: scored as an empty answer


def _shuffled_cycle(prompts: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` prompts: the set over and over, each pass in a fresh shuffled order (no prompt is tied to an arm)."""
    out: list[str] = []
    while len(out) < n:
        batch = list(prompts)
        rng.shuffle(batch)
        out += batch
    return out[:n]
