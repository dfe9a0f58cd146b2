"""Gateway routing for rollouts against two fake vLLMs (ASGI, no network): canary split, shadow copies,
per-arm headers and policies, the admin API and its auth, the observation ledger, a challenger that is down."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lmforge.compliance import load_policy
from lmforge.serve.admin import AdminClient, AdminError
from lmforge.serve.auth import hash_key
from lmforge.serve.gateway import create_app
from lmforge.serve.routing import Arm, Router
from lmforge.serve.settings import GatewaySettings

POLICY = Path(__file__).resolve().parents[2] / "configs" / "policy.yaml"
KEY, ADMIN = "lmf-test-key", "lmf-admin-key"
AUTH, ADMIN_AUTH = {"Authorization": f"Bearer {KEY}"}, {"Authorization": f"Bearer {ADMIN}"}
MODEL = "tiny-student"
CHALLENGER = {"upstream_url": "http://challenger.test", "model_version": "8"}
FLAG_ALL = {"version": "flag-all-1", "rules": [{"id": "everything", "kind": "pattern", "action": "flag",
                                                 "params": {"regex": r"\w{1,8}"}}]}


class HostTransport(httpx.AsyncBaseTransport):
    """Send each request to the fake vLLM of its host; an unknown host is a server that is down."""

    def __init__(self, apps: dict[str, FastAPI]) -> None:
        self._apps = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in self._apps:
            raise httpx.ConnectError("connection refused", request=request)
        return await self._apps[request.url.host].handle_async_request(request)


@pytest.fixture
def arms(fake_vllm_factory: Callable[[], FastAPI]) -> dict[str, FastAPI]:
    return {"champion.test": fake_vllm_factory(), "challenger.test": fake_vllm_factory()}


@pytest.fixture
def client(arms: dict[str, FastAPI]) -> Iterator[TestClient]:
    settings = GatewaySettings(upstream_url="http://champion.test", model_name=MODEL, model_version="7",
                               policy_path=POLICY, api_key_hashes=[hash_key(KEY)],
                               admin_key_hashes=[hash_key(ADMIN)], rate_burst=1000)
    with TestClient(create_app(settings, transport=HostTransport(arms)), raise_server_exceptions=False) as c:
        yield c  # the context keeps one event loop alive, so shadow copies finish between requests


def _chat(client: TestClient, n: int, stream: bool = False) -> list[httpx.Response]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return [client.post("/v1/chat/completions", json=body, headers=AUTH) for _ in range(n)]


def _route(client: TestClient, **body: object) -> dict:
    r = client.put("/admin/route", json=body, headers=ADMIN_AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def _observations(client: TestClient, since: int = 0) -> list[dict]:
    for _ in range(200):  # shadow copies run after the client's answer: wait until none is pending
        body = client.get(f"/admin/observations?since={since}", headers=ADMIN_AUTH).json()
        if body["pending"] == 0:
            return body["observations"]
        time.sleep(0.01)
    raise AssertionError("shadow copies never finished")


def test_router_split_is_exact_per_hundred() -> None:
    policy = load_policy(POLICY)
    # The router only picks arms; it never touches their HTTP clients.
    champion = Arm("champion", "http://a", "1", policy, None)  # type: ignore[arg-type]
    challenger = Arm("challenger", "http://b", "2", policy, None)  # type: ignore[arg-type]
    router = Router(champion)
    assert router.pick() == (champion, None)
    for share in (1, 10, 33, 50, 100):
        router.set_route(challenger if share == 1 else None, "canary", share)
        picks = [router.pick()[0] for _ in range(100)]
        assert picks.count(challenger) == share
    router.set_route(None, "shadow", 10)
    picks = [router.pick() for _ in range(20)]
    assert all(p[0] is champion for p in picks) and sum(p[1] is challenger for p in picks) == 2
    assert router.clear() is challenger and router.pick() == (champion, None)
    with pytest.raises(ValueError, match="no challenger"):
        router.set_route(None, "canary", 10)


def test_canary_share_goes_to_challenger_with_its_headers(client: TestClient, arms: dict[str, FastAPI]) -> None:
    state = _route(client, challenger=CHALLENGER, mode="canary", share=50)
    assert state["challenger"]["version"] == "8" and state["cursor"] == 0
    responses = _chat(client, 6) + _chat(client, 4, stream=True)
    assert all(r.status_code == 200 for r in responses)
    versions = [r.headers["x-lmforge-model-version"] for r in responses]
    assert versions.count("8") == 5 and versions.count("7") == 5
    assert {r.headers["x-lmforge-arm"] for r in responses if r.headers["x-lmforge-model-version"] == "8"} == {
        "challenger"}
    assert len(arms["challenger.test"].state.requests) == 5
    observed = _observations(client)
    assert [o["arm"] for o in observed].count("challenger") == 5 and not any(o["mirrored"] for o in observed)
    assert all(o["status"] == 200 and o["verdicts"] == 2 and o["seconds"] > 0 for o in observed)  # email + phone


def test_shadow_mirrors_without_serving_and_uses_the_challenger_policy(
    client: TestClient, arms: dict[str, FastAPI]
) -> None:
    _route(client, challenger={**CHALLENGER, "policy": FLAG_ALL}, mode="shadow", share=100)
    responses = _chat(client, 3) + _chat(client, 2, stream=True)
    assert {r.headers["x-lmforge-model-version"] for r in responses} == {"7"}  # clients only see the champion
    assert all("<EMAIL>" in r.text for r in responses)  # and the champion's policy
    observed = _observations(client)
    mirrored = [o for o in observed if o["mirrored"]]
    assert len(mirrored) == 5 and {o["arm"] for o in mirrored} == {"challenger"}
    assert all(o["verdicts"] > 2 and not o["blocked"] for o in mirrored)  # flagged word by word
    assert len(arms["challenger.test"].state.requests) == 5
    metrics = client.get("/metrics", headers=AUTH).text
    assert 'lmforge_gateway_arm_requests_total{arm="challenger",outcome="ok",shadow="true",version="8"} 5.0' in metrics


def test_a_challenger_that_is_down_counts_as_errors(client: TestClient) -> None:
    _route(client, challenger={**CHALLENGER, "upstream_url": "http://gone.test"}, mode="canary", share=100)
    r = _chat(client, 1)[0]
    assert r.status_code == 503 and r.headers["x-lmforge-arm"] == "challenger"
    assert [(o["arm"], o["status"]) for o in _observations(client)] == [("challenger", 503)]
    _route(client, mode="shadow", share=100)  # the challenger is kept when only the share changes
    r = _chat(client, 1)[0]
    assert r.status_code == 200 and r.headers["x-lmforge-model-version"] == "7"
    assert [(o["arm"], o["status"]) for o in _observations(client, since=1)] == [("champion", 200), ("challenger", 503)]


def test_promote_and_clear(client: TestClient) -> None:
    _route(client, challenger={**CHALLENGER, "policy": FLAG_ALL}, mode="canary", share=10)
    state = client.post("/admin/promote", headers=ADMIN_AUTH).json()
    assert state["champion"]["version"] == "8" and state["challenger"] is None and state["share"] == 0
    r = _chat(client, 1)[0]
    assert r.headers["x-lmforge-model-version"] == "8" and r.headers["x-lmforge-policy-version"] == "flag-all-1"
    assert client.get("/v1/models", headers=AUTH).json()["data"][0]["version"] == "8"
    assert client.post("/admin/promote", headers=ADMIN_AUTH).status_code == 409  # nothing left to promote
    _route(client, challenger={**CHALLENGER, "model_version": "9"}, mode="canary", share=100)
    assert client.delete("/admin/route", headers=ADMIN_AUTH).json()["challenger"] is None
    assert _chat(client, 1)[0].headers["x-lmforge-model-version"] == "8"


def test_admin_api_needs_the_admin_key_and_valid_routes(client: TestClient) -> None:
    assert client.get("/admin/route", headers=AUTH).status_code == 401  # a client key is not an admin key
    assert client.get("/admin/route").status_code == 401
    assert client.post("/v1/chat/completions", headers=ADMIN_AUTH, json={
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).status_code == 200  # the reverse is allowed
    for body in ({"share": 101}, {"share": 10}, {"challenger": CHALLENGER, "mode": "blue", "share": 10},
                 {"challenger": {**CHALLENGER, "policy": {"version": 1, "rules": []}}, "share": 10}):
        r = client.put("/admin/route", json=body, headers=ADMIN_AUTH)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_route", body


def test_admin_api_is_off_without_admin_keys(fake_vllm: FastAPI) -> None:
    settings = GatewaySettings(upstream_url="http://vllm.test", model_name=MODEL, model_version="7",
                               policy_path=POLICY, api_key_hashes=[hash_key(KEY)])
    client = TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake_vllm)))
    assert client.get("/admin/route", headers=AUTH).status_code == 404


def test_admin_client_speaks_the_api(client: TestClient) -> None:
    admin = AdminClient("http://testserver", ADMIN)
    admin._http = client  # the TestClient is an httpx.Client bound to the app
    client.headers["Authorization"] = f"Bearer {ADMIN}"
    assert admin.set_route(100, "canary", challenger=CHALLENGER)["share"] == 100
    _chat(client, 2)
    observed, cursor, pending = admin.observations(since=0)
    assert cursor == 2 and pending == 0 and [o.arm for o in observed] == ["challenger"] * 2 and observed[0].ok
    with pytest.raises(AdminError, match="HTTP 400"):
        admin.set_route(150)
    assert admin.clear_route()["challenger"] is None

