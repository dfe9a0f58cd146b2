"""Training curves for the review dossier: a model's loss and perplexity per step, drawn as PNG images.

    history = metric_history(client, run_id)        # {"train/loss": [(step, value), ...], "val/ppl": ...}
    written = plot_curves(history, out_dir)          # ["loss.png", "perplexity.png"] (those it had data for)

The numbers come from the training run's own MLflow metrics (what Lightning's MLflow logger wrote), so the
images show exactly what the run recorded; a run without them (a model made outside lmforge) gets no image.
"""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

CURVE_METRICS = ("train/loss", "val/loss", "val/ppl")
Series = list[tuple[int, float]]


def metric_history(client: MlflowClient, run_id: str) -> dict[str, Series]:
    """Each of ``CURVE_METRICS`` the run logged, as (step, value) pairs in step order."""
    history = {}
    for key in CURVE_METRICS:
        points = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        if points:
            history[key] = points
    return history


def plot_curves(history: dict[str, Series], out_dir: Path, title: str = "") -> list[str]:
    """Write ``loss.png`` (train and validation loss) and ``perplexity.png`` (validation perplexity, log
    scale) into ``out_dir`` for the series present; return the file names written."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers, and no GUI backend to import
    import matplotlib.pyplot as plt

    figures = {"loss.png": (("train/loss", "train"), ("val/loss", "validation")),
               "perplexity.png": (("val/ppl", "validation"),)}
    written = []
    for name, series in figures.items():
        present = [(label, history[key]) for key, label in series if history.get(key)]
        if not present:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        for label, points in present:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o" if len(points) < 20 else None, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel("perplexity" if name == "perplexity.png" else "loss (nats/token)")
        if name == "perplexity.png":
            ax.set_yscale("log")
        ax.set_title(f"{title} {ax.get_ylabel().split(' ')[0]}".strip())
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(Path(out_dir) / name)
        plt.close(fig)
        written.append(name)
    return written
