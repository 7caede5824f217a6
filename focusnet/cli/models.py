"""``focusnet models`` and ``focusnet complexity``: the registered models, their presets, parameters
and FLOPs.

Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_models(parser.add_subparsers())
    >>> parser.parse_args(["models", "--json"]).json
    True
"""
from __future__ import annotations

import argparse
import json

from focusnet import complexity as cx
from focusnet.errors import FocusNetError
from focusnet.models import list_models, list_presets
from focusnet.models.spec import SPEC_SYNTAX, spec_with_preset

__all__ = ["add_complexity", "add_models", "cmd_complexity", "cmd_models"]


def add_models(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet models`` on ``sub``."""
    p = sub.add_parser("models", help="list the registered models and their presets")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    """Run ``focusnet models``; returns the exit code."""
    table = {name: list(list_presets(name)) for name in list_models()}
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        for name, presets in table.items():
            print(f"{name:18s} {('presets: ' + ', '.join(presets)) if presets else ''}".rstrip())
    return 0


# ------------------------------------------------------------------------------------- complexity
def add_complexity(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet complexity`` on ``sub``."""
    p = sub.add_parser(
        "complexity",
        help="parameters, MACs and FLOPs of a model (one forward pass), or of all of them (--all)",
        description="Trainable parameters and real forward MACs/FLOPs (one 1 x C x S x S input, eval "
        "mode, meta device). --all measures every registered model and preset and prints the paper's "
        "Table 2 figures beside the configuration they describe: its units are millions, and its "
        "'FLOPs' column counts TF1 weight-initialiser operations, not compute (spec §5.3).",
    )
    p.add_argument(
        "model", nargs="?", default=None,
        help=f"registered model, {SPEC_SYNTAX} (see `focusnet models`), e.g. focusnetpp:lite[enc_blocks=[1,1,1,2,2]]; "
        "omit with --all",
    )
    p.add_argument(
        "--all", action="store_true", help="every registered model and preset, beside the paper's Table 2"
    )
    p.add_argument("--preset", default=None, help="model preset, e.g. paper, official, lite")
    p.add_argument("--size", type=int, default=256, help="input height and width (default 256)")
    p.add_argument("--in-channels", type=int, default=3)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    fmt.add_argument(
        "--markdown", action="store_true", help="print a Markdown table (with the footnote on Table 2)"
    )
    p.set_defaults(func=cmd_complexity)


def cmd_complexity(args: argparse.Namespace) -> int:
    """Run ``focusnet complexity``; returns the exit code."""
    if args.all and args.model is not None:
        raise FocusNetError(f"give a MODEL or --all, not both (got {args.model!r} and --all)")
    if not args.all and args.model is None:
        raise FocusNetError("name a MODEL (see `focusnet models`) or pass --all to measure every model")
    if args.all:
        if args.preset is not None:
            raise FocusNetError("--preset applies to one MODEL; --all already measures every preset")
        rows = cx.complexity_table(size=args.size, in_channels=args.in_channels)
        if args.json:
            table = {
                "input": [1, args.in_channels, args.size, args.size],
                "counter": cx.COUNTER,
                "paper_units_note": cx.PAPER_UNITS_NOTE,
                "rows": rows,
            }
            print(json.dumps(table, indent=2, ensure_ascii=False))
        elif args.markdown:
            print(cx.format_table_markdown(rows), end="")
        else:
            print(cx.format_table_text(rows))
        return 0

    spec = spec_with_preset(args.model, args.preset)  # the spec grammar of compare and benchmark
    kwargs = {"in_channels": args.in_channels, **spec.create_kwargs()}
    if args.markdown:
        print(cx.format_table_markdown([cx.complexity_row(spec.model, size=args.size, **kwargs)]), end="")
        return 0
    result = cx.measure(spec.model, size=args.size, **kwargs)
    if args.json:
        print(json.dumps({**result, "kwargs": dict(spec.kwargs)}, indent=2))
    else:
        print(
            f"{spec.text} at 1x{args.in_channels}x{args.size}x{args.size}: "
            f"{result['params']:,} trainable parameters ({result['params'] / 1e6:.3f} M), "
            f"{result['macs'] / 1e9:.2f} GMACs, {result['flops'] / 1e9:.2f} GFLOPs"
        )
    return 0
