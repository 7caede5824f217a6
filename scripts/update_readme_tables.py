#!/usr/bin/env python
"""Regenerate the generated tables of README.md.

The model table between ``<!-- models-table:start -->`` and ``<!-- models-table:end -->`` is the
output of ``focusnet complexity --all --size 256 --markdown``
(:func:`focusnet.complexity.complexity_table` and :func:`~focusnet.complexity.format_table_markdown`).

Usage::

    .venv/bin/python scripts/update_readme_tables.py          # rewrite README.md in place
    .venv/bin/python scripts/update_readme_tables.py --check  # exit 1 if README.md is stale

``tests/test_complexity.py`` runs :func:`check` so a stale README fails the test suite.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- models-table:start -->"
END = "<!-- models-table:end -->"


def models_table(size: int = 256) -> str:
    """The Markdown block that goes between the markers (without them)."""
    from focusnet.complexity import complexity_table, format_table_markdown

    return format_table_markdown(complexity_table(size=size))


def render(text: str, table: str | None = None) -> str:
    """``text`` (a README) with the block between the markers replaced by ``table``.

    Raises ValueError when the markers are missing, duplicated or out of order.
    """
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"README must contain {START!r} then {END!r}, once each")
    if table is None:
        table = models_table()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table.strip()}\n{END}{tail}"


def check(path: Path = README) -> bool:
    """True when ``path`` already holds the current generated tables."""
    text = path.read_text(encoding="utf-8")
    return render(text) == text


def update(path: Path = README) -> bool:
    """Rewrite ``path`` with the current tables; True when it changed."""
    text = path.read_text(encoding="utf-8")
    new = render(text)
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
