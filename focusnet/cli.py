"""The ``focusnet`` command line.

Each subcommand imports what it needs when it runs, so ``focusnet score`` and ``focusnet models``
start fast; only the training commands import Lightning.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from focusnet.errors import FocusNetError


# ----------------------------------------------------------------------------------------- models
def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models and their presets")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    from focusnet.models import list_models, list_presets

    table = {name: list(list_presets(name)) for name in list_models()}
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        for name, presets in table.items():
            print(f"{name:18s} {('presets: ' + ', '.join(presets)) if presets else ''}".rstrip())
    return 0


# ------------------------------------------------------------------------------------- complexity
def _add_complexity(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("complexity", help="parameters, MACs and FLOPs of a model (one forward pass)")
    p.add_argument("model", help="registered model name (see `focusnet models`)")
    p.add_argument("--preset", default=None, help="model preset, e.g. paper, official, lite")
    p.add_argument("--size", type=int, default=256, help="input height and width (default 256)")
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_complexity)


def _cmd_complexity(args: argparse.Namespace) -> int:
    from focusnet.complexity import measure

    kwargs = {"in_channels": args.in_channels}
    if args.preset is not None:
        kwargs["preset"] = args.preset
    result = measure(args.model, size=args.size, **kwargs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['model']}"
            + (f" ({result['preset']})" if result.get("preset") else "")
            + f" at 1x{args.in_channels}x{args.size}x{args.size}: "
            f"{result['params']:,} trainable parameters ({result['params'] / 1e6:.3f} M), "
            f"{result['macs'] / 1e9:.2f} GMACs, {result['flops'] / 1e9:.2f} GFLOPs"
        )
    return 0


# ------------------------------------------------------------------------------------------ score
def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score a folder of predicted masks against a folder of true masks",
        description="Pairs files by stem (after removing the suffixes) and scores them at the "
        "true masks' resolution: per-image and pooled precision, recall, Dice, Jaccard, "
        "specificity, accuracy, and the ISIC 2018 thresholded Jaccard.",
    )
    p.add_argument("pred_dir", type=Path, help="folder of predicted binary masks")
    p.add_argument("true_dir", type=Path, help="folder of ground-truth binary masks")
    p.add_argument("--pred-suffix", default="", help="suffix of predicted stems, e.g. _mask")
    p.add_argument("--true-suffix", default="", help="suffix of true stems, e.g. _segmentation")
    p.add_argument(
        "--empty-score",
        type=float,
        default=1.0,
        help="score of an image whose prediction and truth are both empty (default 1.0, as ISIC)",
    )
    p.add_argument(
        "--mask-rule",
        choices=["binary", "nonzero", "half"],
        default="binary",
        help="how mask pixel values are read (default: refuse non-binary masks)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_score)


def _cmd_score(args: argparse.Namespace) -> int:
    from focusnet.engine.scoring import format_summary, score_folders

    result = score_folders(
        args.pred_dir,
        args.true_dir,
        pred_suffix=args.pred_suffix,
        true_suffix=args.true_suffix,
        empty_score=args.empty_score,
        mask_rule=args.mask_rule,
    )
    print(json.dumps(result, indent=2) if args.json else format_summary(result))
    return 0


# ------------------------------------------------------------------------------------------- demo
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="generate synthetic lesions, train FocusNet++, evaluate it and print the summary",
    )
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/demo-<time>)")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's number of epochs")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from focusnet.engine.demo import run_demo

    run_demo(out=args.out, epochs=args.epochs)
    return 0


# ------------------------------------------------------------------------------------------- main
_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_models,
    _add_complexity,
    _add_score,
    _add_demo,
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FocusNetError as exc:
        if args.debug:
            raise
        print(f"focusnet: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("focusnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `focusnet score ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
