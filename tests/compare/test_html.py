"""focusnet.compare.html: the report's CSS and JS are package data that an installed wheel carries."""
from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import focusnet.compare.html as html_pkg
from focusnet.compare.html.page import asset
from focusnet.compare.report import write_report

REPO = Path(__file__).resolve().parents[2]


def test_every_data_file_of_the_package_is_declared_package_data() -> None:
    folder = Path(html_pkg.__file__).parent
    data = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc"))
    assert data == ["report.css", "report.js"]
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = declared.get("focusnet.compare.html", [])
    assert [name for name in data if not any(fnmatch.fnmatch(name, pat) for pat in patterns)] == []


def test_the_page_inlines_the_data_files(tmp_path: Path) -> None:
    text = write_report({"models": []}, tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"<style>\n{asset('report.css')}</style>" in text
    assert "img.naturalWidth * ZOOM" in asset("report.js") and "ZOOM" not in text.split("<script>")[1]
