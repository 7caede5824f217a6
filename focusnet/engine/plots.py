"""Training curves from Lightning's CSV log (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

__all__ = ["read_epoch_metrics", "plot_training_curves", "training_curves_figure"]


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


#: Dice axis limits: a little below 0 and above 1, so a Dice of 0 (or 1) is not hidden on the axis line.
DICE_YLIM = (-0.04, 1.04)


def plot_training_curves(metrics_csv: str | Path, out_png: str | Path, title: str | None = None) -> Path:
    """Save a two-panel figure: train and val loss (left), val Dice (right), per epoch.

    Returns:
        ``out_png``.
    """
    fig = training_curves_figure(read_epoch_metrics(metrics_csv), title)
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    return out_png


def training_curves_figure(metrics: dict[str, dict[int, float]], title: str | None = None) -> Any:
    """The matplotlib ``Figure`` of :func:`plot_training_curves` for :func:`read_epoch_metrics` output.

    Epoch ticks are whole numbers (from 0, as in ``metrics.csv``); the best validation Dice is
    marked and labelled ``best <value> (epoch <n>)``; the Dice axis reaches a little past 0 and 1
    (``DICE_YLIM``) so a Dice of 0 stays visible.

    Example:
        >>> fig = training_curves_figure({"val_dice": {0: 0.0, 1: 0.25}})
        >>> fig.axes[1].get_legend().get_texts()[0].get_text()
        'best 0.250 (epoch 1)'
    """
    # The Agg canvas directly, not pyplot: no display, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

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
        ax_dice.plot([best], [dice[best]], marker="*", markersize=11, color="tab:green", linestyle="none",
                     label=f"best {dice[best]:.3f} (epoch {best})")
        ax_dice.legend(loc="best")  # away from the line, e.g. above a Dice of 0
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("Dice (per-image mean)")
    ax_dice.set_title("validation Dice")
    ax_dice.set_ylim(*DICE_YLIM)
    ax_dice.grid(alpha=0.3)
    for ax in (ax_loss, ax_dice):  # epochs are whole numbers: no 0.5 ticks on a two-epoch run
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return fig
