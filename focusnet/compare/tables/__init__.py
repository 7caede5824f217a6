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

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from focusnet.atomic import atomic_write
from focusnet.compare.paper_reference import paper_tables
from focusnet.compare.tables.latex import latex_escape, to_latex
from focusnet.compare.tables.markdown import to_markdown
from focusnet.compare.tables.paper import paper_reference_latex, paper_reference_markdown
from focusnet.compare.tables.rows import METRICS, csv_columns, results_rows, to_csv

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
