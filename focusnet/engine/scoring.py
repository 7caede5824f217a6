"""Score a folder of predicted masks against a folder of true masks (``focusnet score``).

Files are paired by stem after removing the suffixes; every problem with the folders or a file is a
:class:`~focusnet.errors.FocusNetError` naming the file and the fix. Scores are computed at the
true masks' resolution.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from focusnet.data.io import IMAGE_EXTENSIONS, read_mask
from focusnet.engine.predict import OVERLAY_SUFFIX, PROB_SUFFIX
from focusnet.errors import FocusNetError
from focusnet.metrics import METRIC_NAMES, THRESHOLDED_JACCARD_CUTOFF, ScoreSummary, confusion_counts, summarize
from focusnet.vocab import MASK_RULES

__all__ = ["format_summary", "score_folders"]

_THRESHOLDS = {
    "binary": "binary masks as given",
    "nonzero": "any value > 0 is foreground (--mask-rule nonzero)",
    "half": "values >= half the maximum of the dtype are foreground (--mask-rule half)",
}
_PREDICT_COMPANIONS = (PROB_SUFFIX, OVERLAY_SUFFIX)  # files `focusnet predict` writes beside its masks
RESIZE_RULE = "predictions of another size are resized to the true mask's size with nearest neighbour"


def _list_masks(folder: Path, suffix: str, role: str, option: str) -> dict[str, Path]:
    """Mask files of a folder keyed by stem without suffix (hidden and non-image files are ignored,
    and so are the probability maps and overlays ``focusnet predict`` writes beside its masks)."""
    if not folder.exists():
        raise FocusNetError(f"{folder}: {role} folder not found; check the path")
    if not folder.is_dir():
        raise FocusNetError(f"{folder}: is a file, expected the folder of {role} masks")
    masks: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        stem = path.stem
        if suffix:
            if not stem.endswith(suffix) and stem.endswith(_PREDICT_COMPANIONS):
                continue  # `focusnet predict --save-probabilities/--overlays` output beside the masks
            if not stem.endswith(suffix) or stem == suffix:
                raise FocusNetError(
                    f"{path}: name does not end with {option} {suffix!r}; rename the file or fix {option}"
                )
            stem = stem[: -len(suffix)]
        if stem in masks:
            raise FocusNetError(
                f"{path}: same name as {masks[stem].name} (id {stem!r}); keep one mask per id in {folder}"
            )
        masks[stem] = path
    if not masks:
        raise FocusNetError(
            f"{folder}: no {role} masks found (looked for {', '.join(IMAGE_EXTENSIONS)}); check the folder"
        )
    return masks


def _pair(
    preds: dict[str, Path],
    trues: dict[str, Path],
    pred_dir: Path,
    true_dir: Path,
    pred_suffix: str,
    true_suffix: str,
) -> list[str]:
    """The sorted common ids; an error for any true mask without prediction or prediction without truth."""
    common = preds.keys() & trues.keys()
    if not common:
        example_pred, example_true = next(iter(preds.values())), next(iter(trues.values()))
        raise FocusNetError(
            f"{pred_dir}: no prediction matches a true mask in {true_dir} by name (e.g. {example_pred.name} "
            f"vs {example_true.name}); make the names match or set --pred-suffix/--true-suffix"
        )
    missing = sorted(trues.keys() - common)
    if missing:
        more = f" (and {len(missing) - 1} more true masks without one)" if len(missing) > 1 else ""
        raise FocusNetError(
            f"{trues[missing[0]]}: no prediction {missing[0] + pred_suffix!r} in {pred_dir}{more}; "
            "add the prediction or remove the true mask"
        )
    extra = sorted(preds.keys() - common)
    if extra:
        more = f" (and {len(extra) - 1} more predictions without one)" if len(extra) > 1 else ""
        raise FocusNetError(
            f"{preds[extra[0]]}: no true mask {extra[0] + true_suffix!r} in {true_dir}{more}; "
            "remove the prediction or add its true mask"
        )
    return sorted(common)


def _resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.NEAREST)) > 127


def score_folders(
    pred_dir: str | Path,
    true_dir: str | Path,
    pred_suffix: str = "",
    true_suffix: str = "",
    empty_score: float = 1.0,
    mask_rule: str = "binary",
) -> ScoreSummary:
    """Score predicted masks against true masks, paired by file stem.

    A prediction ``<id><pred_suffix>.<ext>`` is paired with the true mask ``<id><true_suffix>.<ext>``
    (any of :data:`~focusnet.data.io.IMAGE_EXTENSIONS`; hidden and other files are ignored). Every true
    mask needs exactly one prediction and vice versa. Predictions of another size are resized to the
    true mask's size with nearest neighbour, so scores are at the true masks' original resolution.

    Args:
        pred_dir: folder of predicted binary masks.
        true_dir: folder of ground-truth binary masks.
        pred_suffix: suffix of the predicted stems to remove, e.g. ``"_mask"``.
        true_suffix: suffix of the true stems to remove, e.g. ``"_segmentation"``.
        empty_score: score of a ratio that is 0/0 on a perfect prediction (see
            :func:`focusnet.metrics.metrics_from_counts`); between 0 and 1, or nan to leave it out.
        mask_rule: how pixel values are read, see :func:`focusnet.data.io.read_mask`.

    Returns:
        The :func:`focusnet.metrics.summarize` dictionary (the ``focusnet score --json`` schema) with
        the folders, suffixes, mask rule, threshold and resolution in ``protocol``.

    Raises:
        FocusNetError: a folder is missing or has no masks, a mask has no partner, two files share an
            id, or a file is unreadable or not a binary mask.

    Example:
        >>> result = score_folders("runs/x/pred", "data/val/masks", true_suffix="_segmentation")  # doctest: +SKIP
        >>> result["mean"]["dice"], result["count"]  # doctest: +SKIP
        (0.8731, 259)
    """
    pred_dir, true_dir = Path(pred_dir), Path(true_dir)
    MASK_RULES.normalize(mask_rule)
    if not (math.isnan(empty_score) or 0.0 <= empty_score <= 1.0):
        raise FocusNetError(
            f"--empty-score must be between 0 and 1 (or nan to leave such images out); got {empty_score}"
        )
    trues = _list_masks(true_dir, true_suffix, "true", "--true-suffix")
    preds = _list_masks(pred_dir, pred_suffix, "predicted", "--pred-suffix")
    ids = _pair(preds, trues, pred_dir, true_dir, pred_suffix, true_suffix)

    counts = np.zeros((len(ids), 4), dtype=np.int64)
    resized = 0
    for row, image_id in enumerate(ids):
        true = read_mask(trues[image_id], mask_rule)
        pred = read_mask(preds[image_id], mask_rule)
        if pred.shape != true.shape:
            pred = _resize_nearest(pred, true.shape)
            resized += 1
        counts[row] = confusion_counts(pred, true)[0].numpy()

    protocol = {
        "pred_dir": str(pred_dir),
        "true_dir": str(true_dir),
        "pred_suffix": pred_suffix,
        "true_suffix": true_suffix,
        "mask_rule": mask_rule,
        "threshold": _THRESHOLDS[mask_rule],
        "resolution": "true mask (original)",
        "resize": RESIZE_RULE,
        "resized_predictions": resized,
    }
    return summarize(counts, ids, empty_score=empty_score, protocol=protocol)


def empty_predictions_warning(result: Mapping[str, Any], what: str = "predicted mask") -> str | None:
    """A warning line when every image's prediction is empty (no foreground pixel), else None.

    Scores of such a run look like numbers, yet the model found nothing: typically too few epochs.

    Example:
        >>> warning = empty_predictions_warning({"per_image": [{"tp": 0, "fp": 0}, {"tp": 0, "fp": 0}]})
        >>> for part in warning.split("; "): print(part)
        every predicted mask is empty (2 of 2 images have no foreground pixel)
        the model found nothing: train it longer or check its threshold
        >>> empty_predictions_warning({"per_image": [{"tp": 3, "fp": 0}]}) is None
        True
    """
    rows = result.get("per_image") or []
    if not rows or any(int(r.get("tp", 0)) + int(r.get("fp", 0)) > 0 for r in rows):
        return None
    return all_empty_warning(len(rows), what)


def all_empty_warning(count: int, what: str = "predicted mask") -> str:
    """The line :func:`empty_predictions_warning` gives for ``count`` images without foreground."""
    return (f"every {what} is empty ({count} of {count} images have no foreground pixel); "
            "the model found nothing: train it longer or check its threshold")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_summary(result: Mapping[str, Any]) -> str:
    """A plain-text table of a :func:`score_folders` / :func:`~focusnet.metrics.summarize` result.

    One row per metric with the per-image mean ± population std, the median and the pooled value,
    then the ISIC 2018 thresholded Jaccard, the image count and the protocol.

    Example:
        >>> from focusnet.metrics import summarize
        >>> text = format_summary(summarize(np.array([[1, 1, 1, 1]]), ["a"]))
        >>> print(text.splitlines()[1])
        metric        mean ± std (per image)  median    pooled
    """
    lines = [f"Scored {result['count']} images", f"{'metric':<14}{'mean ± std (per image)':<24}{'median':<10}pooled"]
    for name in METRIC_NAMES:
        spread = f"{_fmt(result['mean'][name])} ± {_fmt(result['std'][name])}"
        lines.append(f"{name:<14}{spread:<24}{_fmt(result['median'][name]):<10}{_fmt(result['pooled'][name])}")
    cutoff = result.get("protocol", {}).get("thresholded_jaccard_cutoff", THRESHOLDED_JACCARD_CUTOFF)
    lines.append(
        f"thresholded Jaccard (ISIC 2018; per-image J < {cutoff} counts as 0): {_fmt(result['thresholded_jaccard'])}"
    )
    lines.append(f"count: {result['count']}")
    if result.get("protocol", {}).get("empty_score", 1.0) is None:
        lines.append("(empty_score nan: an image whose metric is 0/0 is left out of that metric's statistics)")
    lines.append("protocol:")
    lines.extend(f"  {key}: {'(none)' if value == '' else value}" for key, value in result.get("protocol", {}).items())
    return "\n".join(lines)
