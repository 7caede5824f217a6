"""``focusnet prepare`` (a data set into a training cache) and ``focusnet score`` (a folder of
predicted masks against the true ones).

Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_score(parser.add_subparsers())
    >>> parser.parse_args(["score", "pred", "true", "--mask-rule", "nonzero"]).mask_rule
    'nonzero'
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from focusnet.cli.common import config_choices
from focusnet.data.cache import prepare
from focusnet.engine.scoring import empty_predictions_warning, format_summary, score_folders
from focusnet.errors import FocusNetError
from focusnet.vocab import FORMATS, MASK_RULES

__all__ = ["add_prepare", "add_score", "cmd_prepare", "cmd_score"]


def add_score(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet score`` on ``sub``."""
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
        choices=MASK_RULES,
        default="binary",
        help="how mask pixel values are read (default: refuse non-binary masks)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    """Run ``focusnet score``; returns the exit code."""
    result = score_folders(
        args.pred_dir,
        args.true_dir,
        pred_suffix=args.pred_suffix,
        true_suffix=args.true_suffix,
        empty_score=args.empty_score,
        mask_rule=args.mask_rule,
    )
    print(json.dumps(result, indent=2) if args.json else format_summary(result))
    warning = empty_predictions_warning(result)
    if warning:
        print(f"focusnet: warning: {warning}", file=sys.stderr)
    return 0


def add_prepare(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet prepare`` on ``sub``."""
    p = sub.add_parser(
        "prepare",
        help="decode, check and resize a dataset once into a memory-mapped cache for training",
        description="Reads an ISIC 2018, DSB 2018, folder or nnU-Net raw dataset, checks every pair, "
        "resizes it to SIZE x SIZE as the paper does and writes <out>/<format>-<size>-<hash>/ "
        "(images.npy, masks.npy, manifest.json with the splits). Preparing again with unchanged "
        "sources and settings does nothing. The source folder is never written to.",
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="dataset layout")
    p.add_argument("--source", required=True, type=Path, help="dataset folder (read only)")
    p.add_argument("--out", type=Path, default=Path("prepared"), help="folder for caches (default: prepared/)")
    p.add_argument("--size", type=int, default=None,
                   help="network input side (default 256; with --check the size is not used and not reported "
                   "unless given: training resizes to its config's size)")
    p.add_argument("--channels", type=int, choices=config_choices("channels"), default=3,
                   help="3 = RGB (default), 1 = grey")
    p.add_argument(
        "--normalization",
        choices=config_choices("normalization"),
        default="minmax",
        help="per-image min-max to [0,1] (default, the authors') or /255; applied when loading",
    )
    p.add_argument(
        "--mask-rule",
        choices=MASK_RULES,
        default="binary",
        help="binary: refuse masks with more than two values (default); nonzero: any value > 0 is "
        "foreground; half: >= half of the maximum",
    )
    p.add_argument("--mask-suffix", default=None, help="folder format: text after the id in mask names, e.g. _mask")
    p.add_argument(
        "--split",
        default="default",
        help="default (isic2018: bcdu, dsb2018: paper, else random), bcdu, paper, paper-test, random, "
        "random:0.8,0.1,0.1, or a JSON split file (ours or nnU-Net's splits_final.json)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the paper/random splits (default 0)")
    p.add_argument("--fold", type=int, default=0, help="fold of an nnU-Net splits_final.json (default 0)")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: CPUs, at most 8)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out unreadable pairs with a warning instead of stopping")
    p.add_argument("--check", action="store_true", help="only validate the dataset; write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_prepare)


def _format_prepare(s: dict, size_given: bool = True) -> str:
    mb = s["cache_bytes"] / 1e6
    size = f"{s['size']}x{s['size']}, " if size_given or not s["check_only"] else ""
    what = f"{s['format']}, {size}{s['channels']} channel(s), {s['normalization']}"
    if s["check_only"]:
        head = f"checked {s['count']} pairs ({what}) in {s['seconds']:.1f} s; nothing written"
    elif s["noop"]:
        head = f"up to date: {s['count']} pairs ({what}), nothing to do ({s['seconds']:.2f} s)"
    else:
        head = f"prepared {s['count']} pairs ({what}) in {s['seconds']:.1f} s ({s['images_per_s']} images/s)"
    lines = [head]
    if s.get("cache"):
        lines.append(f"cache:    {s['cache']} ({mb:.1f} MB)")
    lines.append("splits:   " + ", ".join(f"{k} {v}" for k, v in s["splits"].items()) + f" ({s['split']})")
    lines.append(f"skipped:  {s['skipped']}")
    lines.append(f"warnings: {len(s['warnings'])}")
    lines += [f"  - {w}" for w in s["warnings"]]
    return "\n".join(lines)


def cmd_prepare(args: argparse.Namespace) -> int:
    """Run ``focusnet prepare``; returns the exit code."""
    options = {}
    if args.mask_suffix is not None:
        if args.format != "folder":
            raise FocusNetError(f"--mask-suffix applies to --format folder only (not {args.format})")
        options["mask_suffix"] = args.mask_suffix
    summary = prepare(
        args.format,
        args.source,
        args.out,
        size=args.size if args.size is not None else 256,
        channels=args.channels,
        normalization=args.normalization,
        mask_rule=args.mask_rule,
        split=args.split,
        seed=args.seed,
        fold=args.fold,
        workers=args.workers,
        check_only=args.check,
        progress=not args.no_progress and sys.stderr.isatty(),
        skip_bad=args.skip_bad,
        **options,
    )
    print(json.dumps(summary, indent=2) if args.json else _format_prepare(summary, size_given=args.size is not None))
    return 0
