"""The registry through a real ``lmforge mlflow-server`` on loopback, over SQLite and over PostgreSQL.

lmforge talks HTTP only (``LMFORGE_MLFLOW_URI``); artifacts travel through the server (``mlflow-artifacts:/``),
and the checks on the store read the backend database itself, so each backend really holds the registry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from lmforge.config import LMForgeConfig, load_config
from lmforge.registry.promote import PromotionRefused, history, promote_to_champion
from lmforge.registry.register import download_model, register_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REVIEW_FILES = {"review/model_card.md", "review/dossier.json", "review/compliance_report.json",
                "review/samples.json"}


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest):  # the session's ServerProcess of that backend
    return request.getfixturevalue(f"{request.param}_server")


def _cfg(prefix: str) -> LMForgeConfig:
    return load_config("tiny", [f"registry.model_prefix={prefix}"])


def test_registered_version_carries_its_review_dossier(server, tiny_model_dir: Path,
                                                       tracking_at: Callable[..., None]) -> None:
    tracking_at(server)
    version = register_model(_cfg("dossier"), "teacher", tiny_model_dir, {"val_ppl": 400.0},
                             {"data": "passed", "distill": "n/a"}, data_tags={"lmforge.data_hash": "d1"})

    client = MlflowClient()
    assert mlflow.get_tracking_uri() == server.url
    mv = client.get_model_version_by_alias(version.name, "challenger")
    assert str(mv.version) == version.version == "1" and mv.tags["lmforge.gate.data"] == "passed"
    run = client.get_run(version.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # stored by the server, not by this client
    assert REVIEW_FILES <= {a.path for a in client.list_artifacts(version.run_id, "review")}
    card = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/review/model_card.md")
    assert card.startswith(f"# Model card: {version.name} (teacher)") and "## Compliance" in card
    dossier = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/review/dossier.json")
    assert dossier["gates"]["compliance"] == "passed" and dossier["lineage"]["lmforge.data_hash"] == "d1"

    assert _store_rows(server.backend_uri, "SELECT name, version FROM model_versions") >= {(version.name, 1)}


def test_challenger_becomes_champion_only_through_promote(server, tiny_model_dir: Path, tmp_path: Path,
                                                          tracking_at: Callable[..., None]) -> None:
    tracking_at(server)
    cfg = _cfg("lifecycle")
    good = register_model(cfg, "student", tiny_model_dir, {}, {"data": "passed", "distill": "passed"})
    promote_to_champion(cfg, good.name, good.version, by="alice", reason="first release")

    failed = register_model(cfg, "student", tiny_model_dir, {}, {"data": "passed", "distill": "failed: ppl 2.0"})
    with pytest.raises(PromotionRefused, match="gate distill is failed: ppl 2.0"):
        promote_to_champion(cfg, failed.name, failed.version, by="bob", reason="try")

    client = MlflowClient()
    assert str(client.get_model_version_by_alias(good.name, "champion").version) == good.version
    assert str(client.get_model_version_by_alias(good.name, "challenger").version) == failed.version
    moves = history(cfg, good.name)
    assert [(m.alias, m.from_version, m.to_version, m.by) for m in moves] == [
        ("challenger", None, "1", "lmforge register"), ("champion", None, "1", "alice"),
        ("challenger", "1", "2", "lmforge register"),
    ]
    # The promotion log lives in the backend itself, beside the aliases.
    log_tags = _store_rows(server.backend_uri, "SELECT key, value FROM registered_model_tags "
                           "WHERE name = :name AND key LIKE :log", name=good.name, log="lmforge.alias_log.%")
    assert sorted(json.loads(value)["to_version"] for _, value in log_tags) == ["1", "1", "2"]

    hf_dir = download_model(cfg, good.name, "champion", tmp_path / "champion")  # what rollout serves
    assert (hf_dir / "model.safetensors").is_file()


def _store_rows(backend_uri: str, query: str, **params: str) -> set[tuple]:
    """Rows straight from the server's backend database (not through MLflow)."""
    engine = sa.create_engine(backend_uri)
    try:
        with engine.connect() as conn:
            return {tuple(row) for row in conn.execute(sa.text(query), params)}
    finally:
        engine.dispose()
