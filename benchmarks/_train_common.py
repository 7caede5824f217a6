"""Helpers shared by the real-data training benchmarks (``bench_isic_train.py``, ``bench_dsb_train.py``,
``bench_monai_basicunet.py``, and the comparisons ``bench_head_to_head.py``, ``bench_isic_scale.py``,
``head_to_head_seeds.py``)."""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from focusnet.compare.stats import bootstrap_ci, paired_test


def add_isic_protocol_args(p: argparse.ArgumentParser, dataset: str, minutes: float, threads: int | None) -> None:
    """The arguments that fix the ISIC budget protocol, shared so both sides of a comparison agree:
    data, split counts, seed, image size, time budget, epochs, batch size and learning rate."""
    p.add_argument("--source", type=Path, default=None, help=f"ISIC folder (default $FOCUSNET_DATA/{dataset})")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--train", type=int, default=300)
    p.add_argument("--val", type=int, default=50)
    p.add_argument("--test", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="seed of the image selection and of training")
    p.add_argument("--minutes", type=float, default=minutes,
                   help=f"training wall-time budget, checked after each epoch (default {minutes:g})")
    p.add_argument("--epochs", type=int, default=1000, help="epoch cap (default 1000: the budget decides)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=threads,
                   help="torch CPU threads" + (f" (default {threads})" if threads else ""))
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def epochs_run(run: Path) -> int:
    """Epochs that finished training (rows of ``logs/metrics.csv`` with a ``train_loss``)."""
    path = run / "logs" / "metrics.csv"
    if not path.is_file():
        return 0
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return len({r.get("epoch") for r in rows if r.get("train_loss")})


def budget_kwargs(minutes: float | None) -> tuple[dict, str]:
    """TrainConfig keys for a ``--minutes`` wall-time budget, and a note saying how it is enforced."""
    if minutes is None:
        return {}, "no time budget (--epochs only)"
    return {"max_minutes": float(minutes)}, f"max_minutes={minutes} (checked after each epoch; best weights kept)"


def paired_dice(reference: np.ndarray, focusnetpp: np.ndarray) -> dict[str, Any]:
    """FocusNet++ against another model on the same test images, image by image: the mean difference
    (FocusNet++ - other) with its 95% bootstrap CI, the two-sided Wilcoxon signed-rank test
    (:func:`focusnet.compare.stats.paired_test`) and how many images each side wins.

    Example:
        >>> r = paired_dice(np.array([0.7, 0.8, 0.9]), np.array([0.8, 0.8, 0.95]))
        >>> round(r["difference_mean"], 3), r["focusnetpp_better"], r["focusnetpp_worse"], r["ties"]
        (0.05, 2, 0, 1)
    """
    lo, hi = bootstrap_ci(focusnetpp - reference)
    return {"difference_mean": float((focusnetpp - reference).mean()), "difference_ci95": [lo, hi],
            "wilcoxon": paired_test(reference, focusnetpp), "focusnetpp_better": int((focusnetpp > reference).sum()),
            "focusnetpp_worse": int((focusnetpp < reference).sum()), "ties": int((focusnetpp == reference).sum())}


#: Edges of the lesion-area groups: the fraction of a test image its ground-truth lesion covers; each
#: group holds [low, high), the last one 1.0 as well.
AREA_BINS = (0.0, 0.05, 0.20, 0.50, 0.75, 1.0)
AREA_LABELS = ("< 5%", "5–20%", "20–50%", "50–75%", "≥ 75%")


def lesion_fractions(rows: list[dict[str, Any]]) -> list[float] | None:
    """The fraction of each image its ground-truth lesion covers, ``(tp + fn) / (tp + fp + fn + tn)``, from
    a side file's per-image rows; None when a row lacks the counts.

    Example:
        >>> lesion_fractions([{"tp": 3, "fn": 1, "fp": 0, "tn": 4}])
        [0.5]
    """
    try:
        return [(r["tp"] + r["fn"]) / (r["tp"] + r["fp"] + r["fn"] + r["tn"]) for r in rows]
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def area_groups(fractions: np.ndarray) -> np.ndarray:
    """The :data:`AREA_BINS` group (0 to 4) of each image's lesion fraction.

    Example:
        >>> area_groups(np.array([0.0, 0.049, 0.05, 0.75, 1.0])).tolist()
        [0, 0, 1, 4, 4]
    """
    return np.clip(np.searchsorted(AREA_BINS, fractions, side="right") - 1, 0, len(AREA_LABELS) - 1)


def dice_by_area(fractions: np.ndarray, dice: np.ndarray) -> dict[str, Any]:
    """How many images each :data:`AREA_BINS` group holds, and their mean Dice (None for an empty group).

    Example:
        >>> dice_by_area(np.array([0.01, 0.02, 0.9]), np.array([0.5, 0.7, 0.9]))
        {'images': [2, 0, 0, 0, 1], 'dice': [0.6, None, None, None, 0.9]}
    """
    group = area_groups(fractions)
    counts = [int((group == g).sum()) for g in range(len(AREA_LABELS))]
    return {"images": counts, "dice": [float(dice[group == g].mean()) if n else None for g, n in enumerate(counts)]}
