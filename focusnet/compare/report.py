"""A single self-contained ``report.html`` for ``focusnet compare``.

The report has no external reference of any kind: figures and thumbnails are PNG data URIs, the
CSS and the column-sorting script are inline, and a Content-Security-Policy forbids the browser
from fetching anything. Everything that comes from the user (model names, ids, paths, errors,
protocol values, markdown tables) is HTML-escaped; only ``tables_html`` (rendered by
``focusnet.compare.tables``) is inserted as given. The page is built by :mod:`focusnet.compare.html`.

* :func:`write_report` writes the report (atomically);
* :func:`markdown_to_html` is the small markdown (tables, headings, lists, paragraphs) converter.

Example:
    >>> markdown_to_html("- one")
    '<ul><li>one</li></ul>'
"""
from __future__ import annotations

from focusnet.compare.html.markdown import markdown_to_html
from focusnet.compare.html.page import write_report
from focusnet.compare.html.sections import GALLERY_THUMB_SIZE, GALLERY_ZOOM

__all__ = ["GALLERY_THUMB_SIZE", "GALLERY_ZOOM", "markdown_to_html", "write_report"]
