#!/usr/bin/env python
"""Regenerate the generated tables of README.md.

The model table between ``<!-- models-table:start -->`` and ``<!-- models-table:end -->`` is the
output of ``focusnet complexity --all --size 256 --markdown``
(:func:`focusnet.complexity.complexity_table` and :func:`~focusnet.complexity.format_table_markdown`).
The results between ``<!-- results:start -->`` and ``<!-- results:end -->`` are rendered from the
committed JSON in ``benchmarks/published/`` by :func:`docgen.readme_results.results_block`.

Usage::

    .venv/bin/python scripts/update_readme_tables.py          # rewrite README.md in place
    .venv/bin/python scripts/update_readme_tables.py --check  # exit 1 if README.md is stale

``tests/test_complexity.py`` and ``tests/docs/test_readme_results.py`` run :func:`check`, so a stale
README (either block) fails the test suite.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
README = SCRIPTS.parent / "README.md"
START = "<!-- models-table:start -->"
END = "<!-- models-table:end -->"
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"


def models_table(size: int = 256) -> str:
    """The Markdown block that goes between the markers (without them)."""
    from focusnet.complexity import complexity_table, format_table_markdown

    return format_table_markdown(complexity_table(size=size))


def results_block() -> str:
    """The Markdown block that goes between the results markers (without them)."""
    if str(SCRIPTS) not in sys.path:  # docgen is a package of scripts/, not of focusnet
        sys.path.insert(0, str(SCRIPTS))
    from docgen.readme_results import results_block as render_results

    return render_results()


def replace_block(text: str, start: str, end: str, block: str) -> str:
    """``text`` with the block between ``start`` and ``end`` replaced by ``block``.

    Raises ValueError when the markers are missing, duplicated or out of order.
    """
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"README must contain {start!r} then {end!r}, once each")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block.strip()}\n{end}{tail}"


def render(text: str, table: str | None = None, results: str | None = None) -> str:
    """``text`` (a README) with the model table block replaced by ``table`` (default: the current
    table) and, when ``results`` is given, the results block by ``results``.

    Raises ValueError when the markers of a block it replaces are missing, duplicated or out of order.
    """
    text = replace_block(text, START, END, models_table() if table is None else table)
    return text if results is None else replace_block(text, RESULTS_START, RESULTS_END, results)


def render_readme(text: str) -> str:
    """``text`` with both generated blocks current (both pairs of markers are required)."""
    return render(text, results=results_block())


def check(path: Path = README) -> bool:
    """True when ``path`` already holds the current generated tables and results."""
    text = path.read_text(encoding="utf-8")
    return render_readme(text) == text


def update(path: Path = README) -> bool:
    """Rewrite ``path`` with the current tables and results; True when it changed."""
    text = path.read_text(encoding="utf-8")
    new = render_readme(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale; write nothing")
    parser.add_argument("--readme", type=Path, default=README, help="README to update (default: the repo's)")
    args = parser.parse_args(argv)
    if args.check:
        if check(args.readme):
            print(f"{args.readme}: tables are current")
            return 0
        print(f"{args.readme}: tables are stale; run scripts/{Path(__file__).name}", file=sys.stderr)
        return 1
    changed = update(args.readme)
    print(f"{args.readme}: {'updated' if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
