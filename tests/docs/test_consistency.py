"""Pages that must not contradict each other or the repository (issue 17, item 10)."""
from __future__ import annotations

import re

from tests.docs.fences import REPO


def test_readme_does_not_call_onnx_runtime_faster_than_the_pytorch_path() -> None:
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "faster than eager PyTorch" not in readme
    assert "not the fastest" in readme  # as docs/how-to/export-onnx.md says
    assert "not the fastest" in (REPO / "docs" / "how-to" / "export-onnx.md").read_text(encoding="utf-8")


def test_makefile_cites_only_files_that_exist() -> None:
    cited = re.findall(r"\b([A-Za-z0-9_./-]+\.(?:md|txt|toml|cff))\b", (REPO / "Makefile").read_text())
    assert cited, "the Makefile cites no files?"
    missing = [name for name in cited if not (REPO / name).exists()]
    assert not missing, f"the Makefile cites missing files: {missing}"


def test_tutorial_says_what_the_quick_profile_replaces() -> None:
    """`--profile quick` silently trained at 128 x 128 for 8 epochs, not the config's 64 and 30 (issue 17, item 8)."""
    from focusnet.compare.profiles import PROFILES

    page = " ".join((REPO / "docs" / "tutorials" / "getting-started.md").read_text(encoding="utf-8").split())
    assert "`--profile quick` replaces the config's `size` and `epochs`" in page
    quick = dict(item.split("=", 1) for item in PROFILES["quick"])
    # the values the page quotes are the profile's
    assert f"{quick['size']} x {quick['size']}, {quick['epochs']} epochs" in page
    assert "results table to stdout" in page


def test_tutorial_says_how_overlays_are_made_smaller() -> None:
    """Overlays are downscaled (issue 17, item 11); the page says so with the code's figure."""
    from focusnet.engine.predict import OVERLAY_MAX_SIDE

    page = " ".join((REPO / "docs" / "tutorials" / "getting-started.md").read_text(encoding="utf-8").split())
    assert f"overlay downscaled to {OVERLAY_MAX_SIDE}" in page
