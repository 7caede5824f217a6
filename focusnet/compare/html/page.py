"""The report page: head (Content-Security-Policy, inline CSS), title, navigation, sections, footer, script.

The page has no external reference of any kind: figures and thumbnails are PNG data URIs, the
stylesheet (``report.css``) and the column-sorting script (``report.js``), package data files, are
inlined, and a Content-Security-Policy forbids the browser from fetching anything.

Example:
    >>> "td.num" in asset("report.css") and "sortBy" in asset("report.js")
    True
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from focusnet import __version__
from focusnet.atomic import atomic_write
from focusnet.compare.html.sections import GALLERY_ZOOM, sections, summary_line
from focusnet.compare.html.values import escape

__all__ = ["asset", "write_report"]

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


@cache
def asset(name: str) -> str:
    """The text of a package data file of :mod:`focusnet.compare.html` (``report.css``, ``report.js``).

    Example:
        >>> asset("report.css").splitlines()[0][:5]
        ':root'
    """
    return resources.files("focusnet.compare.html").joinpath(name).read_text(encoding="utf-8")


def write_report(
    comparison: Mapping[str, Any],
    out_path: Path,
    *,
    tables_html: str | None = None,
    tables_markdown: str | None = None,
    paper_markdown: str | None = None,
    figures: Mapping[str, Path] | None = None,
    cases: Sequence[Mapping[str, Any]] | None = None,
    max_gallery: int = 300,
) -> Path:
    """Write the self-contained HTML report of a comparison.

    Sections: title and summary (best model by per-image mean Dice), results (``tables_html`` as
    given, else ``tables_markdown`` converted, else a table built from the comparison), statistics
    (``comparison["stats"]``), the paper's published numbers (separately labelled), figures (PNG
    embedded; for a ``.pdf`` path the sibling ``.png`` is used), a sortable per-image gallery
    (thumbnails of each done model, per-model Dice, difference to the reference), failures and
    the protocol. The file is written to a temporary file and renamed.

    Args:
        comparison: the ``comparison`` dict.
        out_path: the HTML file to write (parent folders are created).
        tables_html: rendered results tables (trusted HTML from ``focusnet.compare.tables``).
        tables_markdown: the same as markdown, used when ``tables_html`` is None.
        paper_markdown: the paper's reference numbers as markdown.
        figures: ``{name: path}`` of figures to embed, in display order.
        cases: per-image cases (id, image, truth, predictions, dice) for the gallery.
        max_gallery: at most this many images in the gallery (the first ones).

    Returns:
        ``out_path``.

    Example:
        >>> write_report(comparison, Path("out/report.html"), tables_markdown=md, cases=cases)  # doctest: +SKIP
        PosixPath('out/report.html')
    """
    out_path = Path(out_path)
    title = comparison.get("title") or "focusnet compare"
    parts = sections(comparison, tables_html=tables_html, tables_markdown=tables_markdown,
                     paper_markdown=paper_markdown, figures=figures, cases=cases, max_gallery=max_gallery)
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    nav = "".join(f'<a href="#{sid}">{escape(label)}</a>' for sid, label, _ in parts)
    body = "\n".join(
        f'<section id="{sid}"><h2>{escape(label)}</h2>\n{content}\n</section>' for sid, label, content in parts
    )
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>\n{asset('report.css')}</style>\n</head>\n<body>\n"
        f"<header><h1>{escape(title)}</h1><nav>{nav}</nav>\n"
        f'<p class="summary">{summary_line(comparison)}</p></header>\n'
        f"{body}\n"
        f"<footer>Written by focusnet {escape(__version__)} on {escape(date)}. Self-contained: no external "
        "resources.</footer>\n"
        f"<script>\n{asset('report.js').replace('ZOOM', str(GALLERY_ZOOM))}</script>\n</body></html>\n"
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out_path, page)
