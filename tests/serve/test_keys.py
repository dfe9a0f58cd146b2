"""Named API keys: `lmforge keys create/list/revoke`, and a running gateway that follows the keys file."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lmforge.cli import main
from lmforge.serve.auth import hash_key
from lmforge.serve.gateway import create_app
from lmforge.serve.keys import KeyRing, create_key, revoke_key
from lmforge.serve.settings import GatewaySettings

POLICY = Path(__file__).resolve().parents[2] / "configs" / "policy.yaml"
MODEL = "tiny-student"


def _keys_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict | None]:
    code = main(["keys", *argv])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_keys_cli_creates_lists_and_revokes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LMFORGE_STATE_DIR", str(tmp_path))
    code, created = _keys_cli(capsys, "create", "alice", "--rpm", "30")
    assert code == 0 and created["api_key"].startswith("lmf-") and created["rpm"] == 30
    path = Path(created["keys_file"])
    assert path == tmp_path / "serve" / "tiny-keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = path.read_text()
    assert created["api_key"] not in stored and hash_key(created["api_key"]) in stored  # the hash only
    create_key(path, "bob")
    code, listed = _keys_cli(capsys, "list")
    assert [(k["name"], k["rpm"]) for k in listed["keys"]] == [("alice", 30), ("bob", None)]
    assert "sha256" not in json.dumps(listed)
    assert _keys_cli(capsys, "create", "alice")[0] == 1  # one line to stderr, exit 1
    assert _keys_cli(capsys, "revoke", "alice") == (0, {"revoked": "alice", "keys_file": str(path)})
    assert [k["name"] for k in _keys_cli(capsys, "list")[1]["keys"]] == ["bob"]


@pytest.mark.parametrize("name, rpm", [("bob", None), ("admin", None), ("default-2", None), ("Bad Name", None),
                                       ("", None), ("x" * 65, None), ("dave", 0)])
def test_create_refuses_taken_reserved_and_malformed_names(tmp_path: Path, name: str, rpm: int | None) -> None:
    path = tmp_path / "keys.json"
    create_key(path, "bob")
    with pytest.raises(ValueError):
        create_key(path, name, rpm)
    with pytest.raises(LookupError):
        revoke_key(path, "carol")


def test_running_gateway_follows_the_keys_file(
    fake_vllm: FastAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A key created after the gateway started works at once, is limited at its own rpm, counted and logged by
    its name (never the secret); revoked, it gets 401."""
    path = tmp_path / "keys.json"
    settings = GatewaySettings(upstream_url="http://vllm.test", model_name=MODEL, model_version="7",
                               policy_path=POLICY, api_key_hashes=[hash_key("lmf-static")], keys_file=path,
                               keys_reload_s=0)
    client = TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake_vllm)))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    secret = "lmf-not-yet"
    assert client.post("/v1/chat/completions", json=body, headers=_auth(secret)).status_code == 401
    secret = create_key(path, "alice", rpm=2)
    with caplog.at_level(logging.INFO, logger="lmforge.gateway"):
        codes = [client.post("/v1/chat/completions", json=body, headers=_auth(secret)).status_code
                 for _ in range(3)]
    assert codes == [200, 200, 429]  # alice's own 2 per minute, not the gateway's 600
    assert "key=alice POST /v1/chat/completions 200" in caplog.text and secret not in caplog.text
    assert client.post("/v1/chat/completions", json=body, headers=_auth("lmf-static")).status_code == 200
    metrics = client.get("/metrics", headers=_auth("lmf-static")).text
    assert 'lmforge_gateway_key_requests_total{key="alice",outcome="allowed"} 2.0' in metrics
    assert 'lmforge_gateway_key_requests_total{key="alice",outcome="rate_limited"} 1.0' in metrics
    assert 'lmforge_gateway_key_requests_total{key="default",outcome="allowed"} 1.0' in metrics
    revoke_key(path, "alice")
    assert client.post("/v1/chat/completions", json=body, headers=_auth(secret)).status_code == 401


def test_key_ring_keeps_its_keys_through_a_broken_file_and_checks_at_most_every_reload_s(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    secret = create_key(path, "alice")
    ring = KeyRing(path, [("default", hash_key("lmf-static"))], reload_s=0)
    assert ring.identify(f"Bearer {secret}").name == "alice" and ring.names() == ["alice", "default"]
    path.write_text("{not json")
    assert ring.identify(f"Bearer {secret}").name == "alice"  # an unreadable file changes nothing
    assert ring.identify("Bearer lmf-static").name == "default" and ring.identify("Basic x") is None
    slow = KeyRing(path, reload_s=3600)
    path.write_text(json.dumps({"keys": {"bob": {"sha256": hash_key("lmf-bob"), "rpm": None}}}))
    assert slow.identify("Bearer lmf-bob").name == "bob"  # the first look loads it
    revoke_key(path, "bob")
    assert slow.identify("Bearer lmf-bob").name == "bob"  # the next look is an hour away


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
