"""Rollout: serve the champion (``champion``), put the challenger beside it on a growing share of traffic and
promote it or roll it back (``canary``), judged by pure functions over what each arm did (``analysis``).

``from lmforge.rollout import run_rollout, serve_champion`` works; the registry and MLflow are imported only
then, so ``lmforge.rollout.analysis`` stays a light import."""

from __future__ import annotations

from typing import Any

_LAZY = {"serve_champion": "champion", "ensure_champion_served": "champion", "run_rollout": "canary"}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'lmforge.rollout' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"lmforge.rollout.{_LAZY[name]}"), name)
