"""Gateway logic against a fake vLLM (ASGI, no network): auth, limits, filters, streams, headers, metrics."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lmforge.serve.auth import RateLimits, hash_key, rate_limit_item
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
    """The gateway in front of ``upstream`` (not started: a ``with`` block runs its lifespan)."""
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


def test_missing_max_tokens_gets_the_room_vllm_gives_capped_at_the_limit(fake_vllm: FastAPI) -> None:
    """The openai SDK's default call names no max_tokens. vLLM refuses a max_tokens above its context (256 here)
    and clamps the rest to the room the prompt leaves, so the gateway sends min(limit, context): over the context
    the request would fail (the old fill-in of 512 did), without any the limit would not hold."""
    upstream = fake_vllm
    r = _client(upstream).post("/v1/chat/completions", json=_chat(), headers=AUTH)
    assert r.status_code == 200 and upstream.state.requests[-1]["max_tokens"] == 256
    _client(upstream, max_tokens_limit=64).post("/v1/completions", json={"model": MODEL, "prompt": "hi"},
                                                headers=AUTH)
    assert upstream.state.requests[-1]["max_tokens"] == 64
    _client(upstream).post("/v1/chat/completions", json=_chat(max_completion_tokens=9), headers=AUTH)
    assert "max_tokens" not in upstream.state.requests[-1]  # the client's own limit is left as it is
    over = _client(upstream).post("/v1/chat/completions", json=_chat(max_tokens=300), headers=AUTH)
    assert over.status_code == 400 and "max_model_len=256" in over.json()["error"]["message"]


def test_lone_surrogate_and_unencodable_json_get_400(gateway: Gateway) -> None:
    client = gateway()
    bodies = {
        "surrogate": b'{"model": "tiny-student", "messages": [{"role": "user", "content": "\\udcff"}]}',
        "NaN": b'{"model": "tiny-student", "prompt": "x", "temperature": NaN}',
        "overflow": b'{"model": "tiny-student", "prompt": "x", "temperature": 1e400}',
        "nested": b'{"model": "tiny-student", "prompt": "x", "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "digits": b'{"model": "tiny-student", "prompt": "x", "seed": ' + b"9" * 5000 + b"}",
    }
    for name, body in bodies.items():
        r = client.post("/v1/completions", content=body, headers=AUTH)
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
    assert "surrogate" in client.post("/v1/completions", content=bodies["surrogate"], headers=AUTH).text
    pair = json.dumps(_chat("\U0001f600")).encode()  # an escaped surrogate pair is a character: allowed
    assert b"\\ud83d\\ude00" in pair
    assert client.post("/v1/chat/completions", content=pair, headers=AUTH).status_code == 200


def test_version_defaults_fill_what_a_request_leaves_out(fake_vllm: FastAPI) -> None:
    """The served version's max_tokens (capped at the limit and vLLM's context, 256 here) and stop apply only
    where the request names none."""
    client = _client(fake_vllm, generation_defaults={"max_tokens": 64, "stop": ["\nUser:"], "temperature": 0.7})
    client.post("/v1/chat/completions", json=_chat(), headers=AUTH)
    sent = fake_vllm.state.requests[-1]
    assert (sent["max_tokens"], sent["stop"]) == (64, ["\nUser:"]) and "temperature" not in sent  # vLLM's job
    client.post("/v1/chat/completions", json=_chat(max_tokens=200, stop=["."], temperature=0.2), headers=AUTH)
    sent = fake_vllm.state.requests[-1]
    assert (sent["max_tokens"], sent["stop"], sent["temperature"]) == (200, ["."], 0.2)
    _client(fake_vllm, generation_defaults={"max_tokens": 4096}).post("/v1/completions", headers=AUTH,
                                                                     json={"model": MODEL, "prompt": "hi"})
    assert fake_vllm.state.requests[-1]["max_tokens"] == 256 and "stop" not in fake_vllm.state.requests[-1]


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


def test_rate_limit_windows_hold_rpm_and_burst() -> None:
    """A bucket of ``burst`` refilled at ``rpm``/min is a window of burst*60/rpm seconds holding ``burst``."""
    assert (rate_limit_item(600, 60).amount, rate_limit_item(600, 60).get_expiry()) == (60, 6)
    assert (rate_limit_item(1, 2).amount, rate_limit_item(1, 2).get_expiry()) == (2, 120)
    assert (rate_limit_item(1000, 60).amount, rate_limit_item(1000, 60).get_expiry()) == (66, 4)  # whole seconds
    assert (rate_limit_item(60_000, 1000).amount, rate_limit_item(60_000, 1000).get_expiry()) == (1000, 1)

    async def hits() -> list[float]:
        limits = RateLimits("memory://", rpm=60, burst=1)
        return [await limits.acquire("a"), await limits.acquire("a"), await limits.acquire("b"),
                await limits.acquire("c", rpm=1), await limits.acquire("c", rpm=1)]

    first, second, other, own, own_again = asyncio.run(hits())
    assert first == 0 and 0 < second <= 1.0 and other == 0
    assert own == 0 and 59 < own_again <= 60  # a key's own rpm of 1: one request, then a minute's wait


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
    assert r.headers["retry-after"] == "5"  # vLLM is down: come back once the supervisor has restarted it
    ready = down.get("/ready")
    assert ready.status_code == 503 and ready.headers["retry-after"] == "5" and down.get("/health").status_code == 200
    assert "Traceback" not in r.text


class _DiesOnConnection(httpx.AsyncBaseTransport):
    """A vLLM killed while the gateway held a kept-alive connection to it: closed without an answer."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)


