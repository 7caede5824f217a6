"""curves.png (issue 17, item 11): whole-number epoch ticks, a labelled best Dice, a Dice of 0 in sight."""
from __future__ import annotations

import csv
from pathlib import Path

from focusnet.engine.plots import DICE_YLIM, plot_training_curves, read_epoch_metrics, training_curves_figure


def _two_epochs(path: Path, dice: tuple[float, float]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "lr", "step", "train_loss", "val_dice", "val_loss"])
        w.writerow([0, "", 3, "", dice[0], 1.0])
        w.writerow([0, 0.001, 3, 1.2, "", ""])
        w.writerow([1, "", 7, "", dice[1], 0.8])
        w.writerow([1, 0.0005, 7, 0.9, "", ""])
    return path


def test_epoch_ticks_are_whole_numbers(tmp_path: Path) -> None:
    fig = training_curves_figure(read_epoch_metrics(_two_epochs(tmp_path / "m.csv", (0.5, 0.7))))
    fig.canvas.draw()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks  # no 0.25, 0.5, ... on two epochs


def test_best_dice_is_labelled_not_a_bare_number(tmp_path: Path) -> None:
    fig = training_curves_figure(read_epoch_metrics(_two_epochs(tmp_path / "m.csv", (0.5, 0.7))))
    dice = fig.axes[1]
    assert not dice.texts  # the unlabelled "0.700" above the point is gone
    assert [t.get_text() for t in dice.get_legend().get_texts()] == ["best 0.700 (epoch 1)"]


def test_a_dice_of_zero_is_not_hidden_on_the_axis(tmp_path: Path) -> None:
    fig = training_curves_figure(read_epoch_metrics(_two_epochs(tmp_path / "m.csv", (0.0, 0.0))))
    lo, hi = fig.axes[1].get_ylim()
    assert (lo, hi) == DICE_YLIM and lo < 0.0 and hi > 1.0
    line = fig.axes[1].lines[0]
    assert list(line.get_ydata()) == [0.0, 0.0] and line.get_visible()


def test_png_is_written(tmp_path: Path) -> None:
    out = plot_training_curves(_two_epochs(tmp_path / "m.csv", (0.5, 0.7)), tmp_path / "curves.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
