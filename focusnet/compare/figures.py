"""Figures for ``focusnet compare``: qualitative grid, training curves, Dice distributions.

Every figure is drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no
display, no global backend switch, nothing left open) and written as ``<out_stem>.png`` (150 dpi)
and ``<out_stem>.pdf``. Each model keeps one colour in every figure (:func:`model_colors`, a
colour-blind-friendly palette without green); the ground truth is always drawn in bluish green
(:data:`TRUTH_COLOR`), dashed where matplotlib draws it.

Inputs are the ``comparison`` dict and the in-memory ``cases`` list described in the compare
interface: failed models and models without curves or per-image metrics are skipped. The colours
(:mod:`focusnet.compare.colors`) and the contour thumbnails (:mod:`focusnet.compare.thumbnails`)
have modules of their own and are importable from here too.
"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from focusnet.atomic import atomic_write
from focusnet.compare.colors import PALETTE, PREDICTION_FALLBACK_COLOR, TRUTH_COLOR, model_colors
from focusnet.compare.thumbnails import bool_mask, case_thumbnail_png, rgb_uint8

__all__ = [
    "PALETTE",
    "TRUTH_COLOR",
    "case_thumbnail_png",
    "dice_distributions",
    "model_colors",
    "qualitative_grid",
    "select_cases",
    "training_curves",
]

_DPI = 150
_METRIC_LABELS = {"dice": "Dice", "jaccard": "Jaccard", "precision": "precision", "recall": "recall"}


# --------------------------------------------------------------------------------------------
# case selection
# --------------------------------------------------------------------------------------------
def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def select_cases(dice_by_id: Mapping[str, float], per_group: int = 2) -> list[tuple[str, str]]:
    """Best, median and worst images by Dice, for the qualitative figure.

    Images are ranked by Dice, highest first, ties by id (ascending); NaN/None Dice are left out.
    The result lists ``per_group`` "best" ids (top of the ranking), then "median" ids (closest to
    the middle of the ranking), then "worst" ids (bottom), each group in ranking order. An image
    is never picked twice: with fewer than ``3 * per_group`` images the groups shrink (best
    first, then worst, then median).

    Example:
        >>> select_cases({"a": 0.9, "b": 0.5, "c": 0.7, "d": float("nan"), "e": 0.1}, per_group=1)
        [('best', 'a'), ('median', 'c'), ('worst', 'e')]
    """
    if per_group < 0:
        raise ValueError(f"per_group must be >= 0; got {per_group}")
    ranked = sorted(
        ((float(v), str(k)) for k, v in dice_by_id.items() if _finite(v)),
        key=lambda item: (-item[0], item[1]),
    )
    ids = [image_id for _, image_id in ranked]
    n = len(ids)
    n_best = min(per_group, n)
    n_worst = min(per_group, n - n_best)
    middle = range(n_best, n - n_worst)
    centre = (n - 1) / 2.0
    n_median = min(per_group, len(middle))
    median_idx = sorted(sorted(middle, key=lambda i: (abs(i - centre), i))[:n_median])
    picks = [("best", ids[i]) for i in range(n_best)]
    picks += [("median", ids[i]) for i in median_idx]
    picks += [("worst", ids[i]) for i in range(n - n_worst, n)]
    return picks



# --------------------------------------------------------------------------------------------
# matplotlib figures
# --------------------------------------------------------------------------------------------
def _new_figure(figsize: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_stem: Path) -> list[Path]:
    """``<out_stem>.png`` and ``<out_stem>.pdf``, each written atomically; the figure is cleared."""
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for ext in ("png", "pdf"):
            final = out_stem.parent / f"{out_stem.name}.{ext}"
            buffer = io.BytesIO()
            fig.savefig(buffer, format=ext, dpi=_DPI)
            atomic_write(final, buffer.getvalue())
            written.append(final)
    finally:
        fig.clf()
    return written


def _note(fig: Any, text: str) -> None:
    ax = fig.add_subplot(1, 1, 1)
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="0.3", transform=ax.transAxes)


def _done_models(comparison: Mapping[str, Any]) -> list[dict]:
    return [m for m in comparison.get("models", []) or [] if m.get("status") == "done"]


def _all_colors(comparison: Mapping[str, Any]) -> dict[str, str]:
    return model_colors(str(m.get("name")) for m in comparison.get("models", []) or [])


def _fmt(x: Any, digits: int = 3) -> str:
    return f"{float(x):.{digits}f}" if _finite(x) else "n/a"


def _draw_contour(ax: Any, mask: np.ndarray, color: str, linestyle: str = "-", linewidth: float = 1.2) -> None:
    # matplotlib warns on constant data: draw only masks with both classes.
    if mask.any() and not mask.all():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[color], linewidths=linewidth, linestyles=linestyle)


def qualitative_grid(
    cases: Sequence[Mapping[str, Any]],
    picks: Sequence[tuple[str, str]],
    model_names: Sequence[str],
    out_stem: Path,
    colors: Mapping[str, str] | None = None,
) -> list[Path]:
    """The paper's Figs 3-4: one row per picked case; image, ground truth, then one panel per model.

    Model panels show the image with the predicted mask (translucent fill and solid contour in
    the model's colour) and the ground-truth contour (dashed green), with that model's Dice in the
    title. Predictions at another resolution than the image are resized (nearest) to it. Picks
    whose id is not in ``cases`` are skipped; a model without a prediction gets an empty panel.

    Args:
        cases: the runner's case dicts (id, image, truth, predictions, dice).
        picks: (group, id) pairs, as from :func:`select_cases`.
        model_names: models to show, in column order.
        out_stem: output path without extension.
        colors: model colours (default :func:`model_colors` of ``model_names``).

    Returns:
        ``[<out_stem>.png, <out_stem>.pdf]``.

    Example:
        >>> picks = select_cases(dice_by_id)  # doctest: +SKIP
        >>> qualitative_grid(cases, picks, ["focusnetpp", "unet"], Path("out/qualitative"))  # doctest: +SKIP
        [PosixPath('out/qualitative.png'), PosixPath('out/qualitative.pdf')]
    """
    from matplotlib.colors import ListedColormap

    names = [str(n) for n in model_names]
    colors = dict(colors) if colors else model_colors(names)
    by_id = {str(c["id"]): c for c in cases}
    rows = [(group, str(i), by_id[str(i)]) for group, i in picks if str(i) in by_id]
    ncols = 2 + len(names)
    panel = 2.0
    if not rows:
        fig = _new_figure((6, 2))
        _note(fig, "no cases to show")
        return _save(fig, out_stem)

    fig = _new_figure((panel * ncols, panel * len(rows) + 0.3))
    axes = np.atleast_2d(fig.subplots(len(rows), ncols, squeeze=False))
    for r, (group, image_id, case) in enumerate(rows):
        image = rgb_uint8(case["image"])
        shape = image.shape[:2]
        truth = bool_mask(case["truth"], shape)
        predictions = case.get("predictions") or {}
        dice = case.get("dice") or {}

        ax = axes[r, 0]
        ax.imshow(image, interpolation="antialiased")
        ax.set_ylabel(f"{group}\n{image_id}", fontsize=8)
        ax = axes[r, 1]
        ax.imshow(truth, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if r == 0:
            axes[r, 0].set_title("image", fontsize=9)
            ax.set_title("ground truth", fontsize=9)

        for c, name in enumerate(names, start=2):
            ax = axes[r, c]
            color = colors.get(name, PREDICTION_FALLBACK_COLOR)
            ax.imshow(image, interpolation="antialiased")
            pred = predictions.get(name)
            if pred is not None:
                pm = bool_mask(pred, shape)
                fill = np.ma.masked_where(~pm, pm.astype(np.float32))
                ax.imshow(fill, cmap=ListedColormap([color]), alpha=0.30, vmin=0, vmax=1, interpolation="nearest")
                _draw_contour(ax, pm, color, "-", 1.3)
                title = f"{name}\nDice {_fmt(dice.get(name))}"
            else:
                title = f"{name}\nno prediction"
            _draw_contour(ax, truth, TRUTH_COLOR, "--", 1.1)
            ax.set_title(title, fontsize=8, color="black")
            for side in ax.spines.values():
                side.set_edgecolor(color)
                side.set_linewidth(1.5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("prediction (model colour, filled) vs ground truth (green, dashed)", fontsize=9)
    return _save(fig, out_stem)


def _curve(series: Any) -> tuple[list[int], list[float]]:
    """Sorted (epochs, values) from ``{epoch (str or int): value}``; non-finite values skipped."""
    if not isinstance(series, Mapping):
        return [], []
    points = []
    for k, v in series.items():
        try:
            epoch = int(float(k))
        except (TypeError, ValueError):
            continue
        if _finite(v):
            points.append((epoch, float(v)))
    points.sort()
    return [e for e, _ in points], [v for _, v in points]


def training_curves(comparison: Mapping[str, Any], out_stem: Path) -> list[Path]:
    """Train loss, val loss and val Dice per epoch of every done model, in one three-panel figure.

    Curves come from ``comparison["models"][i]["curves"]`` (``{"train_loss": {epoch: value},
    ...}``, epochs as str or int). Failed models and models without curves are skipped (and named
    in a footnote); the best epoch (``best_epoch``) is starred on the val Dice panel.

    Returns:
        ``[<out_stem>.png, <out_stem>.pdf]``.

    Example:
        >>> training_curves(comparison, Path("out/training_curves"))  # doctest: +SKIP
        [PosixPath('out/training_curves.png'), PosixPath('out/training_curves.pdf')]
    """
    colors = _all_colors(comparison)
    fig = _new_figure((13, 4))
    axes = fig.subplots(1, 3)
    panels = (("train_loss", "train loss"), ("val_loss", "validation loss"), ("val_dice", "validation Dice"))
    plotted: list[str] = []
    missing: list[str] = []
    for model in _done_models(comparison):
        name = str(model.get("name"))
        curves = model.get("curves") or {}
        any_curve = False
        for ax, (key, _) in zip(axes, panels):
            epochs, values = _curve(curves.get(key))
            if not epochs:
                continue
            any_curve = True
            ax.plot(epochs, values, marker="o", markersize=2.5, linewidth=1.4, color=colors[name], label=name)
            if key == "val_dice" and model.get("best_epoch") is not None:
                try:
                    best = int(model["best_epoch"])
                except (TypeError, ValueError):
                    best = None
                if best in epochs:
                    ax.plot([best], [values[epochs.index(best)]], marker="*", markersize=10,
                            color=colors[name], markeredgecolor="black", markeredgewidth=0.5, linestyle="none")
        (plotted if any_curve else missing).append(name)
    from matplotlib.ticker import MaxNLocator

    for ax, (key, title) in zip(axes, panels):
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if key == "val_dice":
            ax.set_ylabel("Dice (per-image mean)")
            ax.set_ylim(0.0, 1.0)
        else:
            ax.set_ylabel("loss")
        if not ax.lines:
            ax.text(0.5, 0.5, "no curves recorded", ha="center", va="center", color="0.4", transform=ax.transAxes)
    if plotted:
        handles, labels = [], []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    note = "star: best epoch; epochs numbered from 0"
    if missing:
        note += "; no curves: " + ", ".join(missing)
    fig.suptitle(f"training curves ({note})", fontsize=10)
    return _save(fig, out_stem)


def dice_distributions(comparison: Mapping[str, Any], out_stem: Path, metric: str = "dice") -> list[Path]:
    """Per-image ``metric`` of each done model: box plot, jittered points on top, mean as a diamond.

    Values come from ``model["summary"]["per_image"][*][metric]`` (None/NaN left out). Failed
    models and models without per-image values are skipped.

    Returns:
        ``[<out_stem>.png, <out_stem>.pdf]``.

    Example:
        >>> dice_distributions(comparison, Path("out/dice_distribution"))  # doctest: +SKIP
        [PosixPath('out/dice_distribution.png'), PosixPath('out/dice_distribution.pdf')]
    """
    colors = _all_colors(comparison)
    data: list[tuple[str, np.ndarray]] = []
    for model in _done_models(comparison):
        rows = ((model.get("summary") or {}).get("per_image")) or []
        values = np.array([float(r[metric]) for r in rows if isinstance(r, Mapping) and _finite(r.get(metric))])
        if values.size:
            data.append((str(model.get("name")), values))
    width = max(5.0, 1.1 * len(data) + 2.0)
    fig = _new_figure((width, 4.2))
    if not data:
        _note(fig, f"no per-image {metric} values")
        return _save(fig, out_stem)
    ax = fig.add_subplot(1, 1, 1)
    positions = np.arange(1, len(data) + 1)
    box = ax.boxplot([v for _, v in data], positions=positions, widths=0.55, showfliers=False,
                     patch_artist=True, medianprops={"color": "black", "linewidth": 1.2})
    rng = np.random.default_rng(0)
    for pos, (name, values), patch in zip(positions, data, box["boxes"]):
        color = colors[name]
        patch.set_facecolor(color)
        patch.set_alpha(0.25)
        patch.set_edgecolor(color)
        jitter = rng.uniform(-0.18, 0.18, size=values.size)
        ax.scatter(pos + jitter, values, s=9, color=color, alpha=0.75, edgecolors="none", zorder=3)
        mean = float(values.mean())
        ax.scatter([pos], [mean], marker="D", s=38, color="white", edgecolors="black", linewidths=1.0, zorder=4)
        ax.annotate(f"mean\n{mean:.3f}", (pos + 0.3, mean), textcoords="offset points", xytext=(2, 0),
                    fontsize=7, va="center", ha="left")
    ax.set_xticks(positions)
    ax.set_xticklabels([f"{name}\nn = {v.size}" for name, v in data], rotation=30 if len(data) > 4 else 0,
                       ha="right" if len(data) > 4 else "center", fontsize=8)
    ax.set_xlim(0.4, len(data) + 0.75)
    label = _METRIC_LABELS.get(metric, metric)
    ax.set_ylabel(f"per-image {label}")
    lo = min(float(v.min()) for _, v in data)
    ax.set_ylim(min(0.0, lo - 0.02), 1.02)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"per-image {label}\nbox: quartiles, whiskers: 1.5 IQR, diamond: mean", fontsize=9)
    return _save(fig, out_stem)
