"""Register an exported model directory as an MLflow model version with its review dossier.

    version = register_model(cfg, "teacher", cfg.paths.models / "teacher", metrics, gates)

Each version carries: the HF directory as a pyfunc model (vLLM serves ``artifacts/hf_model`` as is), a
signature, metrics, lineage tags (git commit, data hash, config hash, parent run), sample generations as a
table, a compliance report, a model card, the training run's loss and perplexity curves as images and the
Great Expectations report of its data. A new version gets the ``challenger`` alias; ``champion`` moves
only through ``lmforge.registry.promote``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from lmforge import lineage
from lmforge.artifacts import require_complete
from lmforge.config import LMForgeConfig
from lmforge.eval.stage import answers_table
from lmforge.generation import sampling_defaults
from lmforge.registry.curves import metric_history, plot_curves
from lmforge.registry.pyfunc import HF_ARTIFACT, HFTextGenerator
from lmforge.registry.quality import EVAL_ANSWERS, SIDE_BY_SIDE, card_section, champion_answers, side_by_side
from lmforge.registry.review import compliance_report, model_card, sample_generations
from lmforge.registry.tracking import access_checked, setup_tracking

CHALLENGER = "challenger"
CHAMPION = "champion"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


class NotAModelError(ValueError):
    """The directory is not a loadable Hugging Face causal LM."""


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str  # models:/NAME/VERSION
    gates: dict[str, str]
    violation_rate: float


def check_model_dir(model_dir: Path) -> dict:
    """Fail with a one-line reason unless ``model_dir`` is a finished, loadable HF model directory."""
    manifest = require_complete(model_dir, "model directory")
    missing = [f for f in REQUIRED_FILES if not (Path(model_dir) / f).is_file()]
    if missing:
        raise NotAModelError(f"{model_dir} is not a Hugging Face model directory: missing {', '.join(missing)}")
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_dir)
    except Exception as err:  # any parse error means vLLM could not load it either
        raise NotAModelError(f"{model_dir}: config.json does not load ({err})") from err
    return {"manifest": manifest, "architectures": config.architectures, "config": config.to_dict()}


def register_model(
    cfg: LMForgeConfig,
    role: str,
    model_dir: Path,
    metrics: dict[str, float],
    gates: dict[str, str],
    parent_run_id: str | None = None,
    data_tags: dict[str, str] | None = None,
    data_validation: Path | None = None,
    quality: dict | None = None,
    challenger: bool = True,
) -> RegisteredVersion:
    """Log ``model_dir`` with its dossier and create a registered model version aliased ``challenger``.

    ``parent_run_id``: the run that trained the model; its loss and perplexity curves go into the dossier as
    images. ``data_validation``: the data stage's ``validation/`` (the Great Expectations result and Data Docs of
    the data the model was trained on), copied into the dossier. ``quality``: the model's eval report
    (``lmforge.eval``): its scores become metrics, its answers a table beside the champion's. ``challenger=False``
    registers the version for the record without the ``challenger`` alias (a failed quality gate)."""
    model_dir = Path(model_dir)
    meta = check_model_dir(model_dir)  # before touching MLflow: nothing half-registered
    setup_tracking(cfg)
    name = cfg.model_name(role)
    tags = {
        "lmforge.stage": "register",
        "lmforge.role": role,
        "lmforge.profile": cfg.profile,
        "lmforge.git_commit": lineage.git_commit(),
        **(data_tags or {}),
        **lineage.model_tags(model_dir),
    }
    if parent_run_id:
        tags["lmforge.parent_run"] = parent_run_id

    samples = sample_generations(model_dir, cfg.registry.sample_prompts)
    report = compliance_report([s["completion"] for s in samples], cfg.resolve(cfg.serve.policy))
    gates = dict(gates)
    gates["compliance"] = "passed" if report.violation_rate <= cfg.registry.max_violation_rate else "failed"
    arch = {k: meta["config"].get(k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                "vocab_size", "max_position_embeddings")}

    action = f"register a version of {name!r}"
    with access_checked(action):
        champion_version, champion_rows = champion_answers(name)
    versus = side_by_side(quality["answers"], champion_rows) if quality else None
    with access_checked(action), mlflow.start_run(run_name=f"register-{role}", tags=tags) as run:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.log_metric("compliance_violation_rate", report.violation_rate)
        mlflow.log_params({f"model.{k}": v for k, v in arch.items()})
        mlflow.log_table({"prompt": [s["prompt"] for s in samples],
                          "completion": [s["completion"] for s in samples]}, "review/samples.json")
        mlflow.log_dict(asdict(report), "review/compliance_report.json")
        mlflow.log_dict({"gates": gates, "metrics": metrics, "lineage": tags}, "review/dossier.json")
        if quality:
            mlflow.log_metrics({f"eval/{k}": float(v) for k, v in quality["scores"].items()})
            mlflow.log_table(answers_table(quality["answers"]), EVAL_ANSWERS)
            mlflow.log_table(versus, SIDE_BY_SIDE)
        card = model_card(name, role, metrics, tags, samples, report, arch, sampling_defaults(model_dir))
        card += "\n" + card_section(quality, versus or {}, champion_version)
        mlflow.log_text(card, "review/model_card.md")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "lmforge_lineage.json").write_text(json.dumps(tags, indent=2))
            mlflow.log_artifact(str(Path(tmp) / "lmforge_lineage.json"), "review")
            for image in _training_curves(parent_run_id, Path(tmp), name):
                mlflow.log_artifact(str(Path(tmp) / image), "review")
        if data_validation is not None and (Path(data_validation) / "result.json").is_file():
            mlflow.log_artifact(str(Path(data_validation) / "result.json"), "review/data_validation")
            if (Path(data_validation) / "data_docs").is_dir():
                mlflow.log_artifacts(str(Path(data_validation) / "data_docs"), "review/data_validation/data_docs")
        signature = ModelSignature(inputs=Schema([ColSpec("string")]),  # a list of prompts
                                   outputs=Schema([ColSpec("string")]))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=HFTextGenerator(),
            artifacts={HF_ARTIFACT: str(model_dir)},
            signature=signature,
            pip_requirements=["torch", "transformers", "safetensors", "tokenizers"],
        )
        version = mlflow.register_model(info.model_uri, name, tags=tags)

    client = MlflowClient()
    version_tags = {f"lmforge.gate.{k}": v for k, v in gates.items()}
    version_tags["lmforge.run_id"] = run.info.run_id
    version_tags["lmforge.compliance.violation_rate"] = f"{report.violation_rate:.4f}"
    version_tags["lmforge.policy_version"] = report.policy_version
    with access_checked(action):
        try:
            # The gate tags are what promotion reads: a version without them must not stay behind.
            for key, value in version_tags.items():
                client.set_model_version_tag(name, version.version, key, value)
            client.update_model_version(name, version.version, description=card)
            client.update_registered_model(name, description=f"lmforge {role} models of profile {cfg.profile}")
            from lmforge.registry.promote import move_alias

            if challenger:
                move_alias(cfg, name, CHALLENGER, version.version, by="lmforge register", reason="new version")
        except BaseException:
            client.delete_model_version(name, version.version)
            raise
    return RegisteredVersion(name, str(version.version), run.info.run_id, f"models:/{name}/{version.version}",
                             gates, report.violation_rate)


def _training_curves(run_id: str | None, out_dir: Path, title: str) -> list[str]:
    """The training run's curves as images in ``out_dir`` (none when there is no such run or no metrics)."""
    if not run_id:
        return []
    try:
        history = metric_history(MlflowClient(), run_id)
    except MlflowException as err:  # a run id from another tracking store: the dossier says so, nothing breaks
        print(f"lmforge register: no training curves for {title} (run {run_id}: {err.error_code})")
        return []
    return plot_curves(history, out_dir, title)


def download_model(cfg: LMForgeConfig, name: str, alias_or_version: str, dest: Path) -> Path:
    """Fetch a registered version's HF directory (for vLLM) into ``dest``; return the HF directory."""
    setup_tracking(cfg)
    sep = "/" if alias_or_version.isdigit() else "@"
    ref = f"models:/{name}{sep}{alias_or_version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref, dst_path=str(dest)))
    hf_dir = hf_model_path(local)
    if hf_dir is None or not (hf_dir / "config.json").is_file():
        raise NotAModelError(f"{ref} has no {HF_ARTIFACT} directory: it was not registered by lmforge")
    return hf_dir


def hf_model_path(model_root: Path) -> Path | None:
    """Where the HF directory lies inside a downloaded pyfunc model (MLflow names it after the source dir)."""
    import yaml

    mlmodel = model_root / "MLmodel"
    if not mlmodel.is_file():
        return None
    flavor = (yaml.safe_load(mlmodel.read_text()).get("flavors") or {}).get("python_function") or {}
    entry = (flavor.get("artifacts") or {}).get(HF_ARTIFACT)
    return model_root / entry["path"] if entry else None
