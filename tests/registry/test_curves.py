"""The dossier's training-curve images, drawn from (step, value) series without MLflow."""

from __future__ import annotations

from pathlib import Path

from lmforge.registry.curves import plot_curves


def test_plot_curves_draws_loss_and_perplexity(tmp_path: Path) -> None:
    history = {"train/loss": [(1, 7.6), (2, 6.9), (3, 6.1)], "val/loss": [(3, 6.3)], "val/ppl": [(3, 545.0)]}
    assert plot_curves(history, tmp_path, "m") == ["loss.png", "perplexity.png"]
    for name in ("loss.png", "perplexity.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_plot_curves_skips_what_the_run_did_not_log(tmp_path: Path) -> None:
    assert plot_curves({"train/loss": [(1, 7.6), (2, 6.9)]}, tmp_path) == ["loss.png"]
    assert not (tmp_path / "perplexity.png").exists()
    assert plot_curves({}, tmp_path / "none") == []
