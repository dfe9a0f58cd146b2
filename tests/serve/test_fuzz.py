"""Whatever body a client sends, the gateway answers below 500 with an OpenAI-style reason (hypothesis, fake vLLM).

Bodies: request-shaped JSON whose fields take any JSON value, random JSON, strings of any code point (lone
surrogates included, as JSON escapes), huge and non-finite numbers, deep nesting, and raw bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lmforge.serve.auth import hash_key
from lmforge.serve.gateway import create_app
from lmforge.serve.settings import GatewaySettings
from tests.serve.conftest import make_fake_vllm

POLICY = Path(__file__).resolve().parents[2] / "configs" / "policy.yaml"
KEY, MODEL = "lmf-fuzz-key", "tiny-student"
PATHS = ("/v1/chat/completions", "/v1/completions")
any_text = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=20)  # surrogates too
numbers = st.one_of(st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True))
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(any_text, inner, max_size=4)),
                           max_leaves=12)
message = st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["user", "system", "assistant"]), json_values),
                                 "content": json_values})
request_shaped = st.fixed_dictionaries(
    {"model": st.one_of(st.just(MODEL), json_values)},
    optional={"messages": st.one_of(st.lists(message, max_size=3), json_values),
              "prompt": json_values, "max_tokens": st.one_of(numbers, json_values),
              "stream": json_values, "n": st.one_of(numbers, json_values), "temperature": json_values,
              "max_completion_tokens": json_values, "extra": json_values})


def _encoded(value: object) -> bytes:
    return json.dumps(value).encode()  # NaN, Infinity and \udXXX escapes as Python writes them


bodies = st.one_of(request_shaped.map(_encoded), json_values.map(_encoded), st.binary(max_size=64),
                   any_text.map(lambda t: t.encode("utf-8", "surrogatepass")))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings_ = GatewaySettings(upstream_url="http://vllm.test", model_name=MODEL, model_version="7",
                                policy_path=POLICY, api_key_hashes=[hash_key(KEY)], rate_limit_rpm=10**9,
                                rate_burst=10**9)
    app = create_app(settings_, transport=httpx.ASGITransport(app=make_fake_vllm()))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.slow  # 150 requests through the gateway: ~3 s
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, path=st.sampled_from(PATHS))
@example(body=b'{"model": "tiny-student", "messages": [{"role": "user", "content": "\\udcff"}]}',
         path=PATHS[0])
@example(body=b'{"model": "tiny-student", "prompt": "x", "max_tokens": 1e400}', path=PATHS[1])
@example(body=b'{"model": "tiny-student", "prompt": "x", "stream": "false"}', path=PATHS[1])
@example(body=b"[" * 60_000, path=PATHS[0])
def test_no_body_gets_a_5xx(client: TestClient, body: bytes, path: str) -> None:
    r = client.post(path, content=body, headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.json()["error"]["message"]
