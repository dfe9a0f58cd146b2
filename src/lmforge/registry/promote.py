"""Move aliases only through gates, and keep the history MLflow does not.

    promote_to_champion(cfg, "lmforge-tiny-student", "3", by="alice", reason="beats v2")
    rollback_champion(cfg, "lmforge-tiny-student", by="alice", reason="v3 answers worse")  # back to v2

Every alias move is appended to the registered model's promotion log, stored as tags
``lmforge.alias_log.<ns timestamp>`` on the registered model itself, so the log lives wherever the registry
lives (SQLite here, PostgreSQL in production) and ``history()`` lists it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmforge.config import LMForgeConfig
from lmforge.registry.tracking import access_checked, setup_tracking

LOG_PREFIX = "lmforge.alias_log."
APPROVAL_TAG = "lmforge.approval"
KNOWN_ALIASES = ("challenger", "champion")


class PromotionRefused(RuntimeError):
    """A gate failed or an approval is missing; the message says which."""


@dataclass(frozen=True)
class AliasMove:
    at: str
    alias: str
    from_version: str | None
    to_version: str
    by: str
    reason: str


def move_alias(cfg: LMForgeConfig, name: str, alias: str, version: str, by: str, reason: str) -> AliasMove:
    """Point ``alias`` at ``version`` and append the move to the promotion log."""
    if alias not in KNOWN_ALIASES:
        raise ValueError(f"unknown alias {alias!r}: lmforge uses {', '.join(KNOWN_ALIASES)}")
    setup_tracking(cfg)
    client = MlflowClient()
    _get_version(client, name, version)
    try:
        previous = client.get_model_version_by_alias(name, alias).version
    except MlflowException:
        previous = None
    move = AliasMove(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), alias,
                     str(previous) if previous else None, str(version), by, reason)
    with access_checked(f"move alias {alias!r} of {name}"):
        client.set_registered_model_alias(name, alias, version)
        client.set_registered_model_tag(name, f"{LOG_PREFIX}{time.time_ns()}", json.dumps(move.__dict__))
    return move


def gate_failures(cfg: LMForgeConfig, name: str, version: str) -> list[str]:
    """Every reason ``version`` may not become champion; empty when it may."""
    setup_tracking(cfg)
    tags = _get_version(MlflowClient(), name, version).tags
    failures = [
        f"gate {key.removeprefix('lmforge.gate.')} is {value}"
        for key, value in sorted(tags.items())
        if key.startswith("lmforge.gate.") and value not in ("passed", "n/a")
    ]
    if "lmforge.gate.data" not in tags:
        failures.append("no data gate recorded")
    if cfg.registry.require_approval and APPROVAL_TAG not in tags:
        failures.append(f"no recorded approval: run `lmforge approve {name} {version} --by NAME --reason ...`")
    return failures


def promote_to_champion(cfg: LMForgeConfig, name: str, version: str, by: str, reason: str) -> AliasMove:
    """Move ``champion`` to ``version`` if every gate passed (and an approval is recorded when required)."""
    failures = gate_failures(cfg, name, version)
    if failures:
        raise PromotionRefused(f"{name} v{version} cannot become champion: " + "; ".join(failures))
    return move_alias(cfg, name, "champion", version, by=by, reason=reason)


def previous_champion(cfg: LMForgeConfig, name: str) -> str | None:
    """The version ``champion`` pointed at before its last move (from the promotion log), or None."""
    moves = [m for m in history(cfg, name) if m.alias == "champion"]
    return moves[-1].from_version if moves else None


def rollback_champion(cfg: LMForgeConfig, name: str, by: str, reason: str) -> AliasMove:
    """Move ``champion`` back to the previous champion, logged like any move. No gates: it was champion."""
    previous = previous_champion(cfg, name)
    if previous is None:
        raise LookupError(f"{name} has no previous champion in its promotion log: nothing to roll back to")
    return move_alias(cfg, name, "champion", previous, by=by, reason=f"rollback: {reason}")


def approve(cfg: LMForgeConfig, name: str, version: str, by: str, reason: str) -> None:
    """Record a human approval on the version (who, when, why)."""
    if not by.strip() or not reason.strip():
        raise ValueError("an approval needs --by and --reason")
    setup_tracking(cfg)
    client = MlflowClient()
    _get_version(client, name, version)
    record = {"by": by, "reason": reason, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with access_checked(f"approve {name} v{version}"):
        client.set_model_version_tag(name, version, APPROVAL_TAG, json.dumps(record))


def history(cfg: LMForgeConfig, name: str) -> list[AliasMove]:
    """The promotion log of a registered model, oldest first."""
    setup_tracking(cfg)
    try:
        model = MlflowClient().get_registered_model(name)
    except MlflowException as err:
        raise LookupError(f"no registered model {name!r}") from err
    entries = sorted((int(k.removeprefix(LOG_PREFIX)), v) for k, v in model.tags.items() if k.startswith(LOG_PREFIX))
    return [AliasMove(**json.loads(v)) for _, v in entries]


def _get_version(client: MlflowClient, name: str, version: str):
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as err:
        raise LookupError(f"no version {version} of registered model {name!r}") from err
