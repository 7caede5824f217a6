"""``focusnet compare``: several models trained and evaluated under one protocol, with tables,
statistics, figures and report.html (:mod:`focusnet.compare`).

Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_compare(parser.add_subparsers())
    >>> parser.parse_args(["compare", "c.yaml", "--profile", "paper"]).profile
    'paper'
"""
from __future__ import annotations

import argparse
from pathlib import Path

from focusnet.cli.common import allow_late_overrides
from focusnet.compare.profiles import PROFILES
from focusnet.errors import FocusNetError
from focusnet.models.spec import SPEC_SYNTAX

__all__ = ["add_compare", "cmd_compare"]


def add_compare(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet compare`` on ``sub``."""
    p = sub.add_parser(
        "compare",
        help="train and evaluate several models under one protocol; tables, statistics, figures, report.html",
        description="Trains (or reuses) each model on the same prepared data, split, loss, schedule and seed "
        "as CONFIG (its model is replaced by each of --models), evaluates each on the same test split, and "
        "writes tables (Markdown, CSV, LaTeX; the paper's numbers in a separate block), statistics (bootstrap "
        "95% CIs, paired Wilcoxon tests against FocusNet++ with Holm correction), figures and a "
        "self-contained report.html into --out. Resumable: run the same command again and finished models "
        "are reused, an interrupted one resumes from its last epoch, a failed one is tried again. The results "
        "table goes to stdout; the header (what runs, after the profile and the overrides) and progress to stderr.",
    )
    p.add_argument("config", type=Path, metavar="CONFIG",
                   help="training config (e.g. configs/isic2018_focusnetpp.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides after the profile's, e.g. data.source=/data/isic")
    p.add_argument("--models", default=None, metavar="LIST",
                   help=f"comma-separated {SPEC_SYNTAX}, values read as YAML (default focusnetpp,unet,attention_unet)")
    p.add_argument("--profile", choices=tuple(PROFILES), default="quick",
                   help="quick: 128x128, 8 epochs, Adam 1e-3 cosine, flips (CPU, minutes per model), replacing the "
                   "config's size, epochs, lr and schedule; paper: the config as written (the paper's protocol; "
                   "a GPU). "
                   "KEY=VALUE overrides replace the profile's values; the header and the report say what ran")
    p.add_argument("--out", type=Path, default=None, help="comparison folder (default runs/compare-<config>-<profile>)")
    p.add_argument("--gallery-limit", type=int, default=300, help="at most this many images in the report's gallery")
    p.set_defaults(func=cmd_compare)
    allow_late_overrides(p)


def cmd_compare(args: argparse.Namespace) -> int:
    """Run ``focusnet compare``; returns the exit code."""
    from focusnet.compare.runner import DEFAULT_MODELS, run_compare  # training stack: lazy (no Lightning)

    if args.gallery_limit < 0:
        raise FocusNetError(f"--gallery-limit must be >= 0; got {args.gallery_limit}")
    comparison = run_compare(args.config, args.models or DEFAULT_MODELS, out=args.out, profile=args.profile,
                             overrides=args.overrides, gallery_limit=args.gallery_limit)
    return 1 if any(m["status"] != "done" for m in comparison["models"]) else 0
