"""Segmentation metrics from per-image confusion counts, and the summary printed by ``focusnet score``.

Everything starts from :func:`confusion_counts` (TP, FP, FN, TN per image). Per-image metrics come
from :func:`metrics_from_counts`; :func:`summarize` aggregates them as per-image mean, population
standard deviation, median, pooled (from the summed counts) and the ISIC 2018 thresholded Jaccard.

Empty-mask rule (the one place where the metrics need a convention): a ratio whose denominator is 0
is ``empty_score`` if the prediction is perfect on that image (FP = FN = 0), and 0 otherwise.

* precision = TP / (TP + FP); nothing predicted: ``empty_score`` if the truth is empty, else 0.
* recall = TP / (TP + FN); truth empty: ``empty_score`` if nothing is predicted, else 0.
* dice = 2TP / (2TP + FP + FN); both empty: ``empty_score``.
* jaccard = TP / (TP + FP + FN); both empty: ``empty_score``.
* specificity = TN / (TN + FP); truth all foreground: ``empty_score`` if the prediction is too, else 0.
* accuracy = (TP + TN) / (TP + FP + FN + TN); never undefined for a non-empty image.

``empty_score`` defaults to 1.0, the ISIC convention (an empty prediction of an empty mask is
perfect). Pass ``float("nan")`` to leave such images out of the means, std and medians.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import torch

__all__ = [
    "METRIC_NAMES",
    "THRESHOLDED_JACCARD_CUTOFF",
    "confusion_counts",
    "metrics_from_counts",
    "summarize",
    "thresholded_jaccard",
]

METRIC_NAMES = ("precision", "recall", "dice", "jaccard", "specificity", "accuracy")
COUNT_NAMES = ("tp", "fp", "fn", "tn")
THRESHOLDED_JACCARD_CUTOFF = 0.65



class ScoreSummary(TypedDict):
    """``summary.json`` (and each resolution of an evaluation): :func:`summarize`'s result."""

    per_image: list[dict[str, Any]]
    mean: dict[str, float | None]
    std: dict[str, float | None]
    median: dict[str, float | None]
    pooled: dict[str, float | None]
    thresholded_jaccard: float | None
    count: int
    protocol: dict[str, Any]


_EMPTY_RULE = (
    "a ratio whose denominator is 0 (e.g. Dice with no true and no predicted foreground) is "
    "empty_score if the prediction is perfect on that image (FP = FN = 0), else 0"
)


def _as_masks(x: torch.Tensor | np.ndarray, what: str, device: torch.device | None) -> torch.Tensor:
    """A bool tensor (N, H, W) from (H, W), (N, H, W) or (N, 1, H, W) bool or 0/1 input."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    if device is not None:
        t = t.to(device)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    elif t.dim() == 4 and t.shape[1] == 1:
        t = t.squeeze(1)
    if t.dim() != 3:
        raise ValueError(f"{what} must have shape (H, W), (N, H, W) or (N, 1, H, W); got {tuple(t.shape)}")
    if t.dtype != torch.bool:
        if not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"{what} must be binary (bool or 0/1); threshold probabilities first")
        t = t != 0
    return t


def confusion_counts(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-image confusion counts of binary masks.

    Args:
        pred: predicted masks, bool or 0/1, shape (N, H, W), (N, 1, H, W) or a single (H, W);
            a torch tensor or a numpy array.
        target: true masks of the same shape.

    Returns:
        An int64 tensor (N, 4) with columns TP, FP, FN, TN, on ``pred``'s device (CPU for numpy).

    Example:
        >>> pred = np.array([[1, 1], [0, 0]], dtype=bool)
        >>> true = np.array([[1, 0], [1, 0]], dtype=bool)
        >>> confusion_counts(pred, true).tolist()
        [[1, 1, 1, 1]]
    """
    device = pred.device if isinstance(pred, torch.Tensor) else None
    p = _as_masks(pred, "pred", device)
    t = _as_masks(target, "target", p.device)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    dims = (1, 2)
    tp = (p & t).sum(dim=dims)
    fp = (p & ~t).sum(dim=dims)
    fn = (~p & t).sum(dim=dims)
    tn = (~p & ~t).sum(dim=dims)
    return torch.stack([tp, fp, fn, tn], dim=1).to(torch.int64)


def _counts_array(counts: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = counts.detach().cpu().numpy() if isinstance(counts, torch.Tensor) else np.asarray(counts)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"counts must have shape (N, 4) with columns TP, FP, FN, TN; got {arr.shape}")
    return arr.astype(np.float64)


