"""The results as a LaTeX ``table`` (booktabs), and LaTeX escaping.

Example:
    >>> _tex_cell("+0.25"), _tex_cell("—")
    ('$+$0.25', '---')
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from focusnet.compare.tables.rows import (
    _DASH,
    _LABELS,
    METRICS,
    _best,
    _cells,
    _display_name,
    _gmacs_size,
    _status,
    results_rows,
)

__all__ = ["latex_escape", "to_latex"]

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
            status = _status(r)
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
