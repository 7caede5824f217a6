"""Training curves from Lightning's CSV log (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ["read_epoch_metrics", "plot_training_curves"]


def read_epoch_metrics(metrics_csv: str | Path) -> dict[str, dict[int, float]]:
    """Per-epoch values of every logged metric: ``{name: {epoch: value}}``.

    Lightning's CSVLogger writes one row per logging call with empty cells for the other metrics;
    rows are merged by their ``epoch`` column (the last value of an epoch wins).

    Example:
        >>> m = read_epoch_metrics("runs/demo/logs/metrics.csv")  # doctest: +SKIP
        >>> sorted(m)  # doctest: +SKIP
        ['lr', 'train_loss', 'val_dice', 'val_loss']
    """
    out: dict[str, dict[int, float]] = {}
    with open(metrics_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            epoch_text = row.get("epoch", "")
            if not epoch_text:
                continue
            epoch = int(float(epoch_text))
            for key, text in row.items():
                if key in ("epoch", "step") or text in ("", None):
                    continue
                try:
                    value = float(text)
                except ValueError:
                    continue
                if math.isfinite(value):
                    out.setdefault(key, {})[epoch] = value
    return out


def plot_training_curves(metrics_csv: str | Path, out_png: str | Path, title: str | None = None) -> Path:
    """Save a two-panel figure: train and val loss (left), val Dice (right), per epoch.

    Returns:
        ``out_png``.
    """
    # The Agg canvas directly, not pyplot: no display, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = read_epoch_metrics(metrics_csv)
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_dice = fig.subplots(1, 2)
    for key, label in (("train_loss", "train loss"), ("val_loss", "val loss")):
        series = metrics.get(key, {})
        if series:
            epochs = sorted(series)
            ax_loss.plot(epochs, [series[e] for e in epochs], marker="o", markersize=3, label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("ALL-HL loss")
    ax_loss.set_title("loss")
    ax_loss.grid(alpha=0.3)
    if ax_loss.lines:
        ax_loss.legend()

    dice = metrics.get("val_dice", {})
    if dice:
        epochs = sorted(dice)
        ax_dice.plot(epochs, [dice[e] for e in epochs], marker="o", markersize=3, color="tab:green")
        best = max(epochs, key=lambda e: dice[e])
        ax_dice.annotate(f"{dice[best]:.3f}", (best, dice[best]), textcoords="offset points", xytext=(0, 6), ha="center")
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("Dice (per-image mean)")
    ax_dice.set_title("validation Dice")
    ax_dice.set_ylim(0.0, 1.0)
    ax_dice.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    return out_png