def metrics_from_counts(counts: torch.Tensor | np.ndarray, empty_score: float = 1.0) -> dict[str, np.ndarray]:
    """Per-image precision, recall, Dice, Jaccard, specificity and accuracy from confusion counts.

    Empty-mask rule: a ratio whose numerator and denominator are both 0 is ``empty_score`` when the
    prediction is perfect on that image (FP = FN = 0), and 0 otherwise. So with no true and no
    predicted foreground, precision, recall, Dice and Jaccard are ``empty_score``; with true
    foreground but nothing predicted, precision is 0 (as are recall, Dice, Jaccard); with no true
    foreground but some predicted, recall is 0 (as are precision, Dice, Jaccard); specificity follows
    the same rule for background (a truth with no background at all).

    Args:
        counts: (N, 4) TP, FP, FN, TN per image (from :func:`confusion_counts`), tensor or array;
            a single row (4,) is read as one image.
        empty_score: value of an undefined ratio on a perfectly predicted image (default 1.0, as
            ISIC); ``nan`` marks such values as undefined.

    Returns:
        ``{name: float64 array (N,)}`` for each name in :data:`METRIC_NAMES`.

    Example:
        >>> m = metrics_from_counts(np.array([[1, 1, 1, 1], [0, 0, 0, 4], [0, 2, 0, 2]]))
        >>> m["dice"].tolist()
        [0.5, 1.0, 0.0]
        >>> m["precision"].tolist(), m["recall"].tolist()
        ([0.5, 1.0, 0.0], [0.5, 1.0, 0.0])
    """
    c = _counts_array(counts)
    tp, fp, fn, tn = c.T
    perfect = (fp == 0) & (fn == 0)
    fallback = np.where(perfect, float(empty_score), 0.0)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        safe = np.where(den > 0, den, 1.0)
        return np.where(den > 0, num / safe, fallback)

    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "jaccard": ratio(tp, tp + fp + fn),
        "specificity": ratio(tn, tn + fp),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
    }


def thresholded_jaccard(jaccard: np.ndarray | Sequence[float], cutoff: float = THRESHOLDED_JACCARD_CUTOFF) -> float:
    """ISIC 2018 thresholded Jaccard: per-image Jaccard, set to 0 below ``cutoff`` (0.65), then the mean.

    NaN values (undefined images) are left out of the mean.

    Example:
        >>> thresholded_jaccard([0.9, 0.7, 0.6])
        0.5333333333333333
    """
    j = np.asarray(jaccard, dtype=np.float64)
    kept = np.where(np.isnan(j), np.nan, np.where(j < cutoff, 0.0, j))
    return _nan_stat(np.nanmean, kept)


def _nan_stat(fn: Any, values: np.ndarray) -> float:
    """fn over the finite values; NaN when there are none."""
    values = values[~np.isnan(values)]
    return float(fn(values)) if values.size else math.nan


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def summarize(
    counts: torch.Tensor | np.ndarray,
    ids: Sequence[str],
    empty_score: float = 1.0,
    protocol: dict | None = None,
) -> ScoreSummary:
    """The ``focusnet score --json`` summary of per-image confusion counts.

    Keys (in this order):

    * ``per_image``: one row per image: ``id``, ``tp``, ``fp``, ``fn``, ``tn`` and each metric;
    * ``mean``, ``std``, ``median``: per-image statistics of each metric; ``std`` is the population
      standard deviation (ddof=0);
    * ``pooled``: each metric from the counts summed over all images (pixel-level pooling);
    * ``thresholded_jaccard``: ISIC 2018 score (per-image Jaccard, 0 if < 0.65, then the mean);
    * ``count``: number of images;
    * ``protocol``: how the numbers were computed (``aggregation``, ``std``, ``empty_score``,
      ``empty_rule``, ``threshold``, ``thresholded_jaccard_cutoff``), updated with ``protocol``.

    Metric objects are keyed by :data:`METRIC_NAMES`. Undefined values (only with
    ``empty_score=nan``) are ``None`` and are left out of the statistics.

    Args:
        counts: (N, 4) TP, FP, FN, TN per image.
        ids: N image ids, in the same order.
        empty_score: see :func:`metrics_from_counts`.
        protocol: extra protocol entries (split, resolution, threshold, folders, ...); they override
            the defaults of the same name.

    Example:
        >>> s = summarize(np.array([[1, 1, 1, 1], [0, 0, 0, 4]]), ["a", "b"], protocol={"split": "val"})
        >>> s["mean"]["dice"], s["pooled"]["dice"], s["count"], s["protocol"]["split"]
        (0.75, 0.5, 2, 'val')
    """
    c = _counts_array(counts)
    ids = [str(i) for i in ids]
    if len(ids) != len(c):
        raise ValueError(f"got {len(ids)} ids for {len(c)} rows of counts")
    if len(c) == 0:
        raise ValueError("no images to summarize")
    per_metric = metrics_from_counts(c, empty_score=empty_score)
    pooled = metrics_from_counts(c.sum(axis=0, keepdims=True), empty_score=empty_score)

    per_image = []
    for row, image_id in enumerate(ids):
        entry: dict[str, Any] = {"id": image_id}
        entry.update({name: int(c[row, col]) for col, name in enumerate(COUNT_NAMES)})
        entry.update({name: _json_float(per_metric[name][row]) for name in METRIC_NAMES})
        per_image.append(entry)

    def stat(fn: Any) -> dict[str, float | None]:
        return {name: _json_float(_nan_stat(fn, per_metric[name])) for name in METRIC_NAMES}

    info: dict[str, Any] = {
        "aggregation": (
            "mean, std and median are over per-image metrics (each image weighs the same); "
            "pooled is computed from the confusion counts summed over all images"
        ),
        "std": "population standard deviation (ddof=0)",
        "empty_score": _json_float(float(empty_score)),
        "empty_rule": _EMPTY_RULE,
        "threshold": "binary masks as given",
        "thresholded_jaccard_cutoff": THRESHOLDED_JACCARD_CUTOFF,
    }
    info.update(protocol or {})
    return {
        "per_image": per_image,
        "mean": stat(np.mean),
        "std": stat(np.std),
        "median": stat(np.median),
        "pooled": {name: _json_float(pooled[name][0]) for name in METRIC_NAMES},
        "thresholded_jaccard": _json_float(thresholded_jaccard(per_metric["jaccard"])),
        "count": len(c),
        "protocol": info,
    }
