"""The quantize stage: the served role's champion -> one quantised version per method, each gated and registered.

    lmforge quantize                               # every method in cfg.quantize.methods
    lmforge quantize --set quantize.methods=[w8a8]

For each method: quantise the champion's directory (``lmforge.quantize.compress``) into
``models/quantized/<role>-<method>/``, score it and the parent on the validation split of the cleaned corpus, and
register it as a new version of the same model (alias ``challenger``, so the canary rolls it out like any
challenger) when its retention, quantised score / parent score, reaches ``quantize.min_retention[method]``.
The version is tagged with its parent version, method and the hash of the data it was measured on. A method
that fails its gate is not registered; ``reports/quantize.json`` lists every method's figures, and the stage
then fails with one line per failure.

The score is ``retention_score``: 1 / perplexity today (so retention = parent ppl / quantised ppl). When the
eval stage lands, it returns the eval's score instead: one function to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.artifacts import write_json_atomic
from lmforge.config import LMForgeConfig
from lmforge.lineage import data_hash


class QuantizeGateError(RuntimeError):
    """A quantised model kept too little of its parent's quality (one line per method)."""


@dataclass(frozen=True)
class QuantizeResult:
    method: str
    model_dir: Path
    parent_version: str
    retention: float
    scores: dict[str, float]
    passed: bool
    version: str | None = None  # the registered version when the gate passed
    metrics: dict[str, Any] = field(default_factory=dict)


def run_quantize(cfg: LMForgeConfig) -> list[QuantizeResult]:
    from lmforge.quantize.compress import quantize_model
    from lmforge.registry.stage import served_role
    from lmforge.rollout.champion import champion_version, fetch_version

    role = served_role(cfg)
    name = cfg.model_name(role)
    parent_version = champion_version(cfg, name)
    parent_dir = fetch_version(cfg, name, parent_version)
    shards = cfg.paths.shards
    parent_score = retention_score(parent_dir, shards, cfg.quantize.eval_tokens)
    results = []
    for method in cfg.quantize.methods:
        out = cfg.paths.models / "quantized" / f"{role}-{method}"
        meta = {"parent": {"model": name, "version": parent_version}, "method": method,
                "group_size": cfg.quantize.group_size if method == "w4a16" else None}
        quantize_model(parent_dir, out, method, cfg.quantize.group_size, meta)
        score = retention_score(out, shards, cfg.quantize.eval_tokens)
        retention = score["score"] / parent_score["score"]
        passed = retention >= cfg.quantize.min_retention.get(method, 1.0)
        metrics = {"retention": retention, "ppl": score["ppl"], "parent_ppl": parent_score["ppl"],
                   "weights_mb": weights_mb(out), "parent_weights_mb": weights_mb(parent_dir)}
        version = register_quantized(cfg, role, out, method, parent_version, metrics, data_hash(shards)) \
            if passed else None
        results.append(QuantizeResult(method, out, parent_version, retention, score, passed, version, metrics))
    write_json_atomic(cfg.paths.reports / "quantize.json", {"parent": {"model": name, "version": parent_version},
                                                              "methods": [_row(r) for r in results]})
    failed = [r for r in results if not r.passed]
    if failed:
        raise QuantizeGateError("; ".join(
            f"{r.method}: retention {r.retention:.3f} < {cfg.quantize.min_retention.get(r.method, 1.0)} "
            f"(ppl {r.metrics['ppl']:.2f} vs parent {r.metrics['parent_ppl']:.2f}), not registered" for r in failed))
    return results


def retention_score(model_dir: Path, shards: Path, max_tokens: int) -> dict[str, float]:
    """The quality a quantised model must keep, higher is better: 1 / validation perplexity (the hook the eval
    stage's score replaces). Loads the model with transformers, which de-quantises compressed-tensors weights."""
    from lmforge.train.evaluate import evaluate_perplexity

    ppl = evaluate_perplexity(model_dir, shards, "val", max_tokens=max_tokens)["ppl"]
    return {"score": 1.0 / ppl, "ppl": ppl}


def register_quantized(cfg: LMForgeConfig, role: str, model_dir: Path, method: str, parent_version: str,
                       metrics: dict[str, float], calibration_hash: str) -> str:
    from lmforge.registry.register import register_model

    tags = {"lmforge.quantize.parent_version": parent_version, "lmforge.quantize.method": method,
            "lmforge.quantize.calibration_hash": calibration_hash}
    registered = register_model(cfg, role, model_dir, metrics, {"quantize_retention": "passed"}, data_tags=tags)
    return registered.version


def _row(result: QuantizeResult) -> dict[str, Any]:
    return {"method": result.method, "model_dir": str(result.model_dir), "passed": result.passed,
            "version": result.version, **result.metrics}


def weights_mb(model_dir: Path) -> float:
    return sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors")) / 1e6
