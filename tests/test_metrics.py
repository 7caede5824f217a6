"""Per-image and pooled metrics against torchmetrics and plain numpy, and the empty-mask rule."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_f1_score,
    binary_jaccard_index,
    binary_precision,
    binary_recall,
    binary_specificity,
)

from focusnet.metrics import METRIC_NAMES, confusion_counts, metrics_from_counts, summarize, thresholded_jaccard


def _random_masks(n: int = 6, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.random((n, size, size)) < rng.uniform(0.2, 0.6, (n, 1, 1))
    flip = rng.random((n, size, size)) < rng.uniform(0.05, 0.4, (n, 1, 1))
    pred = true ^ flip
    return pred, true


def test_per_image_metrics_match_torchmetrics():
    pred, true = _random_masks()
    got = metrics_from_counts(confusion_counts(pred, true))
    p, t = torch.from_numpy(pred).long(), torch.from_numpy(true).long()
    # No denominator is 0 on these masks, so no zero-division convention is involved.
    assert (p.sum((1, 2)) > 0).all() and (t.sum((1, 2)) > 0).all() and ((1 - t).sum((1, 2)) > 0).all()
    samplewise = {
        "precision": binary_precision,
        "recall": binary_recall,
        "dice": binary_f1_score,
        "specificity": binary_specificity,
        "accuracy": binary_accuracy,
    }
    for name, fn in samplewise.items():
        expected = fn(p, t, multidim_average="samplewise").double().numpy()
        np.testing.assert_allclose(got[name], expected, atol=1e-6, err_msg=name)
    expected_j = np.array([binary_jaccard_index(p[i], t[i]).item() for i in range(len(p))])
    np.testing.assert_allclose(got["jaccard"], expected_j, atol=1e-6)
    assert all(got[name].dtype == np.float64 and got[name].shape == (len(p),) for name in METRIC_NAMES)


def test_confusion_counts_input_forms():
    pred, true = _random_masks(n=3, size=8, seed=1)
    pairs = [(pred, true), (pred, ~true), (~pred, true), (~pred, ~true)]
    expected = np.stack([(a & b).sum((1, 2)) for a, b in pairs], axis=1)
    forms = [
        (pred, true),
        (torch.from_numpy(pred)[:, None], torch.from_numpy(true)[:, None]),
        (pred.astype(np.uint8), torch.from_numpy(true).float()),
        (torch.from_numpy(pred).long(), true[:, None]),
    ]
    for p, t in forms:
        counts = confusion_counts(p, t)
        assert counts.dtype == torch.int64 and counts.shape == (3, 4)
        np.testing.assert_array_equal(counts.numpy(), expected)
    single = confusion_counts(pred[0], true[0])
    np.testing.assert_array_equal(single.numpy(), expected[:1])


def test_confusion_counts_rejects_bad_input():
    with pytest.raises(ValueError, match="binary"):
        confusion_counts(np.full((4, 4), 0.5), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_counts(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))
    with pytest.raises(ValueError, match="shape"):
        confusion_counts(np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 4, 4)))


def test_pooled_and_statistics_match_numpy():
    pred, true = _random_masks(n=5, seed=2)
    ids = [f"img{i}" for i in range(5)]
    result = summarize(confusion_counts(pred, true), ids)
    tp, fp = (pred & true).sum(), (pred & ~true).sum()
    fn, tn = (~pred & true).sum(), (~pred & ~true).sum()
    pooled = {
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "dice": 2 * tp / (2 * tp + fp + fn),
        "jaccard": tp / (tp + fp + fn),
        "specificity": tn / (tn + fp),
        "accuracy": (tp + tn) / pred.size,
    }
    for name in METRIC_NAMES:
        assert result["pooled"][name] == pytest.approx(pooled[name], abs=1e-12)
        values = np.array([row[name] for row in result["per_image"]])
        assert result["mean"][name] == pytest.approx(values.mean(), abs=1e-12)
        assert result["std"][name] == pytest.approx(np.sqrt(np.mean((values - values.mean()) ** 2)), abs=1e-12)
        assert result["median"][name] == pytest.approx(np.median(values), abs=1e-12)
    inter = (pred & true).sum((1, 2))
    union = (pred | true).sum((1, 2))
    j = inter / union
    assert result["thresholded_jaccard"] == pytest.approx(np.mean(np.where(j < 0.65, 0.0, j)), abs=1e-12)


def test_summary_schema():
    result = summarize(np.array([[1, 1, 1, 1], [0, 0, 0, 4]]), ["a", "b"], protocol={"split": "val", "threshold": 0.5})
    assert list(result) == [
        "per_image", "mean", "std", "median", "pooled", "thresholded_jaccard", "count", "protocol"
    ]
    assert result["per_image"][0] == {
        "id": "a", "tp": 1, "fp": 1, "fn": 1, "tn": 1,
        "precision": 0.5, "recall": 0.5, "dice": 0.5, "jaccard": 1 / 3, "specificity": 0.5, "accuracy": 0.5,
    }
    for key in ("mean", "std", "median", "pooled"):
        assert tuple(result[key]) == METRIC_NAMES
    assert result["count"] == 2
    assert result["std"]["dice"] == pytest.approx(0.25)  # population std of [0.5, 1.0]
    protocol = result["protocol"]
    assert protocol["split"] == "val" and protocol["threshold"] == 0.5 and protocol["empty_score"] == 1.0
    assert "aggregation" in protocol and "ddof=0" in protocol["std"]
    json.dumps(result, allow_nan=False)
    with pytest.raises(ValueError, match="ids"):
        summarize(np.zeros((2, 4)), ["a"])


def test_thresholded_jaccard():
    assert thresholded_jaccard([0.9, 0.65, 0.6499, 0.0]) == pytest.approx((0.9 + 0.65) / 4)
    assert thresholded_jaccard([0.5, 0.64]) == 0.0


@pytest.mark.parametrize("empty_score", [1.0, 0.5])
def test_empty_masks(empty_score):
    empty = np.zeros((4, 4), dtype=bool)
    some = empty.copy()
    some[0, :2] = True
    both_empty = metrics_from_counts(confusion_counts(empty, empty), empty_score=empty_score)
    for name in ("precision", "recall", "dice", "jaccard"):
        assert both_empty[name][0] == empty_score, name
    assert both_empty["specificity"][0] == 1.0 and both_empty["accuracy"][0] == 1.0

    false_alarm = metrics_from_counts(confusion_counts(some, empty), empty_score=empty_score)  # empty truth
    for name in ("precision", "recall", "dice", "jaccard"):
        assert false_alarm[name][0] == 0.0, name

    missed = metrics_from_counts(confusion_counts(empty, some), empty_score=empty_score)  # nothing predicted
    for name in ("precision", "recall", "dice", "jaccard"):
        assert missed[name][0] == 0.0, name
    assert missed["specificity"][0] == 1.0

    full = np.ones((4, 4), dtype=bool)
    all_fg = metrics_from_counts(confusion_counts(full, full), empty_score=empty_score)
    assert all_fg["specificity"][0] == empty_score and all_fg["dice"][0] == 1.0
    assert metrics_from_counts(confusion_counts(some, full))["specificity"][0] == 0.0


def test_nan_empty_score_leaves_images_out():
    counts = np.array([[1, 1, 1, 1], [0, 0, 0, 4]])
    result = summarize(counts, ["a", "b"], empty_score=math.nan)
    assert result["per_image"][1]["dice"] is None
    assert result["mean"]["dice"] == 0.5 and result["std"]["dice"] == 0.0
    assert result["protocol"]["empty_score"] is None
    json.dumps(result, allow_nan=False)
