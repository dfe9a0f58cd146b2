"""Gateway logic against a fake vLLM (ASGI, no network): auth, limits, filters, streams, headers, metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lmforge.serve.auth import RateLimiter, hash_key
from lmforge.serve.gateway import create_app
from lmforge.serve.settings import GatewaySettings

POLICY = Path(__file__).resolve().parents[2] / "configs" / "policy.yaml"
KEY = "lmf-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "tiny-student"
Gateway = Callable[..., TestClient]


@pytest.fixture
def gateway(fake_vllm: FastAPI) -> Gateway:
    """A factory: the gateway in front of ``fake_vllm`` with settings overridden by keyword."""
    return lambda **overrides: _client(fake_vllm, **overrides)


def _client(upstream: FastAPI, **overrides: object) -> TestClient:
    settings = GatewaySettings(
        upstream_url="http://vllm.test",
        model_name=MODEL,
        model_version="7",
        policy_path=POLICY,
        api_key_hashes=[hash_key(KEY)],
        **overrides,
    )
    transport = httpx.ASGITransport(app=upstream)
    return TestClient(create_app(settings, transport=transport), raise_server_exceptions=False)


def _chat(content: str = "hi", **extra: object) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def test_settings_refuse_plaintext_keys() -> None:
    with pytest.raises(ValueError, match="sha256"):
        GatewaySettings(
            upstream_url="http://x",
            model_name="m",
            model_version="1",
            policy_path=POLICY,
            api_key_hashes=["lmf-plaintext"],
        )


def test_chat_is_filtered_and_stamped(gateway: Gateway) -> None:
    r = gateway().post("/v1/chat/completions", json=_chat(), headers=AUTH)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "Sure. Write to <EMAIL> or call <PHONE>. Thanks!"
    assert r.headers["x-lmforge-model"] == MODEL and r.headers["x-lmforge-model-version"] == "7"
    assert r.headers["x-lmforge-policy-version"] == "2026.11.1"


def test_missing_max_tokens_is_capped_at_the_limit(fake_vllm: FastAPI) -> None:
    upstream = fake_vllm
    _client(upstream).post("/v1/completions", json={"model": MODEL, "prompt": "hi"}, headers=AUTH)
    assert upstream.state.requests[-1]["max_tokens"] == 512


@pytest.mark.parametrize(
    "kind, path, body",
    [
        ("chat", "/v1/chat/completions", _chat(stream=True)),
        ("completion", "/v1/completions", {"model": MODEL, "prompt": "hi", "stream": True}),
    ],
)
def test_streaming_redacts_pii_split_across_chunks(
    kind: str, path: str, body: dict, gateway: Gateway
) -> None:
    with gateway().stream("POST", path, json=body, headers=AUTH) as r:
        assert r.status_code == 200 and r.headers["x-lmforge-policy-version"]
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(
        (c["delta"].get("content") or "") if kind == "chat" else c["text"]
        for chunk in chunks
        for c in chunk["choices"]
    )
    assert text == "Sure. Write to <EMAIL> or call <PHONE>. Thanks!"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_streaming_block_ends_with_error_event(gateway: Gateway) -> None:
    with gateway().stream(
        "POST", "/v1/chat/completions", json=_chat("hazard", stream=True), headers=AUTH
    ) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    released = "".join(c["delta"].get("content") or "" for e in events[:-2] for c in json.loads(e)["choices"])
    assert "<script" not in released
    assert json.loads(events[-2])["error"]["type"] == "content_filter"


def test_non_streamed_block_sets_content_filter(gateway: Gateway) -> None:
    r = gateway().post("/v1/chat/completions", json=_chat("hazard"), headers=AUTH)
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter" and choice["message"]["content"] == ""


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_bad_key_gets_openai_style_401(headers: dict, gateway: Gateway) -> None:
    r = gateway().post("/v1/chat/completions", json=_chat(), headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert r.headers["x-lmforge-model"] == MODEL


def test_rate_limit_gives_429_with_retry_after(gateway: Gateway) -> None:
    client = gateway(rate_limit_rpm=1, rate_burst=2)
    codes = [
        client.post("/v1/completions", json={"model": MODEL, "prompt": "x"}, headers=AUTH) for _ in range(3)
    ]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert (
        int(codes[-1].headers["retry-after"]) >= 1
        and codes[-1].json()["error"]["code"] == "rate_limit_exceeded"
    )


def test_token_bucket_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(rpm=60, burst=1, clock=lambda: now[0])
    assert limiter.try_acquire("k") == 0 and limiter.try_acquire("k") == pytest.approx(1.0)
    now[0] = 1.0
    assert limiter.try_acquire("k") == 0


def test_request_limits(gateway: Gateway) -> None:
    client = gateway(max_body_bytes=300)
    big = client.post("/v1/chat/completions", json=_chat("x" * 400), headers=AUTH)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    over = client.post("/v1/chat/completions", json=_chat(max_tokens=10_000), headers=AUTH)
    assert over.status_code == 400 and over.json()["error"]["code"] == "max_tokens_exceeded"
    bad = client.post("/v1/chat/completions", content=b"{not json", headers=AUTH)
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]["message"]
    invalid = client.post("/v1/chat/completions", json={"model": MODEL, "messages": []}, headers=AUTH)
    assert invalid.status_code == 400 and "messages" in invalid.json()["error"]["message"]
    unknown = client.post("/v1/chat/completions", json={**_chat(), "model": "gpt-9"}, headers=AUTH)
    assert unknown.status_code == 404


def test_upstream_errors_are_clean(gateway: Gateway) -> None:
    passed = gateway().post("/v1/chat/completions", json=_chat("upstream-400"), headers=AUTH)
    assert passed.status_code == 400 and passed.json()["error"]["message"] == "prompt too long"
    settings = GatewaySettings(
        upstream_url="http://127.0.0.1:9",
        model_name=MODEL,
        model_version="7",
        policy_path=POLICY,
        api_key_hashes=[hash_key(KEY)],
    )
    down = TestClient(create_app(settings))
    r = down.post("/v1/chat/completions", json=_chat(), headers=AUTH)
    assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable"
    assert down.get("/ready").status_code == 503 and down.get("/health").status_code == 200
    assert "Traceback" not in r.text


def test_models_ready_and_metrics(gateway: Gateway) -> None:
    client = gateway()
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers=AUTH).json()["data"][0]["id"] == MODEL
    assert client.get("/ready").json()["status"] == "ready"
    client.post("/v1/chat/completions", json=_chat(), headers=AUTH)
    client.post("/v1/chat/completions", json=_chat())
    text = client.get("/metrics").text
    assert 'lmforge_gateway_filter_actions_total{action="redact",rule="pii"} 2.0' in text
    assert 'lmforge_gateway_rejections_total{reason="auth"}' in text
    assert 'lmforge_gateway_requests_total{endpoint="/v1/chat/completions",status="200"} 1.0' in text
    assert "lmforge_gateway_ttft_seconds_bucket" in text and "lmforge_gateway_request_seconds_bucket" in text
