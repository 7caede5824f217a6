"""Speed and memory benchmark (``focusnet benchmark``): the public names of :mod:`focusnet.bench`,
where the benchmark lives, kept importable from here.

Example:
    >>> from focusnet.engine.benchmark import parse_model_spec, spec_label
    >>> parse_model_spec("focusnetpp:paper").label, spec_label("focusnetpp", "paper")
    ('focusnetpp:paper', 'focusnetpp:paper')
"""
from __future__ import annotations

import sys

from focusnet.bench import (
    BACKENDS,
    MONAI_BASICUNET,
    PRECISIONS,
    bf16_support,
    format_markdown,
    machine_info,
    parse_model_spec,
    parse_model_specs,
    run_benchmark,
    spec_label,
)
from focusnet.bench.report import stats as _stats  # noqa: F401 - older private name, used by tests
from focusnet.bench.run import DEFAULT_CONV_SHAPE, FLOP_CONVENTION  # noqa: F401 - older names
from focusnet.bench.specs import PHASES, ModelSpec  # noqa: F401 - older names

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "MONAI_BASICUNET",
    "bf16_support",
    "format_markdown",
    "machine_info",
    "parse_model_spec",
    "parse_model_specs",
    "run_benchmark",
    "spec_label",
]

if __name__ == "__main__":  # `python -m focusnet.engine.benchmark --worker`, the older worker command
    if sys.argv[1:] == ["--worker"]:
        from focusnet.bench.worker import main  # the worker's imports, only in a worker process

        sys.exit(main())
    print("usage: use `focusnet benchmark` (this module's --worker mode is internal)", file=sys.stderr)
    sys.exit(2)
