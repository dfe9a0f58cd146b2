"""What the gateway needs to run, as one JSON-serialisable object (the stack writes it to a file).

API keys are stored only as sha256 hashes; ``from_serve_config`` hashes plaintext keys and drops them. The one
secret the gateway holds, the key vLLM requires of it, stays in its own file (mode 0600) that the settings name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lmforge.config import ServeConfig
from lmforge.serve.auth import hash_key


class GatewaySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    upstream_url: str = Field(description="Base URL of the vLLM OpenAI server, e.g. http://127.0.0.1:8100.")
    model_name: str = Field(description="The served model name clients must ask for.")
    model_version: str = Field(description="Registry version of the served model (a response header).")
    policy_path: Path = Field(description="Compliance policy YAML.")
    api_key_hashes: list[str] = Field(description="sha256 hex digests of the accepted API keys.")
    admin_key_hashes: list[str] = Field(
        default_factory=list,
        description="sha256 hex digests of admin keys: they open /admin (traffic routing for rollouts) and are "
        "accepted as API keys too (the rollout's own requests use one). Empty: no admin API.",
    )
    keys_file: Path | None = Field(
        None, description="Named keys (``lmforge keys``), sha256 only; re-read when it changes. None: static keys.")
    keys_reload_s: float = Field(1.0, ge=0, description="Seconds between looks at the keys file for changes.")
    upstream_key_file: Path | None = Field(
        None, description="File (mode 0600) holding the key vLLM requires (its VLLM_API_KEY), sent upstream as "
        "'Authorization: Bearer'. None: vLLM takes requests without a key.")
    max_body_bytes: int = 64_000
    max_tokens_limit: int = Field(
        512, description="max_tokens above this gets 400; a request without one gets min(this, vLLM's room left).")
    rate_limit_rpm: int = Field(600, description="Requests per minute per key (a named key may carry its own).")
    rate_burst: int = 60
    rate_limit_storage: str = Field(
        "memory://", description="Where rate-limit windows live (``limits`` storage URI): memory:// (this process) "
        "or redis://HOST:PORT shared by every replica.")
    metrics_port: int | None = Field(
        None, description="Serve /metrics on this port only (same host as the API). None: on the API port.")
    metrics_open: bool = Field(
        False, description="On the API port, /metrics without a key (otherwise any valid API key reads it).")
    upstream_timeout_s: float = Field(300.0, description="Seconds to wait for vLLM on one request.")
    supervisor_metrics_dir: Path | None = Field(
        None, description="Folder of the vLLM supervisors' metric files (Prometheus textfile format, *.prom), "
        "served on /metrics beside the gateway's own (None: none).")
    generation_defaults: dict[str, Any] = Field(
        default_factory=dict, description="The served version's sampling defaults (lmforge.generation."
        "sampling_defaults); the gateway adds its max_tokens (capped at max_tokens_limit) and stop to requests "
        "that name none: vLLM applies the rest itself from generation_config.json.")

    @field_validator("api_key_hashes")
    @classmethod
    def _hashes_only(cls, value: list[str]) -> list[str]:
        if not value or not all(_is_sha256(h) for h in value):
            raise ValueError(
                "api_key_hashes must be a non-empty list of sha256 hex digests (not plaintext keys)"
            )
        return value

    @field_validator("admin_key_hashes")
    @classmethod
    def _admin_hashes_only(cls, value: list[str]) -> list[str]:
        if not all(_is_sha256(h) for h in value):
            raise ValueError("admin_key_hashes must be sha256 hex digests (not plaintext keys)")
        return value

    @classmethod
    def from_serve_config(
        cls,
        serve: ServeConfig,
        *,
        upstream_url: str,
        model_name: str,
        model_version: str,
        policy_path: Path,
        api_keys: list[str],
        admin_keys: list[str] | None = None,
        keys_file: Path | None = None,
        upstream_key_file: Path | None = None,
        generation_defaults: dict[str, Any] | None = None,
    ) -> GatewaySettings:
        """Settings from the profile's serve section; plaintext keys are hashed here and dropped."""
        return cls(
            upstream_url=upstream_url,
            model_name=model_name,
            model_version=model_version,
            policy_path=policy_path,
            api_key_hashes=[hash_key(k) for k in api_keys],
            admin_key_hashes=[hash_key(k) for k in admin_keys or []],
            keys_file=keys_file,
            upstream_key_file=upstream_key_file,
            max_body_bytes=serve.max_body_bytes,
            max_tokens_limit=serve.max_tokens_limit,
            rate_limit_rpm=serve.rate_limit_rpm,
            rate_burst=serve.rate_burst,
            rate_limit_storage=serve.rate_limit_storage,
            metrics_port=serve.metrics_port,
            metrics_open=serve.metrics_open,
            generation_defaults=generation_defaults or {},
        )


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower())
