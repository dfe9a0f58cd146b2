"""Start, stop and inspect one profile's serving stack: vLLM (detached) and the gateway in front of it.

    info = start_stack(cfg, model_dir, "lmforge-tiny-student", "3", api_keys=["lmf-..."])
    info.gateway_url                # http://127.0.0.1:8000, ready: a 1-token completion went through it
    stack_status(cfg)               # {"running": True, "pids": {...}, "gateway_ready": True, ...}
    stop_stack(cfg)

Both servers run in their own sessions, so they outlive the command that started them; their pids, URLs
and log folder are recorded in ``<state>/serve/<profile>.json`` (written before waiting, so a failed start
can still be cleaned up). Starting a profile first stops whatever that file says is running for it.

Each start also makes an admin key for the gateway's ``/admin`` routing API, kept in
``<state>/serve/<profile>-admin.key`` (mode 0600; the gateway holds only its hash), and a key for vLLM itself
in ``<state>/serve/<profile>-vllm.key`` (mode 0600, made once): vLLM answers only requests that carry it, and only
the gateway sends it, so no client reaches the model around the gateway's keys, limits and filter. Named client keys
(``lmforge keys``) live in ``<state>/serve/<profile>-keys.json`` and outlive restarts. During a rollout the
challenger's vLLM is recorded as ``pids["challenger"]``, and a previous champion kept warm as
``pids["previous"]`` (``lmforge.serve.handover``); ``stop_stack`` stops them too.

Every vLLM of the stack runs under ``lmforge.serve.supervisor`` (the recorded pid is the supervisor's): a vLLM
that dies is restarted with backoff, nothing it left keeps running, and its restarts are in the gateway's
``/metrics`` (the supervisors' metric files in ``<state>/serve/supervisor/<profile>/``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lmforge import envs
from lmforge.artifacts import write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.generation import sampling_defaults
from lmforge.serve.engine import (
    EngineError,
    VLLMEngine,
    deep_probe,
    log_tail,
    stop_process_group,
    supervisor_files,
)
from lmforge.serve.settings import GatewaySettings
from lmforge.serve.supervisor import restarts

# What each recorded pid must be running: never signal a pid that was reused by something else. A vLLM's pid is
# its supervisor's, whose command line holds vLLM's.
_MARKERS = {"vllm": "vllm", "challenger": "vllm", "previous": "vllm", "gateway": "lmforge.serve.gateway"}
GATEWAY_READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StackInfo:
    gateway_url: str
    vllm_url: str
    pids: dict[str, int]
    log_dir: Path
    model: str = ""
    version: str = ""
    vllm_ready_s: float | None = None  # seconds from launch to vLLM's first 1-token completion
    engine_settings: dict[str, Any] = field(default_factory=dict)  # KV cache, batching: VLLMEngine.settings()


def state_path(cfg: LMForgeConfig) -> Path:
    return envs.state_dir() / "serve" / f"{cfg.profile}.json"


def gateway_settings_path(cfg: LMForgeConfig) -> Path:
    return envs.state_dir() / "serve" / f"{cfg.profile}-gateway.json"


def admin_key_path(cfg: LMForgeConfig) -> Path:
    return envs.state_dir() / "serve" / f"{cfg.profile}-admin.key"


def vllm_key_path(cfg: LMForgeConfig) -> Path:
    return envs.state_dir() / "serve" / f"{cfg.profile}-vllm.key"


def keys_path(cfg: LMForgeConfig) -> Path:
    """The profile's named API keys (``lmforge keys``): hashes only, read by the running gateway."""
    return envs.state_dir() / "serve" / f"{cfg.profile}-keys.json"


def vllm_key(cfg: LMForgeConfig) -> str:
    """The key the profile's vLLM servers require (made once; the gateway sends it, and so must anything else
    that talks to them, such as a rollout's warm-up)."""
    path = vllm_key_path(cfg)
    if not path.is_file():
        _write_secret(path, f"lmf-vllm-{secrets.token_urlsafe(24)}")
    return path.read_text().strip()


