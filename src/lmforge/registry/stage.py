"""Register stage: teacher, KD student and no-KD baseline, with the gates their stages recorded.

Reads ``validation/result.json`` (data gate), ``reports/distill.json`` (distillation gate and perplexities),
``reports/eval_<role>.json`` (quality gate, the eval stage's) and each ``models/<role>/lmforge.json``; writes
MLflow model versions and ``reports/register.json``. With ``eval.gate_registration`` a model whose answers are
degenerate or score below the floor gets a failed quality gate and no ``challenger`` alias.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lmforge import lineage
from lmforge.artifacts import write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.eval.stage import read_report as read_eval_report
from lmforge.registry.promote import PromotionRefused, promote_to_champion
from lmforge.registry.register import RegisteredVersion, register_model

ROLES = ("teacher", "student", "baseline")


def register_all(cfg: LMForgeConfig, promote: bool = True) -> dict[str, RegisteredVersion]:
    """Register every model of the profile; promote ``registry.serve_role`` if its gates pass."""
    data_gate = _data_gate(cfg)
    distill = _read_json(cfg.paths.reports / "distill.json", "distillation report")
    data_tags = lineage.data_lineage(cfg)
    versions = {}
    for role in ROLES:
        model_dir = cfg.paths.models / role
        meta = _read_json(model_dir / "lmforge.json", f"{role} model metadata")
        gates = {"data": data_gate, "distill": _distill_gate(role, distill)}
        if role == "baseline":
            gates["servable"] = "failed: the no-KD baseline is a reference, not a release"
        tags = {**data_tags, "lmforge.data_hash": meta.get("data_manifest_sha256", "")}
        quality = read_eval_report(cfg, role) if role != "baseline" else None
        if role != "baseline" and cfg.eval.gate_registration:
            gates["quality"] = _quality_verdict(quality)
        elif role != "baseline":  # recorded for review, blocking nothing
            tags["lmforge.quality.verdict"] = _quality_verdict(quality)
        versions[role] = register_model(
            cfg, role, model_dir, _metrics(role, meta, distill), gates,
            parent_run_id=meta.get("run_id"),
            data_tags=tags,
            data_validation=cfg.paths.validation, quality=quality,
            challenger=gates.get("quality", "passed") == "passed",
        )
    outcome = {"promoted": None, "refused": None, "serve_role": served_role(cfg)}
    if promote:
        chosen = versions[served_role(cfg)]
        try:
            promote_to_champion(cfg, chosen.name, chosen.version, by="lmforge pipeline",
                                reason="all gates passed on registration")
            outcome["promoted"] = f"{chosen.name} v{chosen.version}"
        except PromotionRefused as refused:
            outcome["refused"] = str(refused)
            if not _has_champion(chosen.name):
                raise
    write_json_atomic(cfg.paths.reports / "register.json",
                      {"versions": {r: asdict(v) for r, v in versions.items()}, **outcome})
    return versions


def served_role(cfg: LMForgeConfig) -> str:
    """The role the profile serves: ``registry.serve_role``, with ``auto`` resolved by the distillation gate
    (the student when it passed, else the teacher)."""
    role = cfg.registry.serve_role
    if role != "auto":
        return role
    report = _read_json(cfg.paths.reports / "distill.json", "distillation report")
    return "student" if report.get("gate", {}).get("passed") else "teacher"


def recorded_versions_exist(cfg: LMForgeConfig) -> bool:
    """True when every version ``reports/register.json`` names is still in the registry (a cached register
    stage is only valid while they are: a wiped or other MLflow store needs them registered again)."""
    try:
        recorded = json.loads((cfg.paths.reports / "register.json").read_text())["versions"]
        client = MlflowClient(tracking_uri=cfg.tracking_uri())
        for version in recorded.values():
            client.get_model_version(version["name"], str(version["version"]))
    except (OSError, ValueError, KeyError, TypeError, MlflowException):
        return False
    return True


def _quality_verdict(report: dict | None) -> str:
    if report is None:
        return "failed: not measured (run `lmforge eval` before registering)"
    return report["verdict"]


def _data_gate(cfg: LMForgeConfig) -> str:
    result = _read_json(cfg.paths.validation / "result.json", "data validation result")
    return "passed" if result.get("success") else "failed"


def _distill_gate(role: str, report: dict) -> str:
    if role != "student":
        return "n/a"
    gate = report.get("gate", {})
    return "passed" if gate.get("passed") else f"failed: {gate.get('reason', 'see reports/distill.json')}"


def _metrics(role: str, meta: dict, distill: dict) -> dict[str, float]:
    metrics = {k: float(v) for k, v in (meta.get("metrics") or {}).items() if isinstance(v, int | float)}
    for key, value in (distill.get(role) or {}).items():
        if isinstance(value, int | float):
            metrics[key] = float(value)
    return metrics


def has_champion(cfg: LMForgeConfig) -> bool:
    """Whether the served role's model already has a champion (then a new version waits for the rollout)."""
    from lmforge.registry.tracking import setup_tracking

    setup_tracking(cfg)
    return _has_champion(cfg.model_name(served_role(cfg)))


def _has_champion(name: str) -> bool:
    try:
        MlflowClient().get_model_version_by_alias(name, "champion")
        return True
    except MlflowException:
        return False


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path}: run the stage that makes it first")
    return json.loads(path.read_text())
