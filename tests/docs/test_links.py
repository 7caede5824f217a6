"""Error messages point to pages that exist, and the docs' relative links resolve."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from focusnet.errors import DOCS_CONFIG, DOCS_FORMAT, FocusNetError

REPO = Path(__file__).resolve().parents[2]
DOC_PATH = re.compile(r"[\"'](docs/[\w./-]+\.md)(#[\w-]+)?[\"']")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _heading_anchors(page: Path) -> set[str]:
    anchors = set()
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_every_page_named_by_an_error_exists() -> None:
    named = {}
    for path in (REPO / "focusnet").rglob("*.py"):
        for m in DOC_PATH.finditer(path.read_text(encoding="utf-8")):
            named[m.group(1) + (m.group(2) or "")] = path.relative_to(REPO).as_posix()
    assert DOCS_CONFIG in named and set(DOCS_FORMAT.values()) <= set(named)
    for target, source in named.items():
        page, _, frag = target.partition("#")
        assert (REPO / page).is_file(), f"{source} names {page}, which does not exist"
        if frag:
            assert frag in _heading_anchors(REPO / page), f"{source} names {target}: no such heading"


def test_config_errors_name_the_config_reference() -> None:
    from focusnet.engine.config import TrainConfig, load_config

    with pytest.raises(FocusNetError) as err:
        TrainConfig(epochs=0)
    assert str(err.value) == f"epochs: must be an integer >= 1; got 0 (see {DOCS_CONFIG})"
    assert err.value.see == DOCS_CONFIG
    with pytest.raises(FocusNetError, match=r"unknown config key 'epochz'.*\(see docs/reference/config\.md\)$"):
        load_config(None, ["epochz=3"])


@pytest.mark.parametrize("fmt", sorted(DOCS_FORMAT))
def test_reader_errors_name_their_format_page(fmt: str, tmp_path) -> None:
    from focusnet.data.readers import _DATA_SET_NAMES, get_reader

    with pytest.raises(FocusNetError) as err:
        get_reader(fmt).list_items(tmp_path / "missing")
    assert err.value.see == DOCS_FORMAT[fmt]
    # each format by its name ("pass the data set folder", not "the folder folder"; issue 17, item 6)
    name = _DATA_SET_NAMES[fmt]
    assert str(err.value).startswith(f"{tmp_path / 'missing'}: dataset folder not found; pass the {name} folder (")
    assert str(err.value).endswith(f" (see {DOCS_FORMAT[fmt]})")


def test_the_command_line_prints_the_page_on_its_one_line(tmp_path, capsys) -> None:
    from focusnet.cli import main

    assert main(["prepare", "--format", "dsb2018", "--source", str(tmp_path / "nope"), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("focusnet: error: ")
    assert err.rstrip().endswith("(see docs/how-to/dsb2018.md)")


def test_relative_links_in_the_docs_resolve() -> None:
    pages = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for link in MD_LINK.findall(text):
            if re.match(r"^[a-z]+:", link) or link.startswith("<"):
                continue  # an external address
            target, _, frag = link.partition("#")
            path = (page.parent / target).resolve() if target else page
            if not path.exists():
                broken.append(f"{page.relative_to(REPO)}: {link}")
            elif frag and path.suffix == ".md" and frag not in _heading_anchors(path):
                broken.append(f"{page.relative_to(REPO)}: {link} (no such heading)")
    assert not broken, "broken links: " + "; ".join(broken)
