"""The run report: what ran or was cached, the data counts, the gates, the registry and the rollout."""

from __future__ import annotations

from lmforge.ops.report import data_metrics, render_report

REPORTS = {
    "clean": {"in": 2400, "kept": 1967, "quarantined": 433, "rules": {"exact_dup": 375, "not_english": 40},
              "pii": {"EMAIL": 10}, "corpus": {"in": 400, "kept": 342, "quarantined": 58},
              "lines": {"read": 2470, "kept": 1967, "quarantined": 436, "left_out": 67,
                        "quarantined_at_ingest": {"invalid_json": 3}, "left_out_reasons": {"over_max_docs": 67},
                        "left_out_lines": [{"file": "u.jsonl", "reason": "over_max_docs", "first_line": 406,
                                            "last_line": 472, "count": 67}]}},
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
    assert ("input lines 2470: kept 1967, quarantined 436, left out 67 (over_max_docs 67) (every line accounted "
            "for: True)") in text
    assert "quarantined at ingest: invalid_json 3" in text
    assert "left out: over_max_docs, records of u.jsonl lines 406-472 (67)" in text
    assert data_metrics(REPORTS["clean"]) == {
        "data_lines_read": 2470, "data_lines_kept": 1967, "data_lines_quarantined": 436, "data_lines_left_out": 67,
        "data_quarantined_invalid_json": 3, "data_quarantined_exact_dup": 375, "data_quarantined_not_english": 40,
        "data_left_out_over_max_docs": 67}
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
