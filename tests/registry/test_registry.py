"""Registration and promotion against a real MLflow store (SQLite in the session's state dir)."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from lmforge.config import LMForgeConfig, load_config
from lmforge.registry.promote import PromotionRefused, approve, history, move_alias, promote_to_champion
from lmforge.registry.register import NotAModelError, download_model, register_model
from lmforge.registry.tracking import TrackingUnavailable

pytestmark = pytest.mark.integration

PASSED = {"data": "passed", "distill": "n/a"}


def _cfg(prefix: str, *extra: str) -> LMForgeConfig:
    return load_config("tiny", [f"registry.model_prefix={prefix}", *extra])


def test_register_creates_challenger_with_dossier_and_lineage(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg("reg")
    version = register_model(cfg, "teacher", tiny_model_dir, {"val_ppl": 400.0}, PASSED,
                             data_tags={"lmforge.data_hash": "d1"})
    client = MlflowClient()
    mv = client.get_model_version_by_alias(version.name, "challenger")
    assert str(mv.version) == version.version == "1"
    assert mv.tags["lmforge.gate.data"] == "passed"
    assert mv.tags["lmforge.data_hash"] == "d1" and mv.tags["lmforge.git_commit"]
    assert "Model card" in mv.description

    listed = {a.path for a in client.list_artifacts(version.run_id, "review")}
    assert {"review/model_card.md", "review/samples.json", "review/compliance_report.json",
            "review/dossier.json"} <= listed
    run = client.get_run(version.run_id)
    assert run.data.metrics["val_ppl"] == 400.0 and "compliance_violation_rate" in run.data.metrics

    hf_dir = download_model(cfg, version.name, "challenger", tmp_path / "dl")
    assert (hf_dir / "model.safetensors").is_file() and (hf_dir / "tokenizer.json").is_file()

    model = mlflow.pyfunc.load_model(f"models:/{version.name}@challenger")
    out = model.predict(["What does the json module do?"])
    assert len(out) == 1 and isinstance(out[0], str)


def test_dossier_holds_training_curves_and_the_data_report(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg("dossier")
    with mlflow.start_run(run_name="pretrain-fixture") as train_run:  # what Lightning's MLflow logger writes
        for step, loss in enumerate([7.5, 6.1, 5.2, 4.9], start=1):
            mlflow.log_metric("train/loss", loss, step=step * 10)
        mlflow.log_metric("val/loss", 5.0, step=40)
        mlflow.log_metric("val/ppl", 148.4, step=40)
    validation = tmp_path / "validation"
    (validation / "data_docs").mkdir(parents=True)
    (validation / "result.json").write_text('{"success": true, "evaluated": 23, "failed": 0, "results": []}')
    (validation / "data_docs" / "index.html").write_text("<html>Great Expectations Data Docs</html>")

    version = register_model(cfg, "teacher", tiny_model_dir, {}, PASSED, parent_run_id=train_run.info.run_id,
                             data_validation=validation)
    client = MlflowClient()
    listed = {a.path for a in client.list_artifacts(version.run_id, "review")}
    assert {"review/loss.png", "review/perplexity.png", "review/data_validation"} <= listed
    for image in ("loss.png", "perplexity.png"):
        png = Path(client.download_artifacts(version.run_id, f"review/{image}", str(tmp_path)))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    docs = Path(client.download_artifacts(version.run_id, "review/data_validation", str(tmp_path / "dl")))
    assert (docs / "result.json").is_file() and "Data Docs" in (docs / "data_docs" / "index.html").read_text()
    assert "review/" in client.get_model_version(version.name, version.version).description  # the card says where

    # A training run from another store, or none: no images, and the version is still registered.
    other = register_model(cfg, "teacher", tiny_model_dir, {}, PASSED, parent_run_id="0" * 32)
    assert not {"review/loss.png", "review/perplexity.png"} & {
        a.path for a in client.list_artifacts(other.run_id, "review")}


def test_champion_moves_only_through_gates_and_is_logged(tiny_model_dir: Path) -> None:
    cfg = _cfg("promo")
    good = register_model(cfg, "student", tiny_model_dir, {}, {"data": "passed", "distill": "passed"})
    promote_to_champion(cfg, good.name, good.version, by="alice", reason="first release")

    bad = register_model(cfg, "student", tiny_model_dir, {}, {"data": "passed", "distill": "failed: ppl 2.0"})
    with pytest.raises(PromotionRefused, match="gate distill is failed: ppl 2.0"):
        promote_to_champion(cfg, bad.name, bad.version, by="bob", reason="try")
    assert str(MlflowClient().get_model_version_by_alias(good.name, "champion").version) == good.version

    moves = history(cfg, good.name)
    assert [(m.alias, m.from_version, m.to_version) for m in moves] == [
        ("challenger", None, "1"), ("champion", None, "1"), ("challenger", "1", "2"),
    ]
    assert moves[1].by == "alice" and moves[1].reason == "first release"


def test_approval_is_required_when_configured(tiny_model_dir: Path) -> None:
    cfg = _cfg("appr", "registry.require_approval=true")
    version = register_model(cfg, "teacher", tiny_model_dir, {}, PASSED)
    with pytest.raises(PromotionRefused, match="no recorded approval"):
        promote_to_champion(cfg, version.name, version.version, by="ci", reason="nightly")
    approve(cfg, version.name, version.version, by="carol", reason="reviewed samples")
    move = promote_to_champion(cfg, version.name, version.version, by="ci", reason="nightly")
    assert move.to_version == version.version


def test_bad_inputs_register_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg("bad")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(NotAModelError, match="missing model.safetensors"):
        register_model(cfg, "teacher", broken, {}, PASSED)
    half = tmp_path / "half"
    half.mkdir()
    with pytest.raises(RuntimeError, match="_COMPLETE"):
        register_model(cfg, "teacher", half, {}, PASSED)
    assert not MlflowClient().search_registered_models(filter_string="name LIKE 'bad-%'")

    version = register_model(cfg, "teacher", tiny_model_dir, {}, PASSED)
    with pytest.raises(ValueError, match="unknown alias"):
        move_alias(cfg, version.name, "production", version.version, by="x", reason="y")
    with pytest.raises(LookupError, match="no version 99"):
        promote_to_champion(cfg, version.name, "99", by="x", reason="y")


def test_tracking_server_down_is_a_clear_error(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFORGE_MLFLOW_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with pytest.raises(TrackingUnavailable, match="unreachable|failed"):
        register_model(_cfg("down"), "teacher", tiny_model_dir, {}, PASSED)
