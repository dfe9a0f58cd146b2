"""The real stack: vLLM's OpenAI server on a tiny random-weight Llama behind the gateway, via openai.

One module-scoped stack (vLLM starts in 15-50 s on CPU) serves every test here, then the bounded load test,
then vLLM killed with kill -9 (the supervisor restarts it).
Run with:
    pytest -m integration tests/serve/test_integration.py -s
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lmforge.config import load_config
from lmforge.serve.engine import VLLMEngine, deep_probe
from lmforge.serve.stack import StackInfo, stack_status, start_stack, stop_stack, vllm_key, vllm_key_path
from lmforge.serve.supervisor import group_members

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = "lmf-integration-key"
MODEL = "tiny-llama"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tiny_model_dir: Path) -> Iterator[tuple[StackInfo, object]]:
    cfg = load_config("tiny", [f"serve.vllm_port={_free_port()}", f"serve.gateway_port={_free_port()}",
                               "serve.max_tokens_limit=512", "serve.rate_burst=1000", "serve.rate_limit_rpm=60000",
                               "serve.startup_timeout_s=900"])  # niced tests beside a timing run start slowly
    began = time.monotonic()
    info = start_stack(cfg, tiny_model_dir, MODEL, "1", [KEY])
    took = time.monotonic() - began
    print(f"\n[integration] vLLM ready in {info.vllm_ready_s}s; stack ready in {took:.1f}s")
    yield info, cfg
    stopped = stop_stack(cfg)
    assert set(stopped["stopped"]) == {"vllm", "gateway"}
    for pid in info.pids.values():
        assert not Path(f"/proc/{pid}").exists() or b"vllm" not in Path(f"/proc/{pid}/cmdline").read_bytes()


def _client(info: StackInfo, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{info.gateway_url}/v1", api_key=key, max_retries=0, timeout=60)


def test_deep_probe_and_status(stack: tuple[StackInfo, object]) -> None:
    info, cfg = stack
    assert deep_probe(info.gateway_url, MODEL, api_key=KEY)
    assert not deep_probe(info.gateway_url, MODEL, api_key="wrong")
    # No way around the filter: vLLM refuses a request without the key only the gateway holds.
    keyless = httpx.post(f"{info.vllm_url}/v1/chat/completions", timeout=30,
                         json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert keyless.status_code == 401 and not deep_probe(info.vllm_url, MODEL, api_key=KEY)
    assert deep_probe(info.vllm_url, MODEL, api_key=vllm_key(cfg))
    assert oct(vllm_key_path(cfg).stat().st_mode & 0o777) == "0o600"
    assert vllm_key(cfg).encode() not in Path(f"/proc/{info.pids['vllm']}/cmdline").read_bytes()
    status = stack_status(cfg)
    assert status["running"] and status["gateway_ready"] and set(status["alive"]) == {"vllm", "gateway"}
    assert all(os.getpgid(pid) == pid for pid in info.pids.values())  # own process groups: stop kills all


def test_chat_completion_through_gateway(stack: tuple[StackInfo, object]) -> None:
    raw = _client(stack[0]).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "What does the json module do?"}], max_tokens=16,
        temperature=0.0)
    reply = raw.parse()
    assert raw.headers["x-lmforge-model"] == MODEL and raw.headers["x-lmforge-policy-version"] == "2026.11.1"
    assert reply.choices[0].message.content is not None and reply.usage.completion_tokens <= 16
    print(f"[integration] chat reply: {reply.choices[0].message.content!r}")


def test_sdk_default_call_without_max_tokens(stack: tuple[StackInfo, object]) -> None:
    """The openai SDK's plainest call names no max_tokens: it gets what vLLM gives (the room left in the 256-token
    context), not a 400 for the gateway's limit of 512 being over the context."""
    reply = _client(stack[0]).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Tell me about the harbor."}])
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens + reply.usage.completion_tokens <= 256