def admin_key(cfg: LMForgeConfig) -> str:
    """The running gateway's admin key (routing API; also accepted as an API key)."""
    try:
        return admin_key_path(cfg).read_text().strip()
    except FileNotFoundError as err:
        raise LookupError(f"no serving stack for profile {cfg.profile!r}: run `lmforge serve` first") from err


def supervisor_dir(cfg: LMForgeConfig) -> Path:
    """Where the supervisors of the profile's vLLMs keep their metrics and expiry files."""
    return envs.state_dir() / "serve" / "supervisor" / cfg.profile


def start_stack(
    cfg: LMForgeConfig, model_dir: Path, model_name: str, model_version: str, api_keys: list[str]
) -> StackInfo:
    if not api_keys:
        raise ValueError("start_stack needs at least one API key for the gateway")
    stop_stack(cfg)
    serve = cfg.serve
    for port in (serve.vllm_port, serve.gateway_port, serve.metrics_port):
        if port:
            require_free_port(serve.host, port)
    log_dir = envs.state_dir() / "serve" / "logs" / cfg.profile
    engine = VLLMEngine(model_dir, [model_name], serve, serve.vllm_port, log_dir / "vllm.log", detached=True,
                        api_key=vllm_key(cfg), supervisor_dir=supervisor_dir(cfg))
    engine.start()
    gateway_url = f"http://{serve.host}:{serve.gateway_port}"
    info = StackInfo(
        gateway_url, engine.base_url, {"vllm": engine.pid or 0}, log_dir, model_name, model_version,
        engine_settings=engine.settings(),
    )
    _record(cfg, info)
    try:
        admin = f"lmf-admin-{secrets.token_urlsafe(24)}"
        _write_secret(admin_key_path(cfg), admin)
        ready_s = engine.wait_ready(serve.startup_timeout_s)
        settings = GatewaySettings.from_serve_config(
            serve,
            upstream_url=engine.base_url,
            model_name=model_name,
            model_version=model_version,
            policy_path=cfg.resolve(serve.policy),
            api_keys=api_keys,
            admin_keys=[admin],
            keys_file=keys_path(cfg),
            upstream_key_file=vllm_key_path(cfg),
            generation_defaults=sampling_defaults(model_dir),
        ).model_copy(update={"supervisor_metrics_dir": supervisor_dir(cfg)})
        settings_file = gateway_settings_path(cfg)
        write_json_atomic(settings_file, settings.model_dump(mode="json"))  # key hashes only
        gateway = _spawn_gateway(settings_file, serve.host, serve.gateway_port, log_dir / "gateway.log")
        info = StackInfo(
            gateway_url,
            engine.base_url,
            {**info.pids, "gateway": gateway.pid},
            log_dir,
            model_name,
            model_version,
            round(ready_s, 1),
            engine.settings(),
        )
        _record(cfg, info)
        _wait_gateway(gateway, gateway_url, model_name, api_keys[0], log_dir / "gateway.log")
    except BaseException:
        stop_stack(cfg)
        raise
    return info


def stop_stack(cfg: LMForgeConfig) -> dict[str, Any]:
    """Stop every process recorded for the profile (gateway first); forget the record."""
    path = state_path(cfg)
    if not path.is_file():
        return {"profile": cfg.profile, "stopped": []}
    state = json.loads(path.read_text())
    stopped = []
    for name in ("gateway", "challenger", "previous", "vllm"):
        pid = state.get("pids", {}).get(name)
        if pid and _is_running(pid, _MARKERS[name]):
            stop_process_group(pid)
            stopped.append(name)
    path.unlink(missing_ok=True)
    admin_key_path(cfg).unlink(missing_ok=True)
    for leftover in supervisor_dir(cfg).glob("vllm-*"):  # a supervisor killed with -9 leaves its files
        leftover.unlink(missing_ok=True)
    return {"profile": cfg.profile, "stopped": stopped}


