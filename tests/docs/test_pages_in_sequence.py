"""The getting-started tutorial followed by every how-to guide, in ONE folder, as a reader runs them:
no page may trip over what an earlier page left behind (an evaluation, a predictions folder, image
names), and everything they write is in ``.gitignore`` (they are run from the repository root)."""
from __future__ import annotations

import subprocess

from tests.docs.fences import GETTING_STARTED, REPO, environment, failure_report, run_page, runnable_pages, sandbox

HOW_TO = [page for page in runnable_pages() if page.startswith("docs/how-to/")]


def _ignored(name: str, is_dir: bool) -> bool:
    path = name + ("/" if is_dir else "")
    return subprocess.run(["git", "-C", str(REPO), "check-ignore", "--no-index", "-q", path]).returncode == 0


def test_tutorial_then_every_how_to_page_in_one_folder(docs_world: dict, tmp_path) -> None:
    assert len(HOW_TO) >= 8 and GETTING_STARTED not in HOW_TO
    clone = sandbox(docs_world["template"], tmp_path / "world", with_run=False)
    before = {p.name for p in clone.iterdir()}
    env = environment(tmp_path / "world", docs_world["bin"], docs_world["server"])
    for page in [GETTING_STARTED, *HOW_TO]:
        results = run_page(page, clone, env)
        failed = [r for r in results if r.returncode != 0]
        assert not failed, f"{page}, run after the pages before it in one folder:\n" + failure_report(failed[0])

    written = sorted(p for p in clone.iterdir() if p.name not in before)
    assert written, "the pages wrote nothing?"
    untracked = [p.name for p in written if not _ignored(p.name, p.is_dir())]
    assert not untracked, f"add these outputs of the pages to .gitignore (they run from the repository root): {untracked}"
