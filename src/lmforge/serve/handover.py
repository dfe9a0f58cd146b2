"""Hand the stack's traffic from one vLLM to another: a challenger started beside the champion, a promoted (or
rolled-back-to) vLLM adopted as the stack's champion, and the champion it replaces kept warm for a while.

    engine = start_challenger(cfg, model_dir, "lmforge-tiny-student", port)   # launched, not waited for
    adopt_engine(cfg, engine.base_url, engine.pid, "4")   # the gateway was switched over its admin API first
    warm_previous(cfg)   # {"pid", "vllm_url", "version": "3", "warm_until"}: `lmforge rollback` takes it back

The old champion stays up ``serve.previous_champion_grace_s`` after a switch: its supervisor's expiry file says
when to stop, and it stops then once no request is in flight (``lmforge.serve.supervisor``). Only the last
champion is kept warm.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lmforge import envs
from lmforge.artifacts import write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.serve.engine import VLLMEngine, stop_process_group, supervisor_files
from lmforge.serve.settings import GatewaySettings
from lmforge.serve.stack import (
    gateway_settings_path,
    port_of,
    require_free_port,
    role_runs,
    state_path,
    supervisor_dir,
    vllm_key,
)
from lmforge.serve.supervisor import DRAIN_TIMEOUT_S, retire_at


def start_challenger(cfg: LMForgeConfig, model_dir: Path, model_name: str, port: int) -> VLLMEngine:
    """Launch (not wait for) a challenger vLLM beside the champion, detached, serving the same model name; a
    previous champion kept warm on ``port`` is stopped first."""
    previous = warm_previous(cfg)
    if previous and port_of(previous["vllm_url"]) == port:
        forget_previous(cfg, stop=True)
    require_free_port(cfg.serve.host, port)
    log_dir = envs.state_dir() / "serve" / "logs" / cfg.profile
    return VLLMEngine(model_dir, [model_name], cfg.serve, port, log_dir / f"vllm-{port}.log", detached=True,
                      api_key=vllm_key(cfg), supervisor_dir=supervisor_dir(cfg)).start()


def adopt_engine(cfg: LMForgeConfig, vllm_url: str, pid: int, version: str, policy_path: Path | None = None) -> bool:
    """Make the vLLM at ``vllm_url`` (supervisor ``pid``) the stack's champion in the record and the gateway
    settings, and keep the old champion's vLLM warm as ``previous`` for ``serve.previous_champion_grace_s``
    (then it stops once idle). Returns whether the old champion was stopped (a grace of 0 waits for that).

    The running gateway was already switched over its admin API; the settings file is rewritten so a gateway
    restart serves the same (``policy_path`` None: the current policy stays).
    """
    _expiry_file(cfg, vllm_url).unlink(missing_ok=True)  # a warm previous champion taken back is not retired
    path = state_path(cfg)
    state = json.loads(path.read_text())
    pids = state.setdefault("pids", {})
    old = pids.get("vllm")
    old_previous = pids.get("previous")
    old_champion = {"pid": old, "vllm_url": state.get("vllm_url"), "version": state.get("version")}
    pids["vllm"] = pid
    for role in ("challenger", "previous"):
        pids.pop(role, None)
    state.pop("previous", None)
    state.update(vllm_url=vllm_url, version=version)
    grace = cfg.serve.previous_champion_grace_s
    keep = bool(old) and old != pid and role_runs(old, "vllm")
    if keep:
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + grace))
        state["previous"] = {**old_champion, "warm_until": until}
        pids["previous"] = old
    write_json_atomic(path, state)
    if old_previous and old_previous not in (old, pid) and role_runs(old_previous, "previous"):
        stop_process_group(old_previous)  # the one before: only the last champion is kept warm
    settings_file = gateway_settings_path(cfg)
    settings = GatewaySettings.model_validate_json(settings_file.read_text())
    update: dict[str, Any] = {"upstream_url": vllm_url, "model_version": version}
    if policy_path is not None:
        update["policy_path"] = policy_path
    write_json_atomic(settings_file, settings.model_copy(update=update).model_dump(mode="json"))
    if not keep:
        return False
    retire_at(_expiry_file(cfg, state["previous"]["vllm_url"]), grace)
    if grace > 0:
        return False
    return _wait_gone(old, DRAIN_TIMEOUT_S + 30)


def warm_previous(cfg: LMForgeConfig) -> dict[str, Any] | None:
    """The previous champion kept warm (``pid``, ``vllm_url``, ``version``, ``warm_until``), if it still runs."""
    path = state_path(cfg)
    if not path.is_file():
        return None
    previous = json.loads(path.read_text()).get("previous")
    if previous and role_runs(previous["pid"], "previous"):
        return previous
    return None


def forget_previous(cfg: LMForgeConfig, stop: bool) -> None:
    """Drop the warm previous champion from the record (the caller is taking it over, or ``stop``: stop it)."""
    path = state_path(cfg)
    state = json.loads(path.read_text())
    previous = state.pop("previous", None)
    pid = state.get("pids", {}).pop("previous", None)
    write_json_atomic(path, state)
    if previous and not stop:
        _expiry_file(cfg, previous["vllm_url"]).unlink(missing_ok=True)  # it stays up: cancel its retirement
    if stop and pid and role_runs(pid, "previous"):
        stop_process_group(pid)


def _expiry_file(cfg: LMForgeConfig, vllm_url: str) -> Path:
    return supervisor_files(supervisor_dir(cfg), port_of(vllm_url))[1]


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not role_runs(pid, "vllm"):
            return True
        time.sleep(0.2)
    return False