def champion_port(cfg: LMForgeConfig) -> int:
    """The port the stack's vLLM listens on (serve.vllm_port unless a promoted challenger took over)."""
    path = state_path(cfg)
    port = port_of(json.loads(path.read_text()).get("vllm_url", "")) if path.is_file() else 0
    return port or cfg.serve.vllm_port


def challenger_port(cfg: LMForgeConfig, champion: int) -> int:
    """The other of the two vLLM ports: the challenger never takes the champion's."""
    serve = cfg.serve
    other = serve.challenger_port or serve.vllm_port + 1
    return other if champion == serve.vllm_port else serve.vllm_port


def record_challenger(cfg: LMForgeConfig, pid: int | None) -> None:
    """Note (or, with None, forget) the challenger's pid in the stack record, so `serve stop` stops it."""
    path = state_path(cfg)
    if not path.is_file():
        return
    state = json.loads(path.read_text())
    pids = state.setdefault("pids", {})
    if pid is None:
        pids.pop("challenger", None)
    else:
        pids["challenger"] = pid
    write_json_atomic(path, state)


def stack_status(cfg: LMForgeConfig) -> dict[str, Any]:
    path = state_path(cfg)
    if not path.is_file():
        return {"profile": cfg.profile, "running": False}
    state = json.loads(path.read_text())
    alive = {name: _is_running(pid, _MARKERS[name]) for name, pid in state.get("pids", {}).items()}
    serving = [alive.get("vllm", False), alive.get("gateway", False)]  # a challenger is not the stack
    try:
        ready = httpx.get(f"{state['gateway_url']}/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        ready = False
    return {
        **state,
        "profile": cfg.profile,
        "running": all(serving),
        "alive": alive,
        "gateway_ready": ready,
        "vllm_restarts": restarts(_metrics_file(cfg, state.get("vllm_url", ""))),
    }


def _metrics_file(cfg: LMForgeConfig, vllm_url: str) -> Path:
    return supervisor_files(supervisor_dir(cfg), port_of(vllm_url))[0]


def port_of(url: str) -> int:
    port = url.rsplit(":", 1)[-1]
    return int(port) if port.isdigit() else 0


def _record(cfg: LMForgeConfig, info: StackInfo) -> None:
    state = {
        **asdict(info),
        "log_dir": str(info.log_dir),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(state_path(cfg), state)


def _spawn_gateway(settings_file: Path, host: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **envs.offline_defaults(envs.state_dir())}
    cmd = [
        sys.executable,
        "-m",
        "lmforge.serve.gateway",
        "--settings",
        str(settings_file),
        "--host",
        host,
        "--port",
        str(port),
    ]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _wait_gateway(proc: subprocess.Popen[bytes], url: str, model: str, key: str, log_path: Path) -> None:
    """The deep probe through the gateway: auth, filter and vLLM all answer one 1-token completion."""
    deadline = time.monotonic() + GATEWAY_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineError(
                f"the gateway exited with code {proc.returncode}; log {log_path}:\n{log_tail(log_path)}"
            )
        if deep_probe(url, model, timeout=10.0, api_key=key):
            return
        time.sleep(0.3)
    raise EngineError(
        f"the gateway did not answer within {GATEWAY_READY_TIMEOUT_S:.0f}s; log {log_path}:\n"
        f"{log_tail(log_path)}"
    )


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` readable by this user only (created 0600, never world-readable for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def require_free_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sock.connect_ex((host, port)) == 0:
            raise EngineError(
                f"port {port} on {host} is already in use: stop what holds it or change "
                "serve.vllm_port / serve.gateway_port in the profile"
            )


def role_runs(pid: int, role: str) -> bool:
    """Whether ``pid`` still runs what the stack recorded it as (``vllm``, ``challenger``, ``previous``,
    ``gateway``), not a process that reused the pid."""
    return _is_running(pid, _MARKERS[role])


def _is_running(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline.lower()
