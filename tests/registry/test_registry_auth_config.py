"""The basic-auth ini lmforge writes and reads, without a server (the server tests: test_registry_auth.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lmforge.registry.auth import (
    LEGACY_ADMIN_PASSWORD,
    InsecureAuthConfig,
    check_admin_password,
    ensure_auth_config,
    read_auth_settings,
)


def test_generated_ini_has_a_random_admin_password_only_its_owner_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_AUTH_CONFIG_PATH", raising=False)
    passwords = []
    for state in (tmp_path / "a", tmp_path / "b"):
        monkeypatch.setenv("LMFORGE_STATE_DIR", str(state))
        ini = ensure_auth_config()
        assert ini == state / "mlflow-auth" / "basic_auth.ini" and ensure_auth_config() == ini  # written once
        assert stat.S_IMODE(ini.stat().st_mode) == 0o600
        settings = read_auth_settings(ini)
        assert settings.admin_username == "admin" and len(settings.admin_password) >= 12
        assert settings.database_uri == f"sqlite:///{state / 'mlflow-auth' / 'basic_auth.db'}"
        check_admin_password(ini)  # nothing to refuse
        passwords.append(settings.admin_password)
    assert passwords[0] != passwords[1] != LEGACY_ADMIN_PASSWORD


def test_admin_password_from_the_environment_wins_as_in_mlflow(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFORGE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_AUTH_CONFIG_PATH", raising=False)
    ini = ensure_auth_config()
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", LEGACY_ADMIN_PASSWORD)
    with pytest.raises(InsecureAuthConfig, match="admin_password is 'password1234'"):
        check_admin_password(ini)
