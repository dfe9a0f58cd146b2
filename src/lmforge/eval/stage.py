"""The eval stage: build the held-out set if needed, score a model with lm-eval, judge it, log it to MLflow.

    lmforge eval --model runs/tiny/models/student            # a model directory, in-process
    lmforge eval --model models:/lmforge-tiny-student@champion
    lmforge eval --model models:/lmforge-tiny-student@champion --gateway http://127.0.0.1:8000 --api-key KEY
    run_eval_stage(cfg)      # the pipeline's stage: every trained role -> reports/eval_<role>.json

A report holds the scores, the gate's verdict and every prompt with its answer; MLflow gets the scores as
metrics and the answers as a table (``eval/answers.json``) in a run named ``eval-<label>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lmforge.artifacts import is_complete, write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.eval.evalset import build_eval_set, read_manifest
from lmforge.eval.gate import QualityVerdict, judge
from lmforge.eval.harness import HarnessResult, Target, run_harness

ROLES = ("teacher", "student")
ANSWERS_ARTIFACT = "eval/answers.json"


@dataclass(frozen=True)
class EvalReport:
    model: str
    scores: dict[str, float]
    verdict: str
    passed: bool
    reasons: list[str]
    eval_set: dict[str, Any]
    answers: list[dict[str, Any]]
    run_id: str | None = None


def run_eval(cfg: LMForgeConfig, model: str, gateway: str | None = None, api_key: str | None = None,
             log: bool = True) -> EvalReport:
    """Score ``model`` (a directory or ``models:/NAME@ALIAS|/VERSION``), in-process or through ``gateway``."""
    eval_set = ensure_eval_set(cfg)
    model_dir, served_name = resolve_model(cfg, model)
    target = (Target.served(gateway, served_name, api_key, model_dir) if gateway else Target.local(model_dir))
    result = run_harness(target, cfg)
    is_base = model_dir.resolve() == cfg.paths.base.resolve()
    verdict = judge(result.scores, cfg.eval.gate, None if is_base else base_score(cfg))
    run_id = log_to_mlflow(cfg, model, result, verdict, eval_set) if log else None
    return EvalReport(model, result.scores, str(verdict), verdict.passed, list(verdict.reasons), eval_set,
                      result.answers, run_id)


def run_eval_stage(cfg: LMForgeConfig) -> dict[str, EvalReport]:
    """Evaluate every trained role in-process; write ``reports/eval_<role>.json`` for the register stage.
    A profile with a base model scores it first: its score is what ``eval.gate.min_share_of_base`` reads."""
    build_eval_set(cfg)  # the stage rebuilds it: the data it is made from may have changed
    reports = {}
    has_base = (cfg.paths.base / "config.json").is_file()
    for role in (("base",) if has_base else ()) + ROLES:
        report = run_eval(cfg, str(cfg.paths.base if role == "base" else cfg.paths.models / role))
        write_json_atomic(report_path(cfg, role), asdict(report))
        reports[role] = report
    return reports


def base_score(cfg: LMForgeConfig) -> float | None:
    """The base model's eval score, when the eval stage has measured it."""
    report = read_report(cfg, "base")
    return report["scores"].get("score") if report else None


def report_path(cfg: LMForgeConfig, role: str) -> Path:
    return cfg.paths.reports / f"eval_{role}.json"


def read_report(cfg: LMForgeConfig, role: str) -> dict[str, Any] | None:
    path = report_path(cfg, role)
    return json.loads(path.read_text()) if path.is_file() else None


def ensure_eval_set(cfg: LMForgeConfig) -> dict[str, Any]:
    if not is_complete(cfg.paths.eval_set):
        build_eval_set(cfg)
    return read_manifest(cfg.paths.eval_set)


def resolve_model(cfg: LMForgeConfig, model: str) -> tuple[Path, str]:
    """A local HF directory for ``model`` and the name it is served under (a registered model's name)."""
    match = re.fullmatch(r"models:/([^/@]+)([/@])(.+)", model)
    if match is None:
        path = Path(model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{model} is not a model directory (no config.json) nor a models:/ URI")
        return path, path.name
    from lmforge.rollout.champion import alias_version, fetch_version

    name, sep, ref = match.groups()
    version = ref if sep == "/" else alias_version(cfg, name, ref)
    if version is None:
        raise LookupError(f"{name} has no alias {ref!r} in the registry at {cfg.tracking_uri()}")
    return fetch_version(cfg, name, version), name


def log_to_mlflow(cfg: LMForgeConfig, model: str, result: HarnessResult, verdict: QualityVerdict,
                  eval_set: dict[str, Any]) -> str:
    """A run ``eval-<label>``: scores as metrics, every prompt and answer as a table, the verdict as tags."""
    import mlflow

    from lmforge.registry.tracking import setup_tracking

    setup_tracking(cfg)
    label = Path(model).name if "://" not in model else model.split("/", 3)[-1]
    tags = {"lmforge.stage": "eval", "lmforge.profile": cfg.profile, "lmforge.eval.model": model,
            "lmforge.gate.quality": str(verdict)[:5000], "lmforge.lm_eval_version": result.lm_eval_version}
    with mlflow.start_run(run_name=f"eval-{label}", tags=tags) as run:
        mlflow.log_metrics({_metric_name(k): v for k, v in result.scores.items()})
        mlflow.log_params({"eval.max_new_tokens": cfg.eval.max_new_tokens, "eval.qa_items": eval_set["qa_items"],
                           "eval.ifeval_items": eval_set["ifeval_items"], "eval.decontam_ngram": eval_set["ngram"]})
        mlflow.log_table(answers_table(result.answers), ANSWERS_ARTIFACT)
        mlflow.log_dict({k: v for k, v in eval_set.items() if k != "dropped"}, "eval/eval_set.json")
    return run.info.run_id


def answers_table(answers: list[dict[str, Any]]) -> dict[str, list[Any]]:
    columns = ("task", "id", "prompt", "answer", "reference", "reached_eos", "rougeL", "prompt_level_strict_acc")
    return {c: [a.get(c) for a in answers] for c in columns}


def _metric_name(key: str) -> str:
    return re.sub(r"[^\w./ -]", "_", key)
