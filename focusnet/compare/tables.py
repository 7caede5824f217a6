"""Results tables of ``focusnet compare``: Markdown, CSV and LaTeX, plus the paper's own numbers.

All tables come from one list of rows, :func:`results_rows`, built from the ``comparison`` dict
(see ``focusnet.compare``) and its ``stats`` (from :func:`focusnet.compare.stats.compare_statistics`).
The metric numbers are those of each model's ``summary`` (:func:`focusnet.metrics.summarize` at the
images' original resolution), unchanged: per-image mean, population std and pooled value.

The paper's reported numbers (:mod:`focusnet.compare.paper_reference`) are never mixed into these
rows: :func:`paper_reference_markdown` and :func:`paper_reference_latex` print them as a separate,
labelled block, and :func:`write_tables` writes them to separate files.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from focusnet.atomic import atomic_write
from focusnet.compare.paper_reference import PAPER_CITATION, PaperTable, paper_tables

__all__ = [
    "METRICS",
    "csv_columns",
    "latex_escape",
    "paper_reference_latex",
    "paper_reference_markdown",
    "results_rows",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_tables",
]

#: Metrics of the results tables, in column order (keys of ``summarize()``'s metric objects).
METRICS = ("precision", "recall", "dice", "jaccard")
_LABELS = {"precision": "Precision", "recall": "Recall", "dice": "Dice", "jaccard": "Jaccard"}
_DASH = "—"


# ----------------------------------------------------------------------------------------- rows
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


# ------------------------------------------------------------------------------------- Markdown
def _md_escape(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _md_table(header: Sequence[str], body: Iterable[Sequence[str]], left: Sequence[int] = (0,)) -> list[str]:
    """A Markdown table; columns in ``left`` are left-aligned, the others right-aligned."""
    rule = "|" + "|".join("---" if i in left else "---:" for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _statistics_note(comparison: Mapping[str, Any]) -> list[str]:
    stats = comparison.get("stats")
    if not stats:
        return ["No statistics were computed (no `stats` in the comparison): no confidence intervals or tests."]
    proto = stats.get("protocol") or {}
    conf = proto.get("confidence", 0.95)
    lines = [
        f"- **Dice {conf:.0%} CI**: {proto.get('ci_method', '?')}; {proto.get('n_resamples', '?')} "
        f"resamples, seed {proto.get('seed', '?')}.",
        f"- **p (Holm)**: {proto.get('test', '?')}; zero_method {proto.get('zero_method', '?')}; "
        f"method {proto.get('wilcoxon_method', '?')}. {proto.get('correction', '')}. "
        f"`*`: adjusted p <= alpha = {proto.get('alpha', 0.05)}.",
        f"- **r**: {proto.get('effect_size', '?')}.",
        f"- **Pairing**: {proto.get('pairing', '?')}. {proto.get('unit', '')}".rstrip(),
        "- With a few tens of test images and a short training run these tests say whether the "
        "difference between the runs on this test set is systematic; they do not account for "
        "training randomness (one seed per model).",
    ]
    for note in stats.get("notes") or []:
        lines.append(f"- Note: {note}")
    for name, why in (stats.get("skipped") or {}).items():
        lines.append(f"- Not in the statistics: {name}: {why}")
    return [line.replace("\n", " ") for line in lines]


def to_markdown(comparison: Mapping[str, Any], footer: bool = True) -> str:
    """The results as Markdown: the main table, the pooled table, then (``footer``) protocol and statistics.

    Main table: per-image mean ± population std of precision, recall, Dice and Jaccard (best mean
    Dice and Jaccard in bold), the thresholded Jaccard (ISIC 2018), the bootstrap CI of the mean
    Dice, the Holm-adjusted Wilcoxon p and the rank-biserial r against the reference, parameters,
    GMACs, training minutes and best epoch (numbered from 0) / epochs run. A failed model keeps its row, with its
    error in the Status column and dashes elsewhere. A second table gives the pooled values.

    Args:
        comparison: the ``comparison`` dict.
        footer: append the ``comparison["protocol"]`` items and a note on the statistics.

    Example:
        >>> md = to_markdown({"title": "t", "dataset": "folder", "models": []}, footer=False)
        >>> md.splitlines()[0]
        '## Results: t'
    """
    rows = results_rows(comparison)
    isic = comparison.get("dataset") == "isic2018"
    reference = comparison.get("reference")
    size = _gmacs_size(rows)
    best = {m: _best(rows, f"{m}_mean") for m in ("dice", "jaccard")}
    n_images = sorted({r["n_images"] for r in rows if r["n_images"] is not None})
    n_text = ", ".join(str(n) for n in n_images) or "?"

    lines = [f"## Results: {_md_escape(comparison.get('title', 'focusnet compare'))}", ""]
    intro = (
        f"Per-image mean ± population std over {n_text} test images (each image weighs the same); "
        "best mean Dice and Jaccard in bold."
    )
    if isic:
        intro += " Thr. Jaccard: ISIC 2018 thresholded Jaccard (per-image Jaccard, 0 below 0.65, then the mean)."
    if reference:
        intro += (
            f" p: Wilcoxon signed-rank test of per-image Dice against `{_md_escape(reference)}` (ref.), "
            "Holm-adjusted across models; r: rank-biserial effect size (> 0: the model beats the reference)."
        )
    lines += [intro, ""]

    header = ["Model", "Status"] + [_LABELS[m] for m in METRICS]
    if isic:
        header.append("Thr. Jaccard")
    header += [
        "Dice 95% CI",
        "p (Holm)",
        "r",
        "Params (M)",
        f"GMACs ({size}×{size})" if size else "GMACs",
        "Train (min)",
        "Best epoch / epochs run",
    ]
    body = []
    for r in rows:
        name = _md_escape(_display_name(r)) + (" (ref.)" if r["is_reference"] else "")
        if r["status"] != "done":
            status = f"{r['status']}: {r['error']}" if r["error"] else str(r["status"])
            body.append([name, _md_escape(status)] + [_DASH] * (len(header) - 2))
            continue
        cells = [name, "done"]
        for m in METRICS:
            mean, std = r[f"{m}_mean"], r[f"{m}_std"]
            text = _f(mean)
            if mean is not None and best.get(m) is not None and mean == best[m]:
                text = f"**{text}**"
            cells.append(text if std is None else f"{text} ± {std:.4f}")
        c = _cells(r, rows, isic)
        if isic:
            cells.append(c["tj"])
        cells += [c["ci"], c["p"], c["effect"], c["params"], c["gmacs"], c["minutes"], c["epochs"]]
        body.append(cells)
    lines += _md_table(header, body, left=(0, 1))

    done = [r for r in rows if r["status"] == "done"]
    if done:
        lines += ["", "Pooled over all test pixels (metrics from the confusion counts summed over the test images):", ""]
        lines += _md_table(
            ["Model"] + [_LABELS[m] for m in METRICS],
            ([_md_escape(_display_name(r))] + [_f(r[f"{m}_pooled"]) for m in METRICS] for r in done),
        )
    if paper_tables(comparison.get("dataset")):
        lines += ["", "The paper's own numbers are in `paper_reference.md`, kept apart: they are not comparable."]

    if footer:
        lines += ["", "### Protocol", ""]
        protocol = comparison.get("protocol") or {}
        lines += [f"- **{_md_escape(k)}**: {_md_escape(_flat(v))}" for k, v in protocol.items()] or ["- (none recorded)"]
        lines += ["", "### Statistics", ""]
        lines += _statistics_note(comparison)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ CSV
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


# ---------------------------------------------------------------------------------------- LaTeX
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "²": r"$^2$",
    "≈": r"$\approx$",
    "→": r"$\rightarrow$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "—": "---",
    "–": "--",
    "§": r"\S{}",
}


def latex_escape(text: Any) -> str:
    r"""``text`` with LaTeX's special characters escaped (and a few Unicode symbols spelled out).

    Example:
        >>> latex_escape("wide_unet 50% {x} & y")
        'wide\\_unet 50\\% \\{x\\} \\& y'
        >>> latex_escape("x10^8")
        'x10$^{8}$'
    """
    escaped = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text).replace("\n", " "))
    return re.sub(r"(\d)\\textasciicircum\{\}(\d+)", r"\1$^{\2}$", escaped)


def _tex_pm(mean: float | None, std: float | None, bold: bool) -> str:
    if mean is None:
        return "---"
    text = f"{mean:.4f}"
    if bold:
        text = rf"\textbf{{{text}}}"
    return text if std is None else rf"{text} $\pm$ {std:.4f}"


def _tex_cell(text: str) -> str:
    """A display cell from :func:`_cells` in LaTeX (dashes, the ± and × signs, the ``*``)."""
    if text == _DASH:
        return "---"
    if text[:1] in "+-" and text[1:2].isdigit():  # a signed number: a real minus sign
        return f"${text[0]}${latex_escape(text[1:])}"
    return latex_escape(text)


def to_latex(comparison: Mapping[str, Any]) -> str:
    r"""The results as a LaTeX ``table`` (booktabs: ``\toprule``/``\midrule``/``\bottomrule``).

    Same rows as the main Markdown table; the best per-image mean Dice and Jaccard are in bold;
    failed models span the numeric columns with their error. Needs only ``\usepackage{booktabs}``.
    Every text from the comparison (model names, errors, title) is escaped.

    Example:
        >>> tex = to_latex({"title": "a_b", "dataset": "folder", "models": []})
        >>> "\\toprule" in tex and "a\\_b" in tex
        True
    """
    rows = results_rows(comparison)
    isic = comparison.get("dataset") == "isic2018"
    reference = comparison.get("reference")
    size = _gmacs_size(rows)
    best = {m: _best(rows, f"{m}_mean") for m in ("dice", "jaccard")}

    header = ["Model"] + [_LABELS[m] for m in METRICS]
    if isic:
        header.append("Thr.\\ Jaccard")
    header += [
        r"Dice 95\% CI",
        r"$p$ (Holm)",
        r"$r$",
        "Params (M)",
        f"GMACs ({size}$\\times${size})" if size else "GMACs",
        "Train (min)",
    ]
    body = []
    for r in rows:
        name = latex_escape(_display_name(r)) + (" (ref.)" if r["is_reference"] else "")
        if r["status"] != "done":
            status = f"{r['status']}: {r['error']}" if r["error"] else str(r["status"])
            body.append(f"{name} & \\multicolumn{{{len(header) - 1}}}{{l}}{{{latex_escape(status)}}} \\\\")
            continue
        cells = [name]
        for m in METRICS:
            mean = r[f"{m}_mean"]
            bold = mean is not None and best.get(m) is not None and mean == best[m]
            cells.append(_tex_pm(mean, r[f"{m}_std"], bold))
        c = _cells(r, rows, isic)
        if isic:
            cells.append(_tex_cell(c["tj"]))
        cells += [_tex_cell(c[k]) for k in ("ci", "p", "effect", "params", "gmacs", "minutes")]
        body.append(" & ".join(cells) + r" \\")

    caption = (
        f"{latex_escape(comparison.get('title', 'focusnet compare'))}. Per-image mean $\\pm$ "
        "population std over the test images; best mean Dice and Jaccard in bold."
    )
    if reference:
        caption += (
            f" $p$: two-sided Wilcoxon signed-rank test of per-image Dice against "
            f"{latex_escape(reference)} (ref.), Holm-adjusted across models (* $\\leq 0.05$); "
            "$r$: matched-pairs rank-biserial correlation ($>0$: the model beats the reference)."
        )
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        r"\label{tab:focusnet-compare}",
        r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ paper reference
def _paper_heading(tables: Sequence[PaperTable]) -> str:
    numbers = [str(t.number) for t in tables]
    which = f"Table {numbers[0]}" if len(numbers) == 1 else "Tables " + ", ".join(numbers[:-1]) + " and " + numbers[-1]
    return (
        f"The paper's reported numbers (Kaul et al., ISBI 2021, {which}) — for reference only; "
        "different split, resolution and training"
    )


def _paper_value(column: str, value: float) -> str:
    return f"{value:.2f}" if column in ("Params", "FLOPs") else f"{value:.4f}"


def paper_reference_markdown(dataset: str | None) -> str:
    """The paper's own tables for ``dataset``, as a separate, labelled Markdown block.

    ISIC 2018 gives Tables 1 and 2, DSB 2018 Table 3; any other dataset gives ``""``. Each table
    keeps the paper's row labels and column names, adds our registry name, and ends with its source
    and note. Never mixed with our results.

    Example:
        >>> paper_reference_markdown("isic2018").splitlines()[0][:60]
        "## The paper's reported numbers (Kaul et al., ISBI 2021, Tab"
        >>> paper_reference_markdown("folder")
        ''
    """
    tables = paper_tables(dataset)
    if not tables:
        return ""
    lines = [
        f"## {_paper_heading(tables)}",
        "",
        f"> Quoted from {PAPER_CITATION}. These figures come from the authors' own split, 256 × 256 "
        "inputs, Keras and 50 epochs; they are not results of this run and are not comparable with "
        "its tables.",
    ]
    for t in tables:
        lines += ["", f"### Table {t.number}: {_md_escape(t.caption)}", ""]
        header = list(t.columns) + ["focusnet model"]
        body = [
            [_md_escape(r.label)]
            + [_paper_value(c, r.values[c]) for c in t.columns[1:]]
            + [(f"`{r.model}`" + (f" ({_md_escape(r.config)})" if r.config else "")) if r.model else _DASH]
            for r in t.rows
        ]
        lines += _md_table(header, body, left=(0, len(header) - 1))
        lines += ["", f"Source: {_md_escape(t.source)}.", "", f"Note: {_md_escape(t.note)}"]
        notes = [f"{r.label}: {r.note}" for r in t.rows if r.note and t.number != 2]
        lines += [f"- {_md_escape(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def paper_reference_latex(dataset: str | None) -> str:
    r"""The paper's own tables for ``dataset`` as separate LaTeX ``table`` environments (booktabs).

    Each caption starts with "The paper's reported numbers (Kaul et al., ISBI 2021, Table N) ---
    for reference only; different split, resolution and training"; ``""`` for datasets the paper
    does not cover.

    Example:
        >>> "Table 3" in paper_reference_latex("dsb2018"), paper_reference_latex("nnunet")
        (True, '')
    """
    tables = paper_tables(dataset)
    if not tables:
        return ""
    blocks = []
    for t in tables:
        caption = latex_escape(f"{_paper_heading([t])}. Table {t.number}: {t.caption} Source: {t.source}.")
        header = [latex_escape(c) for c in t.columns] + ["focusnet model"]
        body = [
            " & ".join(
                [latex_escape(r.label)]
                + [_paper_value(c, r.values[c]) for c in t.columns[1:]]
                + [latex_escape(r.model + (f" ({r.config})" if r.config else "")) if r.model else "---"]
            )
            + r" \\"
            for r in t.rows
        ]
        blocks.append(
            "\n".join(
                [
                    r"\begin{table}[t]",
                    r"\centering",
                    rf"\caption{{{caption}}}",
                    rf"\label{{tab:paper-table{t.number}}}",
                    r"\begin{tabular}{l" + "r" * (len(t.columns) - 1) + "l}",
                    r"\toprule",
                    " & ".join(header) + r" \\",
                    r"\midrule",
                    *body,
                    r"\bottomrule",
                    r"\end{tabular}",
                    r"\par\smallskip\footnotesize " + latex_escape(t.note),
                    r"\end{table}",
                ]
            )
        )
    return "\n\n".join(blocks) + "\n"


# ---------------------------------------------------------------------------------------- files
def write_tables(comparison: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``results.md``, ``results.csv``, ``results.tex`` and, where the paper has numbers for
    the dataset, ``paper_reference.md`` and ``paper_reference.tex`` into ``out_dir``.

    Each file is written atomically (a temporary file in ``out_dir``, then renamed), so a reader
    never sees half a table. ``out_dir`` is created if needed.

    Returns:
        The paths written, in the order above.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     [p.name for p in write_tables({"dataset": "folder", "models": []}, d)]
        ['results.md', 'results.csv', 'results.tex']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "results.md": to_markdown(comparison),
        "results.csv": to_csv(comparison),
        "results.tex": to_latex(comparison),
    }
    dataset = comparison.get("dataset")
    if paper_tables(dataset):
        files["paper_reference.md"] = paper_reference_markdown(dataset)
        files["paper_reference.tex"] = paper_reference_latex(dataset)
    written = []
    for name, text in files.items():
        path = out / name
        atomic_write(path, text)
        written.append(path)
    return written
