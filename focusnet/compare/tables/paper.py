"""The paper's own numbers (:mod:`focusnet.compare.paper_reference`) as separate, labelled Markdown and LaTeX.

They are never mixed into the results rows.

Example:
    >>> _paper_value("Params", 1.234), _paper_value("Dice", 0.88889)
    ('1.23', '0.8889')
"""
from __future__ import annotations

from collections.abc import Sequence

from focusnet.compare.paper_reference import PAPER_CITATION, PaperTable, paper_tables
from focusnet.compare.tables.latex import latex_escape
from focusnet.compare.tables.markdown import _md_escape, _md_table
from focusnet.compare.tables.rows import _DASH

__all__ = ["paper_reference_latex", "paper_reference_markdown"]


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
