"""``focusnet train`` (a config, or ``--resume RUN_DIR``) and ``focusnet demo``.

Both import the training stack (Lightning) only when they run, so that the other commands start fast.

Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_train(parser.add_subparsers())
    >>> args = parser.parse_args(["train", "c.yaml", "--seed", "3", "epochs=2"])
    >>> args.seed, args.overrides
    (3, ['epochs=2'])
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from focusnet.cli.common import allow_late_overrides, config_flag
from focusnet.engine.config import load_config
from focusnet.engine.evaluate import stale_evaluations
from focusnet.errors import FocusNetError

__all__ = ["add_demo", "add_train", "cmd_demo", "cmd_train"]


def add_train(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet train`` on ``sub``."""
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config (paper protocol by default), then score the test split",
        description="Trains from a config file (configs/*.yaml) with KEY=VALUE overrides (dotted keys for "
        "nested values: data.source=PATH, model_kwargs.widths=[8,8,8,8,8], augment.enabled=true; values "
        "are read as YAML). The data set is prepared into a cache first (a no-op when up to date). Writes "
        "a run folder: config, environment, split, full-state checkpoints every epoch (best by val_loss or "
        "monitor=val_dice, last), weights/{best,last}.safetensors, logs, curves and the test-split summary. "
        "--resume RUN_DIR continues a run from its last checkpoint, exactly. --devices N / --num-nodes N "
        "train with DDP (Lightning launches the processes, or run under torchrun / SLURM).",
    )
    p.add_argument("config", nargs="?", type=Path, default=None, metavar="CONFIG",
                   help="YAML or JSON config (omit with --resume)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. epochs=10 data.source=/data/isic")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<model>-<time>)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue this run from its last.ckpt")
    config_flag(p, "--devices", "devices")
    config_flag(p, "--num-nodes", "num_nodes", type=int)
    config_flag(p, "--accelerator", "accelerator")
    config_flag(p, "--precision", "precision")
    config_flag(p, "--seed", "seed", type=int)
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms only")
    p.set_defaults(func=cmd_train)
    allow_late_overrides(p)


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``focusnet train``; returns the exit code."""
    overrides = list(args.overrides)
    if args.config is not None and "=" in str(args.config) and not args.config.exists():
        overrides.insert(0, str(args.config))  # `focusnet train --resume RUN epochs=6`
        args.config = None
    flags = {
        "devices": (
            None if args.devices is None
            else args.devices if args.devices == "auto"
            else _int_flag("--devices", args.devices)
        ),
        "num_nodes": args.num_nodes,
        "accelerator": args.accelerator,
        "precision": args.precision,
        "seed": args.seed,
        "deterministic": True if args.deterministic else None,
    }
    overrides += [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in flags.items() if v is not None]
    if args.resume is not None:
        from focusnet.engine.train import resume  # training stack: lazy (no Lightning in fast commands)

        if args.config is not None:
            raise FocusNetError(
                "--resume takes the run folder's own config; give KEY=VALUE overrides only (e.g. epochs=60)"
            )
        if args.out is not None:
            raise FocusNetError("--resume continues in the run folder itself; --out does not apply")
        run_dir = resume(args.resume, overrides)
        for folder in stale_evaluations(run_dir):
            print(f"focusnet: warning: {folder} scored the weights before this resume; update it with "
                  f"`focusnet evaluate {args.resume} --split {folder.name} --overwrite`", file=sys.stderr)
    else:
        from focusnet.engine.train import train  # training stack: lazy (no Lightning in fast commands)

        if args.config is None:
            raise FocusNetError("give a CONFIG file (e.g. configs/isic2018_focusnetpp.yaml) or --resume RUN_DIR")
        config = load_config(args.config, overrides)
        if args.out is not None:
            config = config.replace(out_dir=str(args.out))
        run_dir = train(config)
    summary = run_dir / "summary.json"
    if summary.is_file():
        mean = json.loads(summary.read_text())["mean"]
        print(f"focusnet train: run folder {run_dir}; test Dice {mean['dice']:.4f}, "
              f"Jaccard {mean['jaccard']:.4f} (per-image means)")
    return 0


def _int_flag(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise FocusNetError(f"{name}: expected an integer or auto; got {value!r}") from None


# ------------------------------------------------------------------------------------------- demo
def add_demo(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet demo`` on ``sub``."""
    p = sub.add_parser(
        "demo",
        help="generate synthetic lesions, train FocusNet++, evaluate it and print the summary",
    )
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/demo-<time>)")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's number of epochs")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``focusnet demo``; returns the exit code."""
    from focusnet.cli.demo import run_demo  # training stack: lazy (no Lightning in fast commands)

    run_demo(out=args.out, epochs=args.epochs)
    return 0
