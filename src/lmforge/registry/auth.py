"""MLflow's basic-auth app as lmforge runs it: one auth ini, and never an admin on a publicly known password.

    lmforge mlflow-server --auth                     # ini from MLFLOW_AUTH_CONFIG_PATH, else made once
    check_admin_password(Path("basic_auth.ini"))     # raises InsecureAuthConfig, says how to fix it

MLflow 3.17 ships no admin password: its first start creates the admin from ``admin_password`` in the ini
that ``MLFLOW_AUTH_CONFIG_PATH`` names (or from ``MLFLOW_AUTH_ADMIN_PASSWORD``). Older versions created
``admin`` / ``password1234`` (GHSA-gq3w-7jj3-x7gr). 3.17 refuses to create an admin with it and rejects admin
logins with it, but still starts over an auth database that holds it, and ignores an ini that still sets it
once the admin exists. ``lmforge mlflow-server --auth`` refuses both, so that credential never stays behind.
Without an ini, lmforge writes one under the state dir with a random admin password, readable by you only.
"""

from __future__ import annotations

import configparser
import importlib.util
import secrets
from dataclasses import dataclass
from pathlib import Path

from lmforge import envs

LEGACY_ADMIN_PASSWORD = "password1234"  # what older MLflow versions put in basic_auth.ini
ADVISORY = "GHSA-gq3w-7jj3-x7gr"


class AuthConfigError(RuntimeError):
    """The basic-auth configuration is missing, unreadable or insecure; the message says how to fix it."""


class InsecureAuthConfig(AuthConfigError):
    """An admin account would be reachable with MLflow's old default password."""


@dataclass(frozen=True)
class AuthSettings:
    ini: Path
    database_uri: str  # where MLflow keeps users and permissions
    admin_username: str | None
    admin_password: str | None  # only used to create (or rotate away from the default) the admin


def ensure_auth_config(path: Path | None = None) -> Path:
    """The ini to run with: ``path``, else ``MLFLOW_AUTH_CONFIG_PATH``, else one written under the state dir."""
    from mlflow.environment_variables import MLFLOW_AUTH_CONFIG_PATH

    chosen = path or (Path(MLFLOW_AUTH_CONFIG_PATH.get()) if MLFLOW_AUTH_CONFIG_PATH.get() else None)
    if chosen is not None:
        if not Path(chosen).is_file():
            raise AuthConfigError(f"no basic-auth ini at {chosen}")
        return Path(chosen).resolve()
    ini = envs.state_dir() / "mlflow-auth" / "basic_auth.ini"
    if not ini.is_file():
        write_auth_config(ini, admin_password=secrets.token_urlsafe(18))
    return ini


def write_auth_config(ini: Path, admin_password: str | None, default_permission: str = "READ",
                      database_uri: str | None = None, admin_username: str = "admin") -> Path:
    """Write a basic-auth ini (mode 0600: it holds the admin password) with its database beside it.

    ``admin_password`` None leaves it out: MLflow then needs ``MLFLOW_AUTH_ADMIN_PASSWORD`` on first start.
    """
    ini.parent.mkdir(parents=True, exist_ok=True)
    config = configparser.ConfigParser()
    config["mlflow"] = {
        # READ: every signed-in user may look at every model; writing needs an explicit EDIT or MANAGE.
        "default_permission": default_permission,
        "database_uri": database_uri or f"sqlite:///{ini.parent.resolve() / 'basic_auth.db'}",
        "admin_username": admin_username,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    if admin_password is not None:
        config["mlflow"]["admin_password"] = admin_password
    ini.touch(mode=0o600)
    ini.chmod(0o600)
    with ini.open("w") as handle:
        config.write(handle)
    return ini


def read_auth_settings(ini: Path) -> AuthSettings:
    """The settings MLflow's auth app will use (``MLFLOW_AUTH_ADMIN_*`` override the ini, as in MLflow)."""
    from mlflow.environment_variables import MLFLOW_AUTH_ADMIN_PASSWORD, MLFLOW_AUTH_ADMIN_USERNAME

    config = configparser.ConfigParser()
    if not config.read(ini) or "mlflow" not in config or "database_uri" not in config["mlflow"]:
        raise AuthConfigError(f"{ini} is not a basic-auth ini: it needs an [mlflow] section with database_uri")
    section = config["mlflow"]
    username = MLFLOW_AUTH_ADMIN_USERNAME.get() if MLFLOW_AUTH_ADMIN_USERNAME.is_set() else section.get(
        "admin_username")
    password = MLFLOW_AUTH_ADMIN_PASSWORD.get() if MLFLOW_AUTH_ADMIN_PASSWORD.is_set() else section.get(
        "admin_password")
    return AuthSettings(Path(ini), section["database_uri"], username or None, password or None)


def require_auth_app() -> None:
    """Fail in one line, before ``mlflow server`` would, when MLflow's auth extra is not installed."""
    if importlib.util.find_spec("flask_wtf") is None:
        raise AuthConfigError("MLflow's basic-auth app needs Flask-WTF: pip install 'mlflow[auth]' "
                              "(the dev extra has it: make install)")


def check_admin_password(ini: Path) -> None:
    """Raise ``InsecureAuthConfig`` if an admin could be, or is, on MLflow's old default password."""
    problems = default_password_problems(read_auth_settings(ini))
    if problems:
        raise InsecureAuthConfig(f"refusing to start the basic-auth server ({ini}): " + "; ".join(problems))


def default_password_problems(settings: AuthSettings) -> list[str]:
    """Every way the old default admin password is configured or still stored; empty when none is."""
    problems = []
    if settings.admin_password == LEGACY_ADMIN_PASSWORD:
        problems.append(f"admin_password is {LEGACY_ADMIN_PASSWORD!r}, the default older MLflow shipped "
                        f"({ADVISORY}): set a new one")
    for user in admins_with_legacy_password(settings.database_uri):
        if user != settings.admin_username:
            problems.append(f"admin {user!r} still has the default password in {settings.database_uri}: change "
                            "it with the update-password API (docs/registry.md) or delete the user")
        elif settings.admin_password in (None, LEGACY_ADMIN_PASSWORD):
            # MLflow replaces the stored default with a new configured password when the server starts.
            problems.append(f"admin {user!r} still has the default password in {settings.database_uri}: set "
                            "admin_password in the ini (or MLFLOW_AUTH_ADMIN_PASSWORD) to a new one and start "
                            "again: MLflow then replaces it")
    return problems


def admins_with_legacy_password(database_uri: str) -> list[str]:
    """Admin users of an existing auth database whose password is still the old default (MLflow's schema)."""
    import sqlalchemy as sa
    from werkzeug.security import check_password_hash

    if database_uri.startswith("sqlite:///") and not Path(database_uri.removeprefix("sqlite:///")).is_file():
        return []  # not created yet (and connecting would create an empty file)
    engine = sa.create_engine(database_uri)
    try:
        if not sa.inspect(engine).has_table("users"):
            return []
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT username, password_hash FROM users WHERE is_admin")).all()
    except sa.exc.SQLAlchemyError as err:
        raise AuthConfigError(f"cannot read the auth database {database_uri}: {err}") from err
    finally:
        engine.dispose()
    return [username for username, pw_hash in rows if check_password_hash(pw_hash, LEGACY_ADMIN_PASSWORD)]
