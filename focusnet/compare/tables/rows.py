"""The rows of the results tables: one per model, from the ``comparison`` dict; and the CSV table.

Every table of :mod:`focusnet.compare.tables` is made from :func:`results_rows`; the display
pieces that Markdown and LaTeX share come from :func:`_cells`.

Example:
    >>> results_rows({"dataset": "folder", "models": []}), METRICS[2]
    ([], 'dice')
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["METRICS", "csv_columns", "results_rows", "to_csv"]

#: Metrics of the results tables, in column order (keys of ``summarize()``'s metric objects).
METRICS = ("precision", "recall", "dice", "jaccard")
_LABELS = {"precision": "Precision", "recall": "Recall", "dice": "Dice", "jaccard": "Jaccard"}
_DASH = "—"


def csv_columns(dataset: str | None) -> list[str]:
    """The keys of every :func:`results_rows` row (and the CSV header), in order.

    ``thresholded_jaccard`` is there only for ``dataset == "isic2018"``.

    Example:
        >>> cols = csv_columns("isic2018")
        >>> cols[:5], "thresholded_jaccard" in cols, "thresholded_jaccard" in csv_columns("folder")
        (['name', 'model', 'preset', 'status', 'error'], True, False)
    """
    cols = ["name", "model", "preset", "status", "error", "is_reference", "n_images"]
    for m in METRICS:
        cols += [f"{m}_mean", f"{m}_std", f"{m}_pooled"]
    if dataset == "isic2018":
        cols.append("thresholded_jaccard")
    cols += [
        "dice_ci_low",
        "dice_ci_high",
        "reference",
        "wilcoxon_n",
        "wilcoxon_p",
        "wilcoxon_p_holm",
        "significant",
        "effect_size",
        "detectable_difference",
        "params",
        "gmacs",
        "gmacs_size",
        "train_minutes",
        "best_epoch",
        "epochs_run",
    ]
    return cols


def _number(x: Any) -> float | None:
    """x as a finite float, else None."""
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


def _int(x: Any) -> int | None:
    value = _number(x)
    return None if value is None else int(value)


def results_rows(comparison: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per model (in the comparison's order), keyed by :func:`csv_columns`.

    * ``name``, ``model``, ``preset``, ``status``, ``error``; ``is_reference`` (the model the
      tests compare against); ``n_images``;
    * ``<metric>_mean``, ``<metric>_std`` (population), ``<metric>_pooled`` for precision, recall,
      Dice and Jaccard, straight from ``summary``; ``thresholded_jaccard`` (ISIC 2018 only);
    * ``dice_ci_low``/``dice_ci_high``: bootstrap CI of the mean per-image Dice from
      ``comparison["stats"]["ci"]``; ``reference``, ``wilcoxon_n``, ``wilcoxon_p`` (raw),
      ``wilcoxon_p_holm``, ``significant`` and ``effect_size`` (rank-biserial, > 0: this model
      beats the reference) from ``comparison["stats"]["tests"]`` (None for the reference itself);
    * ``params``, ``gmacs`` (per image at ``gmacs_size`` x ``gmacs_size``), ``train_minutes``,
      ``best_epoch``, ``epochs_run``.

    A model whose status is not ``"done"`` keeps its name, status and error and has every number
    None. Missing values are None.

    Example:
        >>> comp = {"dataset": "folder", "models": [{"name": "unet", "model": "unet",
        ...         "status": "failed", "error": "out of memory"}]}
        >>> row = results_rows(comp)[0]
        >>> row["status"], row["error"], row["dice_mean"]
        ('failed', 'out of memory', None)
    """
    dataset = comparison.get("dataset")
    stats = comparison.get("stats") or {}
    ci_all = stats.get("ci") or {}
    tests = stats.get("tests") or {}
    reference = comparison.get("reference")
    columns = csv_columns(dataset)
    rows: list[dict[str, Any]] = []
    for m in comparison.get("models", []):
        name = str(m.get("name"))
        row: dict[str, Any] = dict.fromkeys(columns)
        row.update(
            name=name,
            model=m.get("model", name),
            preset=m.get("preset"),
            status=m.get("status"),
            error=m.get("error"),
            is_reference=name == reference,
        )
        rows.append(row)
        if m.get("status") != "done":
            continue
        summary = m.get("summary") or {}
        row["n_images"] = _int(summary.get("count"))
        for metric in METRICS:
            for stat in ("mean", "std", "pooled"):
                row[f"{metric}_{stat}"] = _number((summary.get(stat) or {}).get(metric))
        if "thresholded_jaccard" in row:
            row["thresholded_jaccard"] = _number(summary.get("thresholded_jaccard"))
        ci = (ci_all.get(name) or {}).get("dice") or {}
        row["dice_ci_low"], row["dice_ci_high"] = _number(ci.get("low")), _number(ci.get("high"))
        test = tests.get(name)
        if test:
            row.update(
                reference=test.get("reference", reference),
                wilcoxon_n=_int(test.get("n")),
                wilcoxon_p=_number(test.get("pvalue")),
                wilcoxon_p_holm=_number(test.get("pvalue_holm")),
                significant=test.get("significant"),
                effect_size=_number(test.get("effect_size")),
                detectable_difference=_number(test.get("detectable_difference")),
            )
        seconds = _number(m.get("train_seconds"))
        row.update(
            params=_int(m.get("params")),
            gmacs=_number(m.get("gmacs")),
            gmacs_size=_int(m.get("gmacs_size")),
            train_minutes=None if seconds is None else round(seconds / 60.0, 4),
            best_epoch=_int(m.get("best_epoch")),
            epochs_run=_int(m.get("epochs_run")),
        )
    return rows


