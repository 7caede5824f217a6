"""The HTML of ``focusnet compare``'s ``report.html`` (:func:`focusnet.compare.report.write_report`).

Modules: :mod:`~focusnet.compare.html.values` (escaping and formatting single values),
:mod:`~focusnet.compare.html.markdown` (the small markdown converter),
:mod:`~focusnet.compare.html.sections` (the report's sections) and
:mod:`~focusnet.compare.html.page` (the page: head, navigation, sections, footer). The stylesheet
and the column-sorting script are package data files, ``report.css`` and ``report.js``, inlined
into every page.
"""
from __future__ import annotations

__all__: list[str] = []
