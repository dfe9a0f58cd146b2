"""Serve the champion: resolve it in MLflow, start vLLM + the gateway on it, prove it answers.

    serve_champion(cfg)           # (re)start -> {"gateway_url", "api_key", "model", "version", "request", ...}
    ensure_champion_served(cfg)   # the same, but keeps a running stack that already serves the champion

The champion's HF directory comes from the registry's artifact store (not from runs/), so what is served is
exactly what was reviewed. The API key is generated per start unless LMFORGE_API_KEYS names them, and is
returned once; the gateway keeps only its hash.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmforge import envs
from lmforge.artifacts import atomic_dir, is_complete
from lmforge.config import LMForgeConfig
from lmforge.registry.register import download_model, hf_model_path
from lmforge.registry.stage import served_role
from lmforge.registry.tracking import setup_tracking


def serve_champion(cfg: LMForgeConfig) -> dict:
    from lmforge.serve.stack import start_stack

    name = cfg.model_name(served_role(cfg))
    version = champion_version(cfg, name)
    hf_dir = fetch_version(cfg, name, version)
    keys = [k for k in (envs.LMFORGE_API_KEYS.get() or "").split(",") if k] or [f"lmf-{secrets.token_urlsafe(24)}"]
    info = start_stack(cfg, hf_dir, name, version, keys)
    record_serving_settings(cfg, name, version, info.engine_settings)
    prompt = cfg.registry.sample_prompts[0]
    reply = ask(info.gateway_url, keys[0], name, prompt)
    return {"gateway_url": info.gateway_url, "vllm_url": info.vllm_url, "api_key": keys[0], "model": name,
            "version": version, "request": prompt, **reply}


def ensure_champion_served(cfg: LMForgeConfig) -> dict:
    """Keep a ready stack that serves the current champion (``api_key`` is then None: it was shown when the
    stack started); otherwise start one like ``serve_champion``."""
    from lmforge.serve.stack import admin_key, stack_status

    name = cfg.model_name(served_role(cfg))
    version = champion_version(cfg, name)
    if not serves(cfg, name, version):
        return serve_champion(cfg)
    status = stack_status(cfg)
    prompt = cfg.registry.sample_prompts[0]
    reply = ask(status["gateway_url"], admin_key(cfg), name, prompt)
    return {"gateway_url": status["gateway_url"], "vllm_url": status["vllm_url"], "api_key": None, "model": name,
            "version": version, "request": prompt, "reused": True, **reply}


def serves(cfg: LMForgeConfig, name: str, version: str) -> bool:
    """Whether the profile's stack is up, ready and serving ``name`` v``version``."""
    from lmforge.serve.stack import stack_status

    status = stack_status(cfg)
    return bool(status["running"] and status["gateway_ready"] and status.get("model") == name
                and str(status.get("version")) == version)


def record_serving_settings(cfg: LMForgeConfig, name: str, version: str, settings: dict) -> None:
    """Tag the served version with the KV cache and batching settings vLLM runs it with (``serve.settings``)."""
    setup_tracking(cfg)
    MlflowClient().set_model_version_tag(name, version, "serve.settings", json.dumps(settings, sort_keys=True))


def champion_version(cfg: LMForgeConfig, name: str) -> str:
    setup_tracking(cfg)
    try:
        return str(MlflowClient().get_model_version_by_alias(name, "champion").version)
    except MlflowException as err:
        raise LookupError(f"{name} has no champion yet: run `lmforge register` (gates must pass) first") from err


def alias_version(cfg: LMForgeConfig, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when it is not set."""
    setup_tracking(cfg)
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def fetch_version(cfg: LMForgeConfig, name: str, version: str) -> Path:
    """The version's HF directory, downloaded once into the state dir (atomic, marked complete)."""
    dest = envs.state_dir() / "serve" / "models" / f"{name}-v{version}"
    if not is_complete(dest):
        with atomic_dir(dest, {"model": name, "version": version}) as tmp:
            download_model(cfg, name, version, tmp)
    hf_dir = hf_model_path(dest)
    if hf_dir is None:
        raise FileNotFoundError(f"{dest} holds no HF model: delete it and retry")
    return hf_dir


def ask(gateway_url: str, api_key: str, model: str, prompt: str, max_tokens: int = 48) -> dict:
    """One chat completion through the gateway with the official openai client."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=2, timeout=120)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0
    )
    completion = raw.parse()
    return {
        "response": completion.choices[0].message.content,
        "served_by": raw.headers.get("x-lmforge-model"),
        "policy_version": raw.headers.get("x-lmforge-policy-version"),
    }