def _display_name(row: Mapping[str, Any]) -> str:
    name, preset = str(row["name"]), row.get("preset")
    if preset and not name.endswith(f"-{preset}"):
        name = f"{name} ({preset})"
    return name


def _status(row: Mapping[str, Any]) -> str:
    """The status of a row that is not done, with its error when there is one."""
    return f"{row['status']}: {row['error']}" if row["error"] else str(row["status"])


def _best(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r["status"] == "done" and r.get(key) is not None]
    return max(values) if values else None


def _gmacs_size(rows: Sequence[Mapping[str, Any]]) -> int | None:
    """The common GMACs input size of the done rows, or None if they differ or are unknown."""
    sizes = {r["gmacs_size"] for r in rows if r["status"] == "done" and r.get("gmacs") is not None}
    return sizes.pop() if len(sizes) == 1 else None


def _f(x: float | None, digits: int = 4) -> str:
    return _DASH if x is None else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None:
        return _DASH
    return f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


def _signed(x: float | None) -> str:
    return _DASH if x is None else f"{x:+.2f}"


def _cells(row: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], isic: bool) -> dict[str, Any]:
    """Display pieces of one done row shared by Markdown and LaTeX (numbers as strings)."""
    size = _gmacs_size(rows)
    gmacs = _f(row["gmacs"], 2)
    if row["gmacs"] is not None and size is None and row["gmacs_size"]:
        gmacs += f" @{row['gmacs_size']}"
    params = _DASH if row["params"] is None else f"{row['params'] / 1e6:.3f}"
    if row["best_epoch"] is None and row["epochs_run"] is None:
        epochs = _DASH
    else:
        best = _DASH if row["best_epoch"] is None else str(row["best_epoch"])
        run = _DASH if row["epochs_run"] is None else str(row["epochs_run"])
        epochs = f"{best} / {run}"
    ci = (
        _DASH
        if row["dice_ci_low"] is None
        else f"[{row['dice_ci_low']:.4f}, {row['dice_ci_high']:.4f}]"
    )
    p = _p(row["wilcoxon_p_holm"])
    if row["significant"]:
        p += "*"
    if row["is_reference"]:
        p = effect = "ref."
    else:
        effect = _signed(row["effect_size"])
    out = {
        "ci": ci,
        "p": p,
        "effect": effect,
        "params": params,
        "gmacs": gmacs,
        "minutes": _f(row["train_minutes"], 1),
        "epochs": epochs,
    }
    if isic:
        out["tj"] = _f(row.get("thresholded_jaccard"))
    return out


def _csv_value(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        return "" if math.isnan(x) else repr(x)
    return str(x)


def to_csv(comparison: Mapping[str, Any]) -> str:
    """The rows of :func:`results_rows` as CSV: one header row (:func:`csv_columns`), plain numbers.

    Floats are written with ``repr`` (shortest text that reads back to the same float), None as an
    empty field, booleans as ``true``/``false``; no ± strings: mean, std and pooled are separate
    columns.

    Example:
        >>> to_csv({"dataset": "folder", "models": []}).splitlines()[0][:30]
        'name,model,preset,status,error'
    """
    buf = io.StringIO()
    columns = csv_columns(comparison.get("dataset"))
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in results_rows(comparison):
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return buf.getvalue()
