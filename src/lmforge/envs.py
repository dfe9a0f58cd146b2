"""Every environment variable lmforge reads or sets, declared once with its default and its reason.

Three kinds live here:

* ``LMFORGE_*`` variables are lmforge's own knobs (profile, state directory, secrets).
* ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``: read by MLflow's client itself, never set or stored by lmforge;
  declared so the registry's error messages and the docs name them from one place.
* ``offline_defaults()``: the third-party variables that keep Prefect, MLflow, DVC, vLLM and Hugging Face
  offline and inside the work tree. ``apply_offline_defaults()`` sets each one that the user has not set.

Nothing else in the package calls ``os.environ`` for configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str | None
    doc: str

    def get(self) -> str | None:
        return os.environ.get(self.name, self.default)


def _find_root() -> Path:
    """The project root: the nearest parent of the current directory that holds ``configs/``."""
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "configs").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    return here


LMFORGE_ROOT = EnvVar("LMFORGE_ROOT", None, "Project root (holds configs/ and data/); default: found from cwd.")
LMFORGE_PROFILE = EnvVar("LMFORGE_PROFILE", "tiny", "Config profile in configs/<name>.yaml.")
LMFORGE_STATE_DIR = EnvVar(
    "LMFORGE_STATE_DIR", None, "Where tool state lives (MLflow DB, Prefect home, caches); default ROOT/.state."
)
LMFORGE_API_KEYS = EnvVar(
    "LMFORGE_API_KEYS",
    None,
    "Comma-separated plaintext API keys the gateway accepts (named default, default-2, ...); stored only as "
    "hashes. Default: one key is generated per rollout and printed once. More keys: `lmforge keys create`.",
)
LMFORGE_MLFLOW_URI = EnvVar(
    "LMFORGE_MLFLOW_URI", None, "MLflow tracking URI; overrides registry.tracking_uri of the profile."
)

LMFORGE_LOCK_TIMEOUT_S = EnvVar(
    "LMFORGE_LOCK_TIMEOUT_S", None, "Seconds a pipeline run waits for another run to release its work directory; "
    "unset: wait until it finishes; 0: fail at once."
)

MLFLOW_TRACKING_USERNAME = EnvVar(
    "MLFLOW_TRACKING_USERNAME", None, "User for an MLflow server with basic auth (docs/registry.md); read by MLflow."
)
MLFLOW_TRACKING_PASSWORD = EnvVar(
    "MLFLOW_TRACKING_PASSWORD", None, "Password of MLFLOW_TRACKING_USERNAME; read by MLflow, never logged by lmforge."
)

ALL = [LMFORGE_ROOT, LMFORGE_PROFILE, LMFORGE_STATE_DIR, LMFORGE_API_KEYS, LMFORGE_MLFLOW_URI, LMFORGE_LOCK_TIMEOUT_S,
       MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD]


def project_root() -> Path:
    value = LMFORGE_ROOT.get()
    return Path(value).resolve() if value else _find_root()


def state_dir() -> Path:
    value = LMFORGE_STATE_DIR.get()
    return Path(value).resolve() if value else project_root() / ".state"


def offline_defaults(state: Path) -> dict[str, str]:
    """Third-party variables (name -> value) that keep every tool offline and its state under ``state``."""
    return {
        # Prefect: no telemetry; its home, results and memo store inside the work tree.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_LOCAL_STORAGE_PATH": str(state / "prefect" / "storage"),
        "PREFECT_MEMO_STORE_PATH": str(state / "prefect" / "memo_store.toml"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # The temporary server migrates a fresh SQLite DB on first start: 20 s is too short on 2 busy cores.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        # MLflow: telemetry ignores DO_NOT_TRACK, so switch it off by name; config dir out of ~.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "XDG_CONFIG_HOME": str(state / "xdg"),
        # DVC: no analytics, site cache in the tree.
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(state / "dvc-site"),
        # vLLM: do not probe a public DNS address for our IP; no usage stats; cache in the tree.
        "VLLM_HOST_IP": "127.0.0.1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_CACHE_ROOT": str(state / "vllm"),
        # Hugging Face: never try the hub.
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",  # lm-eval loads the eval set through datasets' local json builder
        "HF_HOME": str(state / "hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "DO_NOT_TRACK": "1",
    }


def apply_offline_defaults() -> dict[str, str]:
    """Set every offline variable the user has not set; return the values in force."""
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True)
    applied = {}
    for name, value in offline_defaults(state).items():
        os.environ.setdefault(name, value)
        applied[name] = os.environ[name]
    return applied
