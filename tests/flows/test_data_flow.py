"""The Prefect data flow on the shipped sample: counts balance, and the gate stops a planted defect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _overrides(tmp_path: Path) -> list[str]:
    return [f"work_dir={tmp_path / 'run'}", "data.max_docs=150", "data.max_pairs=300", "data.vocab_size=512"]


def test_data_flow_counts_balance(prefect_harness, tmp_path: Path) -> None:
    from flows.data import data_flow

    out = data_flow(profile="tiny", overrides=_overrides(tmp_path))
    clean = out["clean"]
    assert clean["docs_in"] + clean["pairs_in"] == clean["docs_kept"] + clean["pairs_kept"] + clean["quarantined"]
    assert sum(clean["rules"].values()) == clean["quarantined"] > 0
    metrics = json.loads((tmp_path / "run" / "reports" / "clean.json").read_text())
    assert metrics["in"] == metrics["kept"] + metrics["quarantined"]
    quarantined = sum(1 for f in (tmp_path / "run" / "clean" / "quarantine").glob("*.jsonl")
                      for _ in f.open())
    assert quarantined == clean["quarantined"], "every dropped record is kept on disk"
    assert out["validate"]["success"] is True
    assert out["pack"]["train_tokens"] > 0


def test_gate_fails_the_flow_when_pii_scrubbing_breaks(prefect_harness, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.data import data_flow
    from lmforge.data import clean as clean_module

    # A planted defect: a release where the scrubber silently stopped running.
    for name in ("prose_steps", "pair_steps"):
        original = getattr(clean_module, name)
        monkeypatch.setattr(clean_module, name, lambda cfg, f=original: [
            s for s in f(cfg) if type(s).__name__ != "ScrubPii"])
    state = data_flow(profile="tiny", overrides=_overrides(tmp_path), return_state=True)
    assert state.is_failed()
    message = str(state.message) + str(state.result(raise_on_failure=False))
    assert "pii_residue" in message
    assert not (tmp_path / "run" / "tokenizer").exists(), "nothing after a failed gate may run"
