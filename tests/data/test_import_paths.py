"""The modules split into packages (issue 16) keep every import path the repository uses.

``focusnet.data.cache``, ``focusnet.compare.report``, ``tables`` and ``figures`` became packages or
gained sibling modules; every ``from <module> import name`` written in the package, the tests,
the benchmarks, the scripts or the docs must still resolve.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPLIT = ("focusnet.data.cache", "focusnet.compare.report", "focusnet.compare.tables", "focusnet.compare.figures")
IMPORT = re.compile(r"^\s*(?:>>> )?from (focusnet\.[\w.]+) import \(?([\w, ]+)\)?\s*(?:#.*)?$", re.M)
BLOCK = re.compile(r"^\s*from (focusnet\.[\w.]+) import \(\n((?:\s+\w+,?\n)+)\s*\)", re.M)


def _imports() -> set[tuple[str, str]]:
    found = set()
    files = [p for folder in ("focusnet", "tests", "benchmarks", "scripts", "docs") for p in (REPO / folder).rglob("*")
             if p.suffix in (".py", ".md") and ".venv" not in p.parts]
    for path in files + [REPO / "README.md"]:
        text = path.read_text(encoding="utf-8", errors="replace")
        pairs = [(m, names) for m, names in IMPORT.findall(text)] + [(m, names) for m, names in BLOCK.findall(text)]
        for module, names in pairs:
            if module in SPLIT:
                found.update((module, n.strip()) for n in names.replace("\n", ",").split(",") if n.strip())
    return found


def test_every_name_imported_from_a_split_module_resolves() -> None:
    pairs = _imports()
    assert {m for m, _ in pairs} == set(SPLIT)  # the scan finds imports of each of them
    missing = [f"{m}.{n}" for m, n in sorted(pairs) if not hasattr(importlib.import_module(m), n)]
    assert missing == []


def test_public_names_of_the_split_modules_resolve() -> None:
    for module in SPLIT:
        mod = importlib.import_module(module)
        assert [n for n in mod.__all__ if not hasattr(mod, n)] == [], module
