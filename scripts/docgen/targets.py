"""Regenerate the generated parts of ``docs/``, from the code itself, so they cannot drift.

Every generated file is a :class:`Target` (Markdown text, or a figure drawn from a spec);
:func:`stale` lists those out of date and :func:`generate` rewrites them."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .api_reference import api_reference
from .cli_reference import cli_reference
from .common import COMMAND, DOCS, FIGURES_DIR, GENERATED, MODELS_DIR, ROOT
from .config_reference import config_reference
from .figures import _digest, architecture_spec, draw_architecture, draw_loss, figure_hash, loss_spec
from .measured import measured_results
from .model_cards import model_card, model_index, variants


@dataclass
class Target:
    """One generated file: Markdown text, or a figure drawn from a spec."""

    path: Path
    text: str | None = None
    spec: Any = None
    draw: Callable[[Any, Path], None] | None = None

    def is_current(self) -> bool:
        if self.text is not None:
            return self.path.is_file() and self.path.read_text(encoding="utf-8") == self.text
        return figure_hash(self.path) == _digest(self.spec)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.text is not None:
            self.path.write_text(self.text, encoding="utf-8")
        else:
            assert self.draw is not None
            self.draw(self.spec, self.path)


def targets() -> list[Target]:
    """Every generated file with its current content."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from focusnet.complexity import complexity_table

    rows = complexity_table(size=256)
    results = measured_results()
    vs = variants()
    out = [
        Target(DOCS / "reference" / "cli.md", cli_reference()),
        Target(DOCS / "reference" / "config.md", config_reference()),
        Target(DOCS / "reference" / "api.md", api_reference()),
        Target(MODELS_DIR / "index.md", model_index(vs, rows, results)),
    ]
    out += [Target(MODELS_DIR / f"{v.slug}.md", model_card(v, rows, results)) for v in vs]
    out.append(Target(FIGURES_DIR / "focusnetpp-architecture.png", spec=architecture_spec(), draw=draw_architecture))
    out.append(Target(FIGURES_DIR / "all-hl-curve.png", spec=loss_spec(), draw=draw_loss))
    return out


def leftovers(current: list[Target]) -> list[Path]:
    """Generated model cards that no registered model or preset produces any more."""
    wanted = {t.path for t in current}
    return sorted(
        p for p in MODELS_DIR.glob("*.md")
        if p not in wanted and GENERATED in p.read_text(encoding="utf-8")
    )


def stale() -> list[str]:
    """Repository-relative paths of the generated files that are missing, out of date or left over."""
    current = targets()
    paths = [t.path for t in current if not t.is_current()] + leftovers(current)
    return [p.relative_to(ROOT).as_posix() for p in paths]


def generate() -> list[str]:
    """Write every stale generated file and remove left-over cards; returns what changed."""
    current = targets()
    changed = []
    for t in current:
        if not t.is_current():
            t.write()
            changed.append(t.path)
    for p in leftovers(current):
        p.unlink()
        changed.append(p)
    return [p.relative_to(ROOT).as_posix() for p in changed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 listing the stale generated files; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        if bad:
            print(f"stale generated docs (run `{COMMAND}`):", file=sys.stderr)
            for path in bad:
                print(f"  {path}", file=sys.stderr)
            return 1
        print("generated docs are current")
        return 0
    changed = generate()
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print("generated docs were already current")
    return 0

