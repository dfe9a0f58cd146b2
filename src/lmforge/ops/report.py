"""The run report: one short markdown page per pipeline run, from what the stages wrote.

    text = render_report(run, read_stage_reports(cfg))   # pure: run = {"profile", "stages": [ledger...], ...}
    write_report(cfg, run)                                # <work>/reports/pipeline.md (+ .json), MLflow artifact

``run["stages"]`` is ``flows.common.LEDGER``: each stage task ran, was cached or failed (with its reason).
The rest comes from the reports the stages leave in the work directory: the data counts and quarantine rules
(``reports/clean.json``), the Great Expectations gate (``validation/result.json``), the distillation gate
(``reports/distill.json``), the registered versions (``reports/register.json``); and the rollout outcome.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from lmforge.artifacts import write_json_atomic
from lmforge.config import LMForgeConfig

log = logging.getLogger("lmforge.report")


def read_stage_reports(cfg: LMForgeConfig) -> dict[str, Any]:
    paths = cfg.paths
    sources = {"clean": paths.reports / "clean.json", "validation": paths.validation / "result.json",
               "distill": paths.reports / "distill.json", "register": paths.reports / "register.json"}
    found = {}
    for name, path in sources.items():
        try:
            found[name] = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
    return found


def render_report(run: dict[str, Any], reports: dict[str, Any]) -> str:
    status = run.get("status", "completed")
    lines = [f"# lmforge pipeline run: {status}", "",
             f"- profile `{run.get('profile')}`, overrides `{run.get('overrides') or []}`",
             f"- started {run.get('started_at', '?')}, {run.get('seconds', 0):.1f} s in all"]
    if run.get("error"):
        lines.append(f"- **failed**: {run['error']}")
    lines += ["", "## Stages", "", "| stage | status | seconds |", "|---|---|---|"]
    for entry in run.get("stages", []):
        note = f" ({entry['error'][:300]})" if entry.get("error") else ""
        lines.append(f"| {entry['stage']} | {entry['status']}{note} | {entry['seconds']} |")
    ran = [e["stage"] for e in run.get("stages", []) if e["status"] == "ran"]
    cached = [e["stage"] for e in run.get("stages", []) if e["status"] == "cached"]
    lines += ["", f"Ran: {', '.join(ran) or 'none'}. Cached: {', '.join(cached) or 'none'}."]
    lines += _data_lines(reports) + _gate_lines(reports) + _register_lines(reports) + _rollout_lines(run)
    return "\n".join(lines) + "\n"


def _data_lines(reports: dict[str, Any]) -> list[str]:
    clean = reports.get("clean")
    if not clean:
        return []
    lines = ["", "## Data", "",
             f"- records in {clean.get('in')}, kept {clean.get('kept')}, quarantined {clean.get('quarantined')}"
             f" (in = kept + quarantined: {clean.get('in') == clean.get('kept', 0) + clean.get('quarantined', 0)})"]
    lines += _input_lines(clean.get("lines") or {})
    for kind in ("corpus", "pairs"):
        if part := clean.get(kind):
            lines.append(f"- {kind}: in {part.get('in')}, kept {part.get('kept')}, quarantined "
                         f"{part.get('quarantined')}")
    if rules := clean.get("rules"):
        lines.append("- quarantined by rule: " + ", ".join(f"{k} {v}" for k, v in sorted(rules.items())))
    if pii := clean.get("pii"):
        lines.append("- PII scrubbed: " + ", ".join(f"{k} {v}" for k, v in sorted(pii.items())))
    return lines


def _input_lines(acc: dict[str, Any]) -> list[str]:
    """Every line of the input: kept, quarantined (at ingest or clean) or left out (blank, past a cap)."""
    if not acc:
        return []
    accounted = acc.get("read") == acc.get("kept", 0) + acc.get("quarantined", 0) + acc.get("left_out", 0)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(acc.get("left_out_reasons", {}).items()))
    out = [f"- input lines {acc.get('read')}: kept {acc.get('kept')}, quarantined {acc.get('quarantined')}, left "
           f"out {acc.get('left_out')}{f' ({reasons})' if reasons else ''} (every line accounted for: {accounted})"]
    if bad := acc.get("quarantined_at_ingest"):
        out.append("- quarantined at ingest: " + ", ".join(f"{k} {v}" for k, v in sorted(bad.items())))
    out += [f"- left out: {run['reason']}, records of {run['file']} lines {run['first_line']}-{run['last_line']} "
            f"({run['count']})" for run in acc.get("left_out_lines", [])]
    return out


def _gate_lines(reports: dict[str, Any]) -> list[str]:
    lines = []
    if validation := reports.get("validation"):
        failed = [r.get("message", "") for r in validation.get("results", []) if not r.get("success")]
        verdict = "passed" if validation.get("success", not failed) else "FAILED"
        lines.append(f"- data gate (Great Expectations): {verdict}, "
                     f"{validation.get('evaluated', 0) - validation.get('failed', 0)}/{validation.get('evaluated')}"
                     " expectations met" + (f"; failed: {'; '.join(failed)[:600]}" if failed else ""))
    if gate := (reports.get("distill") or {}).get("gate"):
        lines.append(f"- distillation gate: {'passed' if gate.get('passed') else 'FAILED'} "
                     f"(student/teacher ppl {gate.get('ppl_ratio', 0):.3f}, speedup {gate.get('speedup', 0):.2f}x, "
                     f"beats no-KD baseline: {gate.get('beats_baseline')}; {gate.get('reason')})")
    return ["", "## Gates", "", *lines] if lines else []


def _register_lines(reports: dict[str, Any]) -> list[str]:
    register = reports.get("register")
    if not register:
        return []
    lines = ["", "## Registry", ""]
    for role, version in sorted(register.get("versions", {}).items()):
        gates = ", ".join(f"{k} {v}" for k, v in sorted(version.get("gates", {}).items()))
        lines.append(f"- {role}: `{version.get('model_uri')}` ({gates})")
    if register.get("promoted"):
        lines.append(f"- champion: {register['promoted']}")
    if register.get("refused"):
        lines.append(f"- promotion refused: {register['refused']}")
    return lines


def _rollout_lines(run: dict[str, Any]) -> list[str]:
    rollout = run.get("rollout")
    if not rollout:
        return []
    outcome = rollout.get("rollout", {})
    return ["", "## Rollout", "",
            f"- serving {rollout.get('model')} v{rollout.get('version')} at {rollout.get('gateway_url')}",
            f"- rollout: {outcome.get('decision')}: {outcome.get('reason')}"]


def write_report(cfg: LMForgeConfig, run: dict[str, Any]) -> Path:
    """Write ``pipeline.md`` and ``pipeline.json`` to the work directory's reports; log both to MLflow."""
    text = render_report(run, read_stage_reports(cfg))
    md = cfg.paths.reports / "pipeline.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    tmp = md.with_name(f".{md.name}.tmp")
    tmp.write_text(text)
    tmp.replace(md)
    write_json_atomic(cfg.paths.reports / "pipeline.json", run)
    try:
        _log_to_mlflow(cfg, run, md)
    except Exception:  # the files hold it; an unreachable tracking server must not hide the report
        log.exception("could not log the run report to MLflow")
    return md


