"""The MLflow tracking + registry server on loopback, over the store the pipeline writes.

    lmforge mlflow-server                           # SQLite in .state/, UI at http://127.0.0.1:5000
    lmforge mlflow-server --port 5001 --backend postgresql://lmforge:PW@127.0.0.1:5432/mlflow
    lmforge mlflow-server --auth                    # MLflow's basic-auth app, see lmforge.registry.auth

Then point lmforge at it: ``export LMFORGE_MLFLOW_URI=http://127.0.0.1:5000``. The server keeps artifacts
itself (``--artifacts-destination``; new experiments get ``mlflow-artifacts:/``), so clients and browsers
reach models, model cards and dossiers over HTTP only. The command replaces the lmforge process (``exec``):
signals go straight to MLflow, which stops its worker processes with it.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from lmforge import envs
from lmforge.config import LMForgeConfig

DEFAULT_PORT = 5000  # MLflow's own default


@dataclass(frozen=True)
class ServerSpec:
    backend_uri: str  # SQLAlchemy URI of the tracking + registry store
    artifacts: str  # directory or URI (s3://...) where the server stores artifacts
    port: int = DEFAULT_PORT
    auth_config: Path | None = None  # basic-auth ini; None: no authentication
    host: str = "127.0.0.1"  # loopback only: put a TLS proxy in front to share it

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def default_spec(cfg: LMForgeConfig, port: int = DEFAULT_PORT, backend_uri: str | None = None,
                 artifacts: str | None = None, auth_config: Path | None = None) -> ServerSpec:
    """Serve the store the pipeline writes (``cfg.tracking_uri()`` when it is a database, else the SQLite
    default in the state dir), with artifacts in the state dir, unless overridden."""
    state = envs.state_dir()
    store = cfg.tracking_uri()
    return ServerSpec(
        backend_uri=backend_uri or (store if not store.startswith(("http:", "https:")) else
                                    f"sqlite:///{state / 'mlflow.db'}"),
        artifacts=artifacts or str(state / "mlartifacts"),
        port=port,
        auth_config=auth_config,
    )


def server_command(spec: ServerSpec) -> list[str]:
    """The ``mlflow server`` command line for ``spec``."""
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", spec.backend_uri,
        "--artifacts-destination", spec.artifacts,
        "--serve-artifacts",
        "--host", spec.host, "--port", str(spec.port),
        # One worker is plenty on loopback, and keeps the per-start CSRF key below the same everywhere.
        "--workers", "1",
    ]
    if spec.auth_config is not None:
        cmd += ["--app-name", "basic-auth"]
    return cmd


def server_environment(spec: ServerSpec) -> dict[str, str]:
    """The server's environment: the caller's, plus where the auth app finds its ini and CSRF key."""
    from mlflow.environment_variables import (
        MLFLOW_AUTH_CONFIG_PATH,
        MLFLOW_FLASK_SERVER_SECRET_KEY,
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION,
    )

    env = dict(os.environ)
    # MLflow's job runner (GenAI scorer jobs: eight more Python processes) serves nothing the registry uses.
    env.setdefault(MLFLOW_SERVER_ENABLE_JOB_EXECUTION.name, "false")
    if spec.auth_config is not None:
        env[MLFLOW_AUTH_CONFIG_PATH.name] = str(spec.auth_config)
        # The key only signs the sign-up form's CSRF token: a fresh one per start is enough.
        env.setdefault(MLFLOW_FLASK_SERVER_SECRET_KEY.name, secrets.token_hex(32))
    return env


def exec_server(spec: ServerSpec) -> None:
    """Check the auth settings, then replace this process with ``mlflow server``."""
    if spec.auth_config is not None:
        from lmforge.registry.auth import check_admin_password, require_auth_app

        require_auth_app()
        check_admin_password(spec.auth_config)
    if "://" not in spec.artifacts:
        Path(spec.artifacts).mkdir(parents=True, exist_ok=True)
    cmd = server_command(spec)
    print(f"lmforge mlflow-server: {spec.url} over {_redact(spec.backend_uri)}; artifacts in {spec.artifacts}"
          + (f"; basic-auth from {spec.auth_config}" if spec.auth_config else ""), file=sys.stderr, flush=True)
    os.execve(cmd[0], cmd, server_environment(spec))


def _redact(uri: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    scheme, sep, rest = uri.partition("://")
    creds, at, host = rest.rpartition("@")
    if not (sep and at and ":" in creds):
        return uri
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
