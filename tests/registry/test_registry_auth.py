"""MLflow's basic-auth app behind ``lmforge mlflow-server --auth``: who may move an alias, and no admin on a
publicly known password.

The server's auth database lives in a temp dir; its admin comes from an ini that ``MLFLOW_AUTH_CONFIG_PATH``
names. ``default_permission = NO_PERMISSIONS``, so the reviewer below reads only what it was granted.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmforge.config import LMForgeConfig, load_config
from lmforge.registry.auth import LEGACY_ADMIN_PASSWORD, admins_with_legacy_password, write_auth_config
from lmforge.registry.promote import history, move_alias, promote_to_champion
from lmforge.registry.register import register_model
from lmforge.registry.tracking import RegistryAccessDenied, setup_tracking

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN_PASSWORD = secrets.token_urlsafe(16)
READER, READER_PASSWORD = "reviewer", secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def auth_server(mlflow_server_factory: Callable, tmp_path_factory: pytest.TempPathFactory):
    ini = write_auth_config(tmp_path_factory.mktemp("auth") / "basic_auth.ini", ADMIN_PASSWORD,
                            default_permission="NO_PERMISSIONS")
    server = mlflow_server_factory(None, "--auth", env={"MLFLOW_AUTH_CONFIG_PATH": str(ini)})
    yield server
    server.stop()


def _cfg() -> LMForgeConfig:
    return load_config("tiny", ["registry.model_prefix=auth"])


def test_read_only_user_gets_403_moving_an_alias(auth_server, tiny_model_dir: Path,
                                                 tracking_at: Callable[..., None]) -> None:
    from mlflow.server import get_app_client

    tracking_at(auth_server, "admin", ADMIN_PASSWORD)
    cfg = _cfg()
    version = register_model(cfg, "teacher", tiny_model_dir, {}, {"data": "passed", "distill": "n/a"})
    admin = get_app_client("basic-auth", tracking_uri=auth_server.url)
    admin.create_user(READER, READER_PASSWORD)
    admin.grant_user_permission(READER, "experiment", setup_tracking(cfg), "READ")
    admin.grant_user_permission(READER, "registered_model", version.name, "READ")

    tracking_at(auth_server, READER, READER_PASSWORD)
    assert [m.alias for m in history(cfg, version.name)] == ["challenger"]  # READ: the log is visible
    with pytest.raises(RegistryAccessDenied, match=f"user '{READER}' may not register a version of .*HTTP 403"):
        register_model(cfg, "teacher", tiny_model_dir, {}, {"data": "passed", "distill": "n/a"})
    with pytest.raises(RegistryAccessDenied, match=f"user '{READER}' may not move alias 'champion'.*HTTP 403"):
        move_alias(cfg, version.name, "champion", version.version, by=READER, reason="looks fine")
    with pytest.raises(RegistryAccessDenied, match="HTTP 403"):
        promote_to_champion(cfg, version.name, version.version, by=READER, reason="looks fine")
    raw = requests.post(f"{auth_server.url}/api/2.0/mlflow/registered-models/alias", timeout=60,
                        auth=(READER, READER_PASSWORD),
                        json={"name": version.name, "alias": "champion", "version": version.version})
    assert raw.status_code == 403

    tracking_at(auth_server, "admin", ADMIN_PASSWORD)
    with pytest.raises(MlflowException, match="champion"):
        MlflowClient().get_model_version_by_alias(version.name, "champion")  # nothing moved
    assert [m.alias for m in history(cfg, version.name)] == ["challenger"]
    assert [v.version for v in MlflowClient().search_model_versions(f"name='{version.name}'")] == [version.version]


def test_wrong_or_old_default_credentials_get_401(auth_server, tracking_at: Callable[..., None]) -> None:
    for user, password in (("admin", "not-the-password"), ("admin", LEGACY_ADMIN_PASSWORD), (None, None)):
        tracking_at(auth_server, user, password)
        with pytest.raises(RegistryAccessDenied, match="HTTP 401.*MLFLOW_TRACKING_USERNAME"):
            setup_tracking(_cfg())


def test_admin_changes_its_password_through_the_api(auth_server) -> None:
    """The rotation docs/registry.md describes: afterwards only the new password opens the server."""
    whoami = f"{auth_server.url}/api/2.0/mlflow/users/get"
    new = secrets.token_urlsafe(16)
    for old, fresh in ((ADMIN_PASSWORD, new), (new, ADMIN_PASSWORD)):  # and back, for the other tests
        answer = requests.patch(f"{auth_server.url}/api/2.0/mlflow/users/update-password", timeout=60,
                                auth=("admin", old), json={"username": "admin", "password": fresh,
                                                           "current_password": old})
        assert answer.status_code == 200, answer.text
        assert requests.get(whoami, params={"username": "admin"}, auth=("admin", old), timeout=60).status_code == 401
        assert requests.get(whoami, params={"username": "admin"}, auth=("admin", fresh), timeout=60).ok


def test_server_refuses_an_ini_with_the_old_default_password(tmp_path: Path) -> None:
    ini = write_auth_config(tmp_path / "basic_auth.ini", LEGACY_ADMIN_PASSWORD)
    code, err = _start_cli(ini)
    assert code == 1 and len(err) == 1
    assert "refusing to start the basic-auth server" in err[0] and "GHSA-gq3w-7jj3-x7gr" in err[0]


def test_upgraded_auth_db_with_the_old_default_is_refused_until_rotated(
        tmp_path: Path, mlflow_server_factory: Callable) -> None:
    """An auth DB that an older MLflow bootstrapped with admin/password1234: MLflow 3.17 would start over it
    (with a warning); lmforge refuses until the ini sets a new password, which MLflow then puts in place."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    db_uri = f"sqlite:///{tmp_path / 'basic_auth.db'}"
    old_store = SqlAlchemyStore()
    old_store.init_db(db_uri)
    old_store.create_user("admin", LEGACY_ADMIN_PASSWORD, is_admin=True)
    old_store.engine.dispose()
    assert admins_with_legacy_password(db_uri) == ["admin"]

    ini = write_auth_config(tmp_path / "basic_auth.ini", None, database_uri=db_uri)  # the admin exists
    code, err = _start_cli(ini)
    assert code == 1 and "admin 'admin' still has the default password" in err[0]

    write_auth_config(ini, ADMIN_PASSWORD, database_uri=db_uri)
    server = mlflow_server_factory(None, "--auth-config", str(ini))
    whoami = f"{server.url}/api/2.0/mlflow/users/get"
    assert requests.get(whoami, params={"username": "admin"}, auth=("admin", ADMIN_PASSWORD), timeout=60).ok
    assert requests.get(whoami, params={"username": "admin"}, auth=("admin", LEGACY_ADMIN_PASSWORD),
                        timeout=60).status_code == 401
    assert admins_with_legacy_password(db_uri) == []
    server.stop()


def _start_cli(ini: Path) -> tuple[int, list[str]]:
    """``lmforge mlflow-server --auth-config INI`` in a child (it would replace this process if it started)."""
    done = subprocess.run([sys.executable, "-m", "lmforge.cli", "mlflow-server", "--port", "9",
                           "--auth-config", str(ini)], capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr.strip().splitlines()