def _log_to_mlflow(cfg: LMForgeConfig, run: dict[str, Any], md: Path) -> None:
    import mlflow

    from lmforge.registry.tracking import setup_tracking

    experiment_id = setup_tracking(cfg)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"pipeline-{stamp}",
                          tags={"lmforge.stage": "pipeline", "lmforge.profile": cfg.profile,
                                "lmforge.status": run.get("status", "completed")}):
        mlflow.log_artifact(str(md))
        mlflow.log_artifact(str(cfg.paths.reports / "pipeline.json"))
        for entry in run.get("stages", []):
            mlflow.log_metric(f"seconds_{entry['stage']}", entry["seconds"])
        mlflow.log_metric("stages_cached", sum(e["status"] == "cached" for e in run.get("stages", [])))
        mlflow.log_metrics(data_metrics(read_stage_reports(cfg).get("clean") or {}))


def data_metrics(clean: dict[str, Any]) -> dict[str, float]:
    """The data counts as MLflow metrics: input lines and what became of them, per reason."""
    acc = clean.get("lines") or {}
    metrics = {f"data_lines_{k}": acc[k] for k in ("read", "kept", "quarantined", "left_out") if k in acc}
    for prefix, counts in (("data_quarantined", acc.get("quarantined_at_ingest", {})),
                           ("data_quarantined", clean.get("rules", {})),
                           ("data_left_out", acc.get("left_out_reasons", {}))):
        metrics.update({f"{prefix}_{reason}": n for reason, n in counts.items()})
    return metrics