def test_a_connection_closed_without_an_answer_is_unavailable_not_a_failure() -> None:
    settings = GatewaySettings(upstream_url="http://vllm.test", model_name=MODEL, model_version="7",
                               policy_path=POLICY, api_key_hashes=[hash_key(KEY)])
    client = TestClient(create_app(settings, transport=_DiesOnConnection()))
    r = client.post("/v1/chat/completions", json=_chat(), headers=AUTH)
    assert r.status_code == 503 and r.headers["retry-after"] == "5"


def test_models_ready_and_metrics(gateway: Gateway) -> None:
    client = gateway()
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers=AUTH).json()["data"][0]["id"] == MODEL
    assert client.get("/ready").json()["status"] == "ready"
    client.post("/v1/chat/completions", json=_chat(), headers=AUTH)
    client.post("/v1/chat/completions", json=_chat())
    assert client.get("/metrics").status_code == 401  # the API port shows metrics to key holders only
    text = client.get("/metrics", headers=AUTH).text
    assert 'lmforge_gateway_filter_actions_total{action="redact",rule="pii"} 2.0' in text
    assert 'lmforge_gateway_rejections_total{reason="auth"}' in text
    assert 'lmforge_gateway_requests_total{endpoint="/v1/chat/completions",status="200"} 1.0' in text
    assert "lmforge_gateway_ttft_seconds_bucket" in text and "lmforge_gateway_request_seconds_bucket" in text
    assert 'lmforge_gateway_key_requests_total{key="default",outcome="allowed"} 2.0' in text


def test_upstream_gets_the_gateway_key_never_the_client_key(fake_vllm: FastAPI, tmp_path: Path) -> None:
    secret = tmp_path / "vllm.key"
    secret.write_text("vllm-only-secret\n")
    client = _client(fake_vllm, upstream_key_file=secret)
    assert client.post("/v1/chat/completions", json=_chat(), headers=AUTH).status_code == 200
    assert fake_vllm.state.headers[-1]["authorization"] == "Bearer vllm-only-secret"


def test_metrics_open_or_on_a_port_of_their_own(fake_vllm: FastAPI) -> None:
    assert _client(fake_vllm, metrics_open=True).get("/metrics").status_code == 200
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with _client(fake_vllm, metrics_port=port) as client:  # the lifespan starts the metrics server
        assert client.get("/metrics", headers=AUTH).status_code == 404
        client.get("/v1/models", headers=AUTH)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'lmforge_gateway_requests_total{endpoint="/v1/models",status="200"} 1.0' in text


def test_unreachable_rate_limit_storage_refuses_with_503_not_unlimited(gateway: Gateway) -> None:
    r = gateway(rate_limit_storage="redis://127.0.0.1:9").get("/v1/models", headers=AUTH)  # nothing listens on 9
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "rate_limit_unavailable"
