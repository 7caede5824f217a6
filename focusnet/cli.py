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
    p = sub.add_parser(
        "complexity",
        help="parameters, MACs and FLOPs of a model (one forward pass), or of all of them (--all)",
        description="Trainable parameters and real forward MACs/FLOPs (one 1 x C x S x S input, eval "
        "mode, meta device). --all measures every registered model and preset and prints the paper's "
        "Table 2 figures beside the configuration they describe: its units are millions, and its "
        "'FLOPs' column counts TF1 weight-initialiser operations, not compute (spec §5.3).",
    )
    p.add_argument(
        "model", nargs="?", default=None, help="registered model name (see `focusnet models`); omit with --all"
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
    p.set_defaults(func=_cmd_complexity)


def _cmd_complexity(args: argparse.Namespace) -> int:
    from focusnet import complexity as cx

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

    kwargs = {"in_channels": args.in_channels}
    if args.preset is not None:
        kwargs["preset"] = args.preset
    if args.markdown:
        print(cx.format_table_markdown([cx.complexity_row(args.model, size=args.size, **kwargs)]), end="")
        return 0
    result = cx.measure(args.model, size=args.size, **kwargs)
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


# -------------------------------------------------------------------------------------- benchmark
def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="training/inference throughput, peak memory and FLOP/s of models against U-Net",
        description="Each model runs in its own process; models are interleaved round-robin and "
        "every row is compared with the baseline (U-Net) measured in the same run. The machine's "
        "dense-convolution peak (a large 3x3 conv of the same dtype) is measured in the same run too.",
    )
    p.add_argument(
        "--models",
        default="focusnetpp:paper,focusnetpp:official,unet",
        help="comma-separated NAME[:PRESET][@onnxruntime] (default: focusnetpp:paper,focusnetpp:official,unet)",
    )
    p.add_argument("--baseline", default="unet", help="row the ratios are against (default unet; 'none': no ratios)")
    p.add_argument("--size", type=int, default=256, help="input height and width (default 256)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step (default 8)")
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: torch.autocast bfloat16")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per phase (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps per phase (default 2)")
    p.add_argument(
        "--min-repeat-time", type=float, default=1.0, help="target seconds per timed repeat (default 1)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads per model (default: torch's)")
    p.add_argument(
        "--conv-shape",
        default="8,128,128,128",
        help="B,C,H,W of the 3x3 conv-peak probe, C -> C channels (default 8,128,128,128)",
    )
    p.add_argument("--phases", default="inference,train", help="inference, train or both (default both)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile every model")
    p.add_argument("--include-monai", action="store_true", help="add MONAI's BasicUNet if monai is installed")
    p.add_argument("--json-out", type=Path, default=None, help="write the full result as JSON")
    p.add_argument("--markdown-out", type=Path, default=None, help="write the Markdown table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_benchmark)


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from focusnet.engine.benchmark import format_markdown, parse_model_spec, parse_model_specs, run_benchmark

    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    bad = [p for p in phases if p not in ("inference", "train")]
    if bad or not phases:
        raise FocusNetError(f"--phases: unknown phase(s) {', '.join(bad) or '(none)'}; use inference, train")
    try:
        conv_shape = tuple(int(v) for v in args.conv_shape.split(","))
    except ValueError:
        conv_shape = ()
    if len(conv_shape) != 4:
        raise FocusNetError(f"--conv-shape: expected four integers B,C,H,W, got {args.conv_shape!r}")
    result = run_benchmark(
        parse_model_specs(args.models),
        size=args.size,
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        channels_last=args.channels_last,
        compile=args.compile,
        repeats=args.repeats,
        warmup=args.warmup,
        baseline=None if args.baseline.lower() == "none" else parse_model_spec(args.baseline),
        include_monai=args.include_monai,
        in_channels=args.in_channels,
        phases=phases,
        min_repeat_time=args.min_repeat_time,
        threads=args.threads,
        conv_shape=conv_shape,
        progress=None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True)),
    )
    text = format_markdown(result)
    for path, content in ((args.json_out, json.dumps(result, indent=2)), (args.markdown_out, text)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content + ("" if content.endswith("\n") else "\n"))
    print(text, end="")
    return 0


# ---------------------------------------------------------------------------------------- prepare
def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="decode, check and resize a dataset once into a memory-mapped cache for training",
        description="Reads an ISIC 2018, DSB 2018, folder or nnU-Net raw dataset, checks every pair, "
        "resizes it to SIZE x SIZE as the paper does and writes <out>/<format>-<size>-<hash>/ "
        "(images.npy, masks.npy, manifest.json with the splits). Preparing again with unchanged "
        "sources and settings does nothing. The source folder is never written to.",
    )
    p.add_argument("--format", required=True, choices=["isic2018", "dsb2018", "folder", "nnunet"], help="dataset layout")
    p.add_argument("--source", required=True, type=Path, help="dataset folder (read only)")
    p.add_argument("--out", type=Path, default=Path("prepared"), help="folder for caches (default: prepared/)")
    p.add_argument("--size", type=int, default=256, help="network input side (default 256)")
    p.add_argument("--channels", type=int, choices=[1, 3], default=3, help="3 = RGB (default), 1 = grey")
    p.add_argument(
        "--normalization",
        choices=["minmax", "unit"],
        default="minmax",
        help="per-image min-max to [0,1] (default, the authors') or /255; applied when loading",
    )
    p.add_argument(
        "--mask-rule",
        choices=["binary", "nonzero", "half"],
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
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable pairs with a warning instead of stopping")
    p.add_argument("--check", action="store_true", help="only validate the dataset; write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_prepare)


def _format_prepare(s: dict) -> str:
    mb = s["cache_bytes"] / 1e6
    what = f"{s['format']}, {s['size']}x{s['size']}, {s['channels']} channel(s), {s['normalization']}"
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


def _cmd_prepare(args: argparse.Namespace) -> int:
    from focusnet.data.cache import prepare

    options = {}
    if args.mask_suffix is not None:
        if args.format != "folder":
            raise FocusNetError(f"--mask-suffix applies to --format folder only (not {args.format})")
        options["mask_suffix"] = args.mask_suffix
    summary = prepare(
        args.format,
        args.source,
        args.out,
        size=args.size,
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
    print(json.dumps(summary, indent=2) if args.json else _format_prepare(summary))
    return 0


# ------------------------------------------------------------------------------------------- main
_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_models,
    _add_complexity,
    _add_score,
    _add_demo,
    _add_benchmark,
    _add_prepare,
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
