"""Every shell and Python example of README.md, CONTRIBUTING.md and docs/ is marked, and every one marked
``runnable`` runs, page by page, in a sandbox with tiny synthetic data (see fences.py)."""
from __future__ import annotations

import pytest

from tests.docs.fences import (
    GETTING_STARTED,
    NEEDS_RUN,
    REPO,
    all_fences,
    environment,
    failure_report,
    run_page,
    runnable_pages,
    sandbox,
)

PAGES = [page for page in runnable_pages() if page != GETTING_STARTED]  # that one has its own test


def test_every_example_is_marked_runnable_or_no_run() -> None:
    unmarked = [f.where for f in all_fences() if f.mark is None]
    assert not unmarked, (
        "mark each ```bash / ```python fence `runnable` (the tests run it) or `no-run`: " + ", ".join(unmarked)
    )


def test_the_pages_examples_cover_readme_and_every_kind_of_doc() -> None:
    pages = set(runnable_pages())
    assert "README.md" in pages and GETTING_STARTED in pages
    for kind in ("how-to", "explanation"):
        assert any(p.startswith(f"docs/{kind}/") for p in pages), kind


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page: str, docs_world: dict, tmp_path) -> None:
    needs_run = NEEDS_RUN in (REPO / page).read_text(encoding="utf-8")
    clone = sandbox(docs_world["template"], tmp_path / "world", with_run=needs_run)
    results = run_page(page, clone, environment(tmp_path / "world", docs_world["bin"], docs_world["server"]))
    failed = [r for r in results if r.returncode != 0]
    assert not failed, failure_report(failed[0])
    assert len(results) == sum(1 for f in all_fences() if f.path == page and f.mark == "runnable")