def test_completion_and_streaming_agree(stack: tuple[StackInfo, object]) -> None:
    client = _client(stack[0])
    whole = client.completions.create(model=MODEL, prompt="The harbor was", max_tokens=24, temperature=0.0)
    pieces = [c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="The harbor was", max_tokens=24, temperature=0.0, stream=True) if c.choices]
    assert "".join(pieces) == whole.choices[0].text  # greedy: streamed (filtered) text equals the whole one
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=12, temperature=0.0, stream=True)
    assert isinstance("".join(c.choices[0].delta.content or "" for c in chat if c.choices), str)


def test_models_and_auth(stack: tuple[StackInfo, object]) -> None:
    info = stack[0]
    assert [m.id for m in _client(info).models.list().data] == [MODEL]
    with pytest.raises(openai.AuthenticationError):
        _client(info, "lmf-wrong").models.list()
    with pytest.raises(openai.BadRequestError):
        _client(info).completions.create(model=MODEL, prompt="x", max_tokens=10_000)
    metrics = httpx.get(f"{info.gateway_url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'lmforge_gateway_rejections_total{reason="auth"}' in metrics


LOAD_REQUESTS, LOAD_CONCURRENCY = 200, 16


def test_bounded_load_leaves_the_server_alive_and_ready(stack: tuple[StackInfo, object]) -> None:
    """200 requests, 16 at a time, half streamed, through the gateway to vLLM: no failure, and afterwards the
    stack still answers a deep probe (a 1-token completion through gateway and vLLM)."""
    info, cfg = stack
    client = openai.AsyncOpenAI(base_url=f"{info.gateway_url}/v1", api_key=KEY, max_retries=0, timeout=180)
    gate = asyncio.Semaphore(LOAD_CONCURRENCY)

    async def one(i: int) -> int:
        messages = [{"role": "user", "content": f"Request {i}: what does the json module do?"}]
        async with gate:
            if i % 2:
                stream = await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=32,
                                                              temperature=0.0, stream=True)
                return sum([1 async for chunk in stream if chunk.choices and chunk.choices[0].delta.content])
            reply = await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=32)
            return reply.usage.completion_tokens

    async def run() -> list:
        try:
            return await asyncio.gather(*(one(i) for i in range(LOAD_REQUESTS)), return_exceptions=True)
        finally:
            await client.close()

    began = time.monotonic()
    results = asyncio.run(run())
    took = time.monotonic() - began
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {LOAD_REQUESTS} failed, first: {failures[0]!r}"
    print(f"\n[integration] load: {LOAD_REQUESTS} requests at {LOAD_CONCURRENCY} concurrent in {took:.1f}s "
          f"({LOAD_REQUESTS / took:.1f} req/s)")
    status = stack_status(cfg)
    assert status["running"] and status["gateway_ready"]
    assert deep_probe(info.gateway_url, MODEL, api_key=KEY)
    assert httpx.get(f"{info.gateway_url}/ready").status_code == 200
    metrics = httpx.get(f"{info.gateway_url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'lmforge_gateway_requests_total{endpoint="/v1/chat/completions",status="200"}' in metrics


def test_stream_interval_and_cpu_threads_reach_vllm(tiny_model_dir: Path, tmp_path: Path) -> None:
    """serve.stream_interval reaches vLLM: the first token alone, then 4 at a time, the same text in all; and
    serve.cpu_threads=all puts a compute thread of vLLM's worker on every core (by default it leaves one out)."""
    serve = load_config("tiny", ["serve.stream_interval=4", "serve.cpu_threads=all",
                                 "serve.startup_timeout_s=900"]).serve
    with VLLMEngine(tiny_model_dir, [MODEL], serve, _free_port(), tmp_path / "vllm.log") as engine:
        engine.wait_ready()
        assert engine.pid is not None
        bound = _pinned_cores(_worker_pids(engine.pid))
        body = {"model": MODEL, "prompt": "The harbor was", "max_tokens": 12, "temperature": 0.0, "ignore_eos": True}
        whole = httpx.post(f"{engine.base_url}/v1/completions", json=body, timeout=120).json()
        chunks = []
        with httpx.stream("POST", f"{engine.base_url}/v1/completions", json={**body, "stream": True},
                          timeout=120) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    chunks += [c["text"] for c in json.loads(line[6:])["choices"]]
    assert whole["usage"]["completion_tokens"] == 12
    assert "".join(chunks) == whole["choices"][0]["text"]
    assert len(chunks) <= 5  # 1 + 4 + 4 + 3 tokens (a final chunk may come apart); one per token would be 12
    assert bound == set(os.sched_getaffinity(0)), f"vLLM's compute threads are pinned to {bound}"


def _worker_pids(group: int) -> list[int]:
    """vLLM's worker processes (they name themselves VLLM::Worker) in the engine's process group."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            name = (entry / "comm").read_text().strip()
            group_of = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
        except (OSError, ValueError, IndexError):
            continue  # not a process, or gone
        if group_of == group and name.startswith("VLLM::Worker"):
            found.append(int(entry.name))
    assert found, f"no VLLM::Worker process in process group {group}"
    return found


def _pinned_cores(pids: list[int]) -> set[int]:
    """The cores that some thread of these processes is pinned to alone (vLLM pins one OpenMP thread per core)."""
    cores: set[int] = set()
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            allowed = os.sched_getaffinity(int(task.name))
            if len(allowed) == 1:
                cores |= allowed
    return cores


def test_a_killed_vllm_comes_back_by_itself(stack: tuple[StackInfo, object], until: Callable[..., Any]) -> None:
    """kill -9 of vLLM's API server: the gateway answers 503 with Retry-After and /ready turns 503, vLLM's engine
    core does not outlive it, and the supervisor restarts vLLM without anyone running `lmforge serve`."""
    info, cfg = stack
    [api_server] = _children(info.pids["vllm"])  # the recorded pid is vLLM's supervisor
    dead = group_members(api_server)
    assert len(dead) >= 2, f"no engine core beside the API server: {dead}"
    os.kill(api_server, signal.SIGKILL)
    killed = time.monotonic()
    body = {"model": MODEL, "prompt": "The harbor was", "max_tokens": 2}
    headers = {"Authorization": f"Bearer {KEY}"}
    seen = []

    def unavailable() -> httpx.Response | None:
        r = httpx.post(f"{info.gateway_url}/v1/completions", json=body, headers=headers, timeout=30)
        seen.append(r.status_code)
        return r if r.status_code == 503 else None

    down = until(unavailable, 60, "a 503")
    assert down.headers["retry-after"] == "5" and down.json()["error"]["code"] == "upstream_unavailable"
    ready = httpx.get(f"{info.gateway_url}/ready", timeout=10)
    assert ready.status_code == 503 and ready.headers["retry-after"] == "5"
    until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in dead), 60, "the engine core to go too")

    def answered() -> bool:
        r = httpx.post(f"{info.gateway_url}/v1/completions", json=body, headers=headers, timeout=60)
        seen.append(r.status_code)
        return r.status_code == 200

    until(answered, 900, "vLLM back behind the gateway")
    back = time.monotonic() - killed
    print(f"\n[integration] killed vLLM answered again after {back:.1f}s; {len(seen) - 1} requests meanwhile got "
          f"{sorted(set(seen[:-1]))}")
    assert set(seen[:-1]) == {503}, seen  # down is unavailable, never a failure (502) or a stack trace (500)
    status = stack_status(cfg)
    assert status["running"] and status["gateway_ready"] and status["vllm_restarts"] == 1
    port = info.vllm_url.rsplit(":", 1)[1]
    metrics = httpx.get(f"{info.gateway_url}/metrics", headers=headers).text
    assert f'lmforge_vllm_restarts_total{{server="{port}"}} 1.0' in metrics
    assert "died with exit code -9" in (info.log_dir / "vllm.log").read_text()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

