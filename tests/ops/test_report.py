"""The run report: what ran or was cached, the data counts, the gates, the registry and the rollout."""

from __future__ import annotations

from lmforge.ops.report import render_report

REPORTS = {
    "clean": {"in": 2400, "kept": 1967, "quarantined": 433, "rules": {"exact_dup": 375, "not_english": 40},
              "pii": {"EMAIL": 10}, "corpus": {"in": 400, "kept": 342, "quarantined": 58}},
    "validation": {"success": True, "evaluated": 23, "failed": 0, "results": []},
    "distill": {"gate": {"passed": True, "ppl_ratio": 1.2051, "speedup": 1.82, "beats_baseline": True,
                         "reason": "all checks passed"}},
    "register": {"promoted": "lmforge-tiny-student v3", "refused": None,
                 "versions": {"student": {"model_uri": "models:/lmforge-tiny-student/3",
                                          "gates": {"data": "passed", "distill": "passed"}}}},
}


def test_report_names_every_stage_and_figure() -> None:
    run = {"profile": "tiny", "overrides": [], "status": "completed", "seconds": 12.5, "started_at": "T",
           "stages": [{"stage": "ingest", "status": "cached", "seconds": 0.1},
                      {"stage": "finetune", "status": "ran", "seconds": 25.0}],
           "rollout": {"model": "lmforge-tiny-student", "version": "3", "gateway_url": "http://127.0.0.1:8000",
                       "rollout": {"decision": "skipped", "reason": "no challenger"}}}
    text = render_report(run, REPORTS)
    assert "| ingest | cached | 0.1 |" in text and "| finetune | ran | 25.0 |" in text
    assert "Ran: finetune. Cached: ingest." in text
    assert "records in 2400, kept 1967, quarantined 433 (in = kept + quarantined: True)" in text
    assert "exact_dup 375" in text and "EMAIL 10" in text
    assert "23/23 expectations met" in text and "student/teacher ppl 1.205" in text
    assert "models:/lmforge-tiny-student/3" in text and "champion: lmforge-tiny-student v3" in text
    assert "rollout: skipped: no challenger" in text


def test_a_failed_gate_is_in_the_report_with_its_reason() -> None:
    failed = {"success": False, "evaluated": 23, "failed": 1,
              "results": [{"success": False, "message": "corpus: pii_residue must be 0: observed 2"}]}
    run = {"profile": "tiny", "status": "failed", "seconds": 3.0,
           "error": "DataGateError: 1 expectation failed",
           "stages": [{"stage": "validate", "status": "failed", "seconds": 2.0, "error": "DataGateError: ..."}]}
    text = render_report(run, {"validation": failed})
    assert text.startswith("# lmforge pipeline run: failed")
    assert "**failed**: DataGateError" in text
    assert "FAILED, 22/23 expectations met; failed: corpus: pii_residue must be 0: observed 2" in text
