"""The ``focusnet`` command line: :func:`main` and :func:`build_parser`, one module a group of
commands (:mod:`~focusnet.cli.models`, :mod:`~focusnet.cli.data`, :mod:`~focusnet.cli.train`,
:mod:`~focusnet.cli.bench`, :mod:`~focusnet.cli.infer`, :mod:`~focusnet.cli.compare`).

The training stack (Lightning) is imported only by the commands that train, when they run, so
``focusnet score`` and ``focusnet models`` start fast.

Example:
    >>> build_parser().parse_args(["complexity", "unet", "--size", "64"]).size
    64
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from focusnet.cli.bench import add_benchmark, cmd_benchmark
from focusnet.cli.compare import add_compare, cmd_compare
from focusnet.cli.data import add_prepare, add_score
from focusnet.cli.infer import add_evaluate, add_export, add_predict, cmd_evaluate, cmd_predict
from focusnet.cli.models import add_complexity, add_models
from focusnet.cli.train import add_demo, add_train, cmd_demo, cmd_train
from focusnet.errors import FocusNetError
from focusnet.runtime import tune_cpu_allocator

__all__ = ["build_parser", "main"]

_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_models,
    add_complexity,
    add_score,
    add_train,
    add_demo,
    add_benchmark,
    add_prepare,
    add_predict,
    add_evaluate,
    add_compare,
    add_export,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``focusnet`` command (also used to generate the CLI reference)."""
    parser = argparse.ArgumentParser(
        prog="focusnet",
        description="FocusNet++ and its baselines for 2D medical image segmentation.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(sub)
    for command in sub.choices.values():  # `focusnet COMMAND ... --debug` too; SUPPRESS keeps a leading --debug
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show full tracebacks on errors (also accepted before COMMAND)")
    return parser


# Commands that train or run models: they keep freed CPU memory for reuse (focusnet.runtime).
_RUNS_MODELS = {cmd_train, cmd_demo, cmd_benchmark, cmd_predict, cmd_evaluate, cmd_compare}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func in _RUNS_MODELS:
        tune_cpu_allocator()  # FOCUSNET_ALLOCATOR_TUNING=0 turns it off
    try:
        return int(args.func(args) or 0)
    except FocusNetError as exc:
        if args.debug:
            raise
        print(f"focusnet: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # training says how to resume
        print(f"focusnet: {exc}" if str(exc) else "focusnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `focusnet score ... | head`
        sys.stderr.close()
        return 0

