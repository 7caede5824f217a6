"""The generated docs (CLI, config and API references, model cards, figures) are current, and the
staleness check notices a change (``python scripts/gen_docs.py --check`` runs the same check)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def targets(gen):
    return gen.targets()


def test_generated_docs_are_current(gen, targets) -> None:
    stale = [t.path.relative_to(REPO).as_posix() for t in targets if not t.is_current()]
    stale += [p.relative_to(REPO).as_posix() for p in gen.leftovers(targets)]
    assert not stale, f"generated docs are stale; run `python scripts/gen_docs.py`: {', '.join(stale)}"


def test_every_command_and_model_has_its_page(targets) -> None:
    from focusnet.cli import build_parser
    from focusnet.models import list_models, list_presets

    cli = next(t.text for t in targets if t.path.name == "cli.md")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert f"\n## focusnet {name}\n" in cli, name
    cards = {t.path.name for t in targets if t.path.parent.name == "models"}
    for model in list_models():
        for preset in list_presets(model) or (None,):
            assert (f"{model}-{preset}.md" if preset else f"{model}.md") in cards


def test_staleness_is_detected(gen, tmp_path) -> None:
    page = gen.Target(tmp_path / "page.md", text="new\n")
    assert not page.is_current()
    page.write()
    assert page.is_current()
    page.path.write_text("edited by hand\n")
    assert not page.is_current()

    from matplotlib.figure import Figure

    def draw(spec, path):
        fig = Figure(figsize=(1, 1), dpi=20)
        fig.add_subplot().plot(spec["y"])
        gen._save(fig, path, spec)

    figure = gen.Target(tmp_path / "figure.png", spec={"y": [0, 1]}, draw=draw)
    assert not figure.is_current()
    figure.write()
    assert figure.is_current()
    assert not gen.Target(figure.path, spec={"y": [0, 2]}, draw=draw).is_current()  # the data changed


def test_figures_are_small_pngs(targets) -> None:
    for t in targets:
        if t.path.suffix == ".png":
            assert t.path.stat().st_size < 200_000, t.path
