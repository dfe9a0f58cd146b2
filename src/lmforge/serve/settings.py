"""What the gateway needs to run, as one JSON-serialisable object (the stack writes it to a file).

API keys are stored only as sha256 hashes; ``from_serve_config`` hashes plaintext keys and drops them.
"""

from __future__ import annotations

from pathlib import Path

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
    max_body_bytes: int = 64_000
    max_tokens_limit: int = 512
    rate_limit_rpm: int = 600
    rate_burst: int = 60
    upstream_timeout_s: float = Field(300.0, description="Seconds to wait for vLLM on one request.")

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
    ) -> GatewaySettings:
        """Settings from the profile's serve section; plaintext keys are hashed here and dropped."""
        return cls(
            upstream_url=upstream_url,
            model_name=model_name,
            model_version=model_version,
            policy_path=policy_path,
            api_key_hashes=[hash_key(k) for k in api_keys],
            admin_key_hashes=[hash_key(k) for k in admin_keys or []],
            max_body_bytes=serve.max_body_bytes,
            max_tokens_limit=serve.max_tokens_limit,
            rate_limit_rpm=serve.rate_limit_rpm,
            rate_burst=serve.rate_burst,
        )


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower())
