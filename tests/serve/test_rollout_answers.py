"""The rollout's client keeps each answer's text, plain and streamed, as an OpenAI server sends it (the fake
vLLM's exact SSE shape), and asks a server directly for the shadow comparison."""

from __future__ import annotations

import random
import socket
import threading
import time

import uvicorn
from conftest import ANSWER
from fastapi import FastAPI

from lmforge.config import load_config
from lmforge.rollout.traffic import direct_answers, send_requests


def _serve(app: FastAPI) -> tuple[str, uvicorn.Server]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the fake vLLM did not start within 20 s"
    return f"http://127.0.0.1:{port}", server


def test_answers_are_kept_plain_and_streamed(fake_vllm: FastAPI) -> None:
    url, server = _serve(fake_vllm)
    try:
        cfg = load_config("tiny", ["rollout.stream_every=2"]).rollout
        tally = send_requests(url, "key", "m", cfg, 8, random.Random(0))
        streamed = [r.get("stream") for r in fake_vllm.state.requests]
        assert True in streamed and False in streamed
        assert len(tally.answers) == 8 and {text for _, _, text in tally.answers} == {ANSWER}
        assert sum(len(v) for v in tally.answers_of("?").values()) == 8  # no gateway: no x-lmforge-arm header
        direct = direct_answers(url, "m", ["a", "b", "a"], max_tokens=8)
        assert direct == {"a": [ANSWER], "b": [ANSWER]}
    finally:
        server.should_exit = True
