#!/usr/bin/env python
"""Regenerate the generated parts of ``docs/``, from the code itself, so they cannot drift.

One command writes every generated file:

* ``docs/reference/cli.md``: every ``focusnet`` command and option, from
  :func:`focusnet.cli.build_parser` (a new subcommand appears as soon as it is registered);
* ``docs/reference/config.md``: every config key with its default and allowed values, from
  :class:`focusnet.engine.config.TrainConfig` (defaults from the dataclasses, allowed values from
  the validator's own error messages, descriptions from the ``Attributes:`` docstrings) and the
  shipped ``configs/*.yaml``;
* ``docs/reference/api.md``: the public Python API (``__all__`` of the modules in
  :data:`API_MODULES`), signatures and docstrings;
* ``docs/models/*.md``: a model card per registered model and preset (paper, departures, parameters
  and GMACs from :mod:`focusnet.complexity`, input constraints probed on the meta device, and the
  accuracy published as JSON in ``benchmarks/published/`` where there is one), plus
  ``docs/models/index.md``;
* ``docs/explanation/figures/focusnetpp-architecture.png``: a block diagram drawn from an
  instantiated FocusNet++ (``paper`` preset): every stage's channels, resolution and parameter
  count come from forward hooks, the ResGANet panel from the block's own modules and source;
* ``docs/explanation/figures/all-hl-curve.png``: the adaptive logarithmic function of
  :mod:`focusnet.losses` and its slope (autograd), at the loss's default parameters.

Usage::

    .venv/bin/python scripts/gen_docs.py           # rewrite the stale files
    .venv/bin/python scripts/gen_docs.py --check   # exit 1 listing stale files; write nothing

A figure is stale when the data it is drawn from changed: each PNG stores the SHA-256 of that data
in a ``focusnet-docs-source`` text chunk, so the check does not depend on matplotlib's version.
``tests/docs/test_generated_docs.py`` runs the check.

The code is the package ``scripts/docgen/`` (one module per page kind); this file is its command
and re-exports the names the tests use, so it can be loaded by path.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "scripts"):  # the focusnet package, and docgen when loaded by path
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from docgen import common, measured  # noqa: E402
from docgen.api_reference import API_MODULES, api_reference  # noqa: E402
from docgen.cli_reference import cli_reference  # noqa: E402
from docgen.common import COMMAND, GENERATED, anchor, docstring_to_md, md_cell, rst_to_md  # noqa: E402
from docgen.config_reference import config_reference  # noqa: E402
from docgen.figures import _save, architecture_spec, draw_architecture, draw_loss, figure_hash, loss_spec  # noqa: E402
from docgen.measured import MeasuredResult, PublishedResultError, load_result_file, measured_results  # noqa: E402
from docgen.model_cards import Variant, input_multiple, model_card, model_index, variants  # noqa: E402
from docgen.targets import Target, generate, leftovers, main, stale, targets  # noqa: E402

__all__ = [
    "API_MODULES", "COMMAND", "GENERATED", "ROOT",
    "MeasuredResult", "PublishedResultError", "Target", "Variant", "_save", "anchor", "api_reference",
    "architecture_spec", "cli_reference", "config_reference", "docstring_to_md", "draw_architecture",
    "draw_loss", "figure_hash", "generate", "input_multiple", "leftovers", "load_result_file", "loss_spec",
    "main", "md_cell", "measured_results", "model_card", "model_index", "rst_to_md", "stale", "targets",
    "variants",
]

#: The docstring examples of the package, run by ``tests/docs/doctests.py`` through this file (a
#: doctest finder only looks at what a module defines itself).
__test__ = {
    f"{module.__name__}.{name}": obj
    for module in (common, measured)
    for name, obj in vars(module).items()
    if callable(obj) and getattr(obj, "__module__", None) == module.__name__ and ">>>" in (obj.__doc__ or "")
}

if __name__ == "__main__":
    sys.exit(main())
