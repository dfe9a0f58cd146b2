"""What every flow shares: offline environment first, then the typed config."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from lmforge import envs
from lmforge.config import LMForgeConfig, load_config
from lmforge.quiet import quiet_third_party


def load(profile: str, overrides: list[str] | None) -> LMForgeConfig:
    envs.apply_offline_defaults()
    quiet_third_party()
    return load_config(profile, overrides)


def summary(result: Any) -> Any:
    """A stage result as plain JSON-able data (for flow return values and Prefect artifacts)."""
    if is_dataclass(result) and not isinstance(result, type):
        return {k: str(v) if not isinstance(v, int | float | str | bool | dict | list) else v
                for k, v in asdict(result).items()}
    return result
