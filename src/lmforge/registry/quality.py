"""The answer-quality part of a version's review dossier: its eval scores and answers beside the champion's.

    rows = side_by_side(report["answers"], champion_answers(cfg, name))
    card_section(report, rows)     # markdown for the model card

The champion's answers are the table its own registration logged (``review/eval_answers.json``), so both
columns come from the same eval set and the same greedy settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

EVAL_ANSWERS = "review/eval_answers.json"
SIDE_BY_SIDE = "review/answers_vs_champion.json"


def champion_answers(name: str) -> tuple[str | None, list[dict[str, Any]]]:
    """The current champion's version and its eval answers (None and [] when there is no champion or table)."""
    client = MlflowClient()
    try:
        champion = client.get_model_version_by_alias(name, "champion")
        local = client.download_artifacts(champion.run_id, EVAL_ANSWERS)
    except (MlflowException, OSError):
        return None, []
    table = json.loads(Path(local).read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    return str(champion.version), rows


def side_by_side(candidate: list[dict[str, Any]], champion: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """One row per eval prompt: the reference, the candidate's answer and the champion's (same task and id)."""
    theirs = {(a["task"], a["id"]): a for a in champion}
    rows = [(a, theirs.get((a["task"], a["id"]), {})) for a in candidate]
    return {"task": [a["task"] for a, _ in rows], "id": [a["id"] for a, _ in rows],
            "prompt": [a["prompt"] for a, _ in rows], "reference": [a.get("reference", "") for a, _ in rows],
            "candidate": [a["answer"] for a, _ in rows], "champion": [c.get("answer") for _, c in rows],
            "candidate_rougeL": [a.get("rougeL") for a, _ in rows],
            "champion_rougeL": [c.get("rougeL") for _, c in rows]}


def card_section(report: dict[str, Any] | None, rows: dict[str, list[Any]], champion_version: str | None,
                 shown: int = 8) -> str:
    """Markdown: the eval scores, the gate's verdict and the first ``shown`` answers beside the champion's."""
    if report is None:
        return "## Answer quality\nNot measured: no eval report (`lmforge eval`).\n"
    scores = "\n".join(f"| {k} | {v:.4g} |" for k, v in sorted(report["scores"].items()))
    against = f"champion v{champion_version}" if champion_version else "no champion yet"

    def cell(text: Any) -> str:
        return str(text if text is not None else "-")[:120].replace("|", "/").replace("\n", " ")

    pairs = "\n".join(f"| {cell(p)} | {cell(c)} | {cell(h)} |" for p, c, h in
                      list(zip(rows["prompt"], rows["candidate"], rows["champion"], strict=True))[:shown])
    return f"""## Answer quality (held-out eval set, lm-eval)
Verdict of the quality gate: **{report['verdict']}**. Eval set: {report['eval_set'].get('qa_items')} QA items,
{report['eval_set'].get('ifeval_items')} instruction items, {report['eval_set'].get('heldout_docs')} held-out
documents; {sum(report['eval_set'].get('contaminated', {}).values())} candidates dropped for n-gram overlap with
training data.

| score | value |
|---|---|
{scores}

Answers beside the {against} (all of them: `{SIDE_BY_SIDE}`):

| prompt | this version | champion |
|---|---|---|
{pairs}
"""
