"""The servers and the load behind ``bench_serve.py``: vLLM and gateways in front of it, each its own process,
and requests timed as vLLM's ``benchmark_serving.py`` times them, sent with aiohttp as ``vllm bench serve``
sends them (a client that costs little CPU, so it takes little from the servers it measures on shared cores).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

    from lmforge.config import ServeConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    """One request's timing as benchmark_serving.py records it."""

    ttft: float = 0.0
    latency: float = 0.0
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    text: str = ""


@dataclass
class Batch:
    runs: list[Run]
    seconds: float  # wall time from the first request sent to the last answer

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.runs)

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds


def mixed_lengths(n: int, longest: int) -> list[int]:
    """``n`` output lengths in eight even steps from ``longest / 8`` to ``longest``, the steps interleaved."""
    return [max(1, longest * (1 + i * 5 % 8) // 8) for i in range(n)]


async def one_request(http: aiohttp.ClientSession, url: str, key: str | None, model: str, prompt: str,
                      max_tokens: int, stream: bool) -> Run:
    """A greedy completion of exactly ``max_tokens`` tokens. TTFT: to the first chunk that carries choices (through
    a gateway, the first text its filter releases); ITL: the gaps between such chunks."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "ignore_eos": True,
            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    run, began = Run(), time.perf_counter()
    async with http.post(f"{url}/v1/completions", json=body, headers=headers) as r:
        r.raise_for_status()
        if not stream:
            data = await r.json()
            run.latency = run.ttft = time.perf_counter() - began
            run.output_tokens, run.text = data["usage"]["completion_tokens"], data["choices"][0]["text"]
            return run
        last = began
        async for line in r.content:  # one SSE line at a time, however they arrived
            if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                continue
            data = json.loads(line[5:])
            if "error" in data:
                raise RuntimeError(data["error"])
            if data.get("choices"):
                now = time.perf_counter()
                if not run.ttft:
                    run.ttft = now - began
                else:
                    run.itl.append(now - last)
                last = now
                run.text += data["choices"][0].get("text") or ""
            elif data.get("usage"):
                run.output_tokens = data["usage"]["completion_tokens"]
    run.latency = time.perf_counter() - began
    return run


def session() -> aiohttp.ClientSession:
    """A client with no connection limit and a 10-minute timeout per request."""
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                 timeout=aiohttp.ClientTimeout(total=600))


async def run_concurrent(url: str, key: str | None, model: str, prompts: list[str], max_tokens: int | list[int],
                         stream: bool) -> Batch:
    """Every prompt at once."""
    async with session() as http:
        began = time.perf_counter()
        lengths = max_tokens if isinstance(max_tokens, list) else [max_tokens] * len(prompts)
        runs = await asyncio.gather(*(one_request(http, url, key, model, p, length, stream)
                                      for p, length in zip(prompts, lengths, strict=True)))
        return Batch(list(runs), time.perf_counter() - began)


async def run_closed_loop(url: str, key: str | None, model: str, prompts: list[str], lengths: list[int],
                          in_flight: int) -> Batch:
    """Request i asks for ``lengths[i]`` tokens, streamed; ``in_flight`` at a time, the next sent as one ends (as
    ``vllm bench serve --max-concurrency`` sends them)."""
    todo = iter(enumerate(lengths))

    async def lane(http: aiohttp.ClientSession) -> list[Run]:
        return [await one_request(http, url, key, model, prompts[i % len(prompts)], length, True)
                for i, length in todo]  # the lanes share one iterator: each takes the next request

    async with session() as http:
        began = time.perf_counter()
        lanes = await asyncio.gather(*(lane(http) for _ in range(in_flight)))
        return Batch([run for runs in lanes for run in runs], time.perf_counter() - began)


async def run_interleaved(servers: Servers, prompts: list[str], max_tokens: int, n: int,
                          stream: bool) -> dict[str, list[Run]]:
    """``n`` requests per path, one at a time, the paths taking turns (so drift in load hits all alike)."""
    paths = {"direct": (servers.vllm_url, None), "gateway": (servers.gateway_url, servers.key),
             "minimal": (servers.minimal_url, servers.key)}
    out: dict[str, list[Run]] = {name: [] for name in paths}
    async with session() as http:
        for i in range(n):
            for name, (url, key) in paths.items():
                out[name].append(await one_request(http, url, key, servers.model, prompts[i % len(prompts)],
                                                   max_tokens, stream))
    return out


class Servers:
    """vLLM plus gateways in front of it, each its own process: the shipped policy, a one-term policy, and with
    ``baseline_src`` the shipped policy served by the gateway code of another checkout's ``src`` (before/after)."""

    def __init__(self, model_dir: Path, serve: ServeConfig, work: Path, max_tokens: int,
                 startup_timeout: float, baseline_src: Path | None = None) -> None:
        self.model_dir, self.serve, self.work = model_dir, serve, work
        self.max_tokens, self.startup_timeout, self.baseline_src = max_tokens, startup_timeout, baseline_src
        self.model, self.key = "bench-model", "lmf-bench-key"
        self.baseline_url: str | None = None
        self.pids: dict[str, int] = {}  # gateway name -> process id
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Servers:
        from lmforge.compliance import StreamFilter, load_policy
        from lmforge.serve.engine import VLLMEngine

        self.engine = VLLMEngine(self.model_dir, [self.model], self.serve, _free_port(), self.work / "vllm.log")
        self.engine.start()
        try:
            self.vllm_ready_s = self.engine.wait_ready(self.startup_timeout)
            minimal = self.work / "minimal-policy.yaml"
            minimal.write_text("version: minimal\nrules:\n  - {id: t, kind: term, action: block, "
                               "params: {terms: [zzqqzz]}}\n")
            shipped = ROOT / "configs" / "policy.yaml"
            self.gateway_url = self._start_gateway("shipped", shipped)
            self.minimal_url = self._start_gateway("minimal", minimal)
            if self.baseline_src:
                self.baseline_url = self._start_gateway("baseline", shipped, self.baseline_src)
            self.window = StreamFilter(load_policy(shipped)).hold  # on prose
            self._wait_gateways()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_gateway(self, name: str, policy: Path, src: Path | None = None) -> str:
        from lmforge.serve.settings import GatewaySettings

        settings = GatewaySettings.from_serve_config(
            self.serve, upstream_url=self.engine.base_url, model_name=self.model, model_version="bench",
            policy_path=policy, api_keys=[self.key],
        ).model_copy(update={"rate_limit_rpm": 10**6, "rate_burst": 10**6,
                             "max_tokens_limit": max(self.max_tokens, 64)})
        path = self.work / f"gateway-{name}.json"
        path.write_text(settings.model_dump_json())
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src or ""),
                                                                        os.environ.get("PYTHONPATH")]))}
        # Same session as vLLM and this client: with the kernel's scheduler autogroups (one CPU share per
        # session) a gateway in a session of its own was starved on 2 busy cores while vLLM generated, and
        # its streams arrived in one burst at the end (TTFT ~ the whole answer) in about every second run.
        with open(self.work / f"gateway-{name}.log", "ab") as log:
            self._procs.append(subprocess.Popen(
                [sys.executable, "-m", "lmforge.serve.gateway", "--settings", str(path), "--port", str(port)],
                stdout=log, stderr=subprocess.STDOUT, env=env))
        self.pids[name] = self._procs[-1].pid
        return f"http://127.0.0.1:{port}"

    def _wait_gateways(self) -> None:
        from lmforge.serve.engine import deep_probe

        deadline = time.monotonic() + 120
        for url in filter(None, (self.gateway_url, self.minimal_url, self.baseline_url)):
            while not deep_probe(url, self.model, api_key=self.key):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gateway {url} did not answer; logs in {self.work}")
                time.sleep(0.3)

    @property
    def vllm_url(self) -> str:
        return self.engine.base_url

    def __exit__(self, *exc: object) -> None:
        for proc in self._procs:
            proc.terminate()
            proc.wait(timeout=20)
        self.engine.stop()


def default_model(work: Path) -> Path:
    trained = ROOT / "runs" / "tiny" / "models" / "student"
    if (trained / "_COMPLETE").is_file():
        return trained
    return random_model(work / "model")


def random_model(out: Path, like: str | None = None) -> Path:
    """A random-weight Llama shaped like the tiny profile's student, or like profile ``like``'s pretrained model,
    with a BPE tokenizer of that profile's vocabulary size trained on the shipped prose."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from lmforge.config import load_config

    with gzip.open(ROOT / "data" / "sample" / "corpus.jsonl.gz", "rt") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(300), f, strict=False)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    config = load_config(like or "tiny")
    trainer = trainers.BpeTrainer(vocab_size=config.data.vocab_size, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|pad|>")
    shape = config.pretrain.model if like else config.distill.student
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(fast), hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers, num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads, max_position_embeddings=shape.max_seq_len,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True))
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())
