"""``focusnet predict`` (masks for new images), ``focusnet evaluate`` (a run's weights scored on a
split) and ``focusnet export`` (ONNX or TorchScript).

Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_export(parser.add_subparsers())
    >>> parser.parse_args(["export", "unet", "--format", "onnx", "--out", "m.onnx"]).format
    'onnx'
    >>> parser.parse_args(["export", "unet", "--out", "m.pt"]).format is None  # taken from the name: torchscript
    True
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, cast

from focusnet.data.splits import SPLIT_NAMES
from focusnet.engine.evaluate import evaluate_run, interrupted_note
from focusnet.engine.export import FORMATS, export, format_from_path
from focusnet.engine.predict import predict
from focusnet.engine.scoring import all_empty_warning, empty_predictions_warning, format_summary
from focusnet.errors import FocusNetError
from focusnet.models import create_model
from focusnet.models.spec import SPEC_SYNTAX, spec_with_preset
from focusnet.vocab import BACKENDS, DEVICES
from focusnet.weights import load_model

__all__ = ["add_evaluate", "add_export", "add_predict", "cmd_evaluate", "cmd_export", "cmd_predict"]


def add_predict(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet predict`` on ``sub``."""
    p = sub.add_parser(
        "predict",
        help="write binary masks (0/255 PNG, original size) for images of any size and format",
        description="Each image is preprocessed as in training (resized to the model's input size, "
        "normalised), its probabilities are resized back to the image's original size (bilinear) and "
        "thresholded (foreground: probability > threshold). Writes <stem><suffix>.png per image, and "
        "optionally <stem>_prob.png and <stem>_overlay.png. Refuses to replace existing outputs "
        "unless --overwrite, and to write into an input folder.",
    )
    p.add_argument(
        "model", metavar="MODEL",
        help="weights (.safetensors), their .json, a run folder (uses weights/best.safetensors), or an .onnx file "
        "from focusnet export (it carries the preprocessing and runs in onnxruntime)",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image file(s), a folder of images (not recursive) or a quoted glob such as 'images/*.jpg'",
    )
    p.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR",
                   help="folder for the masks (created), or a .png file name for the mask of one input image")
    p.add_argument("--suffix", default="_mask", help="mask file name: <stem><suffix>.png (default _mask)")
    p.add_argument("--probabilities", action="store_true", help="also write <stem>_prob.png (probability x 255)")
    p.add_argument("--overlays", action="store_true",
                   help="also write <stem>_overlay.png (mask tinted on the image, downscaled to at most 1024 pixels "
                   "a side)")
    p.add_argument("--tta", action="store_true", help="average over identity, horizontal and vertical flips")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default 4)")
    p.add_argument("--threshold", type=float, default=None, help="probability threshold (default: the model's, 0.5)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="inference engine (default: onnxruntime for an .onnx MODEL or with --onnx, else torch)")
    p.add_argument("--onnx", type=Path, default=None, metavar="FILE",
                   help="exported .onnx model to run in onnxruntime, MODEL giving the preprocessing")
    p.add_argument("--device", default=None, type=DEVICES.argparse_type("--device"),
                   help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out images that cannot be read, with a warning naming them, instead of stopping")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the per-image results as JSON instead of the summary")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    """Run ``focusnet predict``; returns the exit code."""
    start = time.perf_counter()
    rows = predict(
        args.model,
        args.inputs,
        args.output_dir,
        suffix=args.suffix,
        save_probabilities=args.probabilities,
        save_overlays=args.overlays,
        tta=args.tta,
        batch_size=args.batch_size,
        threshold=args.threshold,
        backend=args.backend,
        onnx_path=args.onnx,
        overwrite=args.overwrite,
        progress=not args.no_progress and sys.stderr.isatty(),
        device=args.device,
        skip_bad=args.skip_bad,
    )
    skipped = [r for r in rows if "error" in r]
    done = [r for r in rows if "error" not in r]
    if done and all(r["foreground"] == 0.0 for r in done):
        print(f"focusnet: warning: {all_empty_warning(len(done))}", file=sys.stderr)
    if skipped:
        more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        shown = "; ".join(r["error"] for r in skipped[:3]) + more
        print(f"focusnet: warning: skipped {len(skipped)} image(s) that could not be read: {shown}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    extras = [name for name, on in (("probability maps", args.probabilities), ("overlays", args.overlays)) if on]
    print(
        f"predicted {len(done)} mask(s)" + (f" (+ {' and '.join(extras)})" if extras else "")
        + f" into {args.output_dir} in {time.perf_counter() - start:.1f} s"
        + (f"; skipped {len(skipped)} unreadable image(s)" if skipped else "")
    )
    return 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet evaluate`` on ``sub``."""
    p = sub.add_parser(
        "evaluate",
        help="score a run's best weights on a split, at model and at original resolution",
        description="Runs the run's best weights (weights/best.safetensors, else best.ckpt) on the "
        "split's images, thresholds the probabilities and scores them against the masks at the model "
        "input resolution and, after resizing the probabilities back to each image's original size "
        "(bilinear), against the original masks read from the source files. Writes "
        "RUN_DIR/eval/SPLIT/: per_image_model_res.csv, per_image_original_res.csv, summary.json (both "
        "resolutions in the `focusnet score --json` schema) and summary.md.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder written by training")
    p.add_argument("--split", choices=SPLIT_NAMES, default="test", help="which split (default test)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default 0.5)")
    p.add_argument(
        "--empty-score",
        type=float,
        default=1.0,
        help="score of an image whose prediction and truth are both empty (default 1.0, as ISIC)",
    )
    p.add_argument(
        "--original-resolution",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score at each image's original resolution (default: yes)",
    )
    p.add_argument("--device", default=None, type=DEVICES.argparse_type("--device"),
                   help="torch device, e.g. cpu or cuda (default: the run's accelerator)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation of this split")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the tables")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``focusnet evaluate``; returns the exit code."""
    note = interrupted_note(args.run_dir)  # said once the evaluation has succeeded: an error stays one line
    summary = evaluate_run(
        args.run_dir,
        split=args.split,
        threshold=args.threshold,
        empty_score=args.empty_score,
        original_resolution=args.original_resolution,
        overwrite=args.overwrite,
        device=args.device,
    )
    if note is not None:
        print(f"focusnet: warning: {note}; evaluated its best checkpoint so far", file=sys.stderr)
    warning = empty_predictions_warning(summary["original_resolution"] or summary["model_resolution"])
    if warning:
        print(f"focusnet: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for title, part in (
        ("model resolution", summary["model_resolution"]),
        ("original resolution", summary["original_resolution"]),
    ):
        if part is not None:
            print(f"== {title} ==")
            print(format_summary(cast(dict, part)))  # format_summary reads any score summary
    if summary.get("reused"):
        print(f"{args.run_dir / 'eval' / args.split}: already up to date (same weights and settings), shown as it is; "
              "--overwrite recomputes it")
    else:
        print(f"wrote {', '.join(summary['files'])} under {args.run_dir}")
    return 0


def add_export(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet export`` on ``sub``."""
    p = sub.add_parser(
        "export",
        help="export a model to ONNX or TorchScript for inference, checked against PyTorch",
        description="Exports an eval-mode float32 copy of MODEL with its Conv-BatchNorm pairs folded "
        "(unless --no-fold-bn). ONNX: opset 17, TorchScript-based exporter, input 'image' and output "
        "'logits' with dynamic batch, height and width, weights inside the file. The written file is "
        "run (ONNX Runtime, or the reloaded TorchScript) and its probabilities must match PyTorch "
        "within 1e-4. Refuses to replace an existing file unless --overwrite.",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help=f"a registered model, {SPEC_SYNTAX} (untrained weights; see `focusnet models`), or saved weights "
        "(.safetensors, their .json) or a run folder",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="onnx or torchscript (default: from the --out name: .onnx is onnx; .pt, .pth, .ts are torchscript)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="output file, e.g. model.onnx or model.pt")
    p.add_argument("--preset", default=None, help="model preset of a registered MODEL, e.g. paper, official, lite")
    p.add_argument(
        "--size", type=int, default=None, help="side of the example input (default: the saved model's, else 256)"
    )
    p.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers instead of folding them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Run ``focusnet export``; returns the exit code."""
    export_format = args.format or format_from_path(args.out)
    source = Path(args.model)
    if source.exists():
        if args.preset is not None:
            raise FocusNetError(f"{source}: --preset applies to a registered model name; saved weights carry their own")
        model = load_model(source)
        saved: Any = model.focusnet_config  # a SavedModelConfig, set by load_model
        size = args.size if args.size is not None else saved.size
        what = f"{saved.describe()} from {source}"
    elif source.suffix.lower() in (".safetensors", ".json", ".ckpt", ".pt", ".pth") or "/" in args.model:
        raise FocusNetError(
            f"{source}: weights file or run folder not found; fix the path or give a registered model name"
        )
    else:
        spec = spec_with_preset(args.model, args.preset)  # the spec grammar of compare and benchmark
        model = create_model(spec.model, **spec.create_kwargs())
        size = args.size if args.size is not None else 256
        what = f"{spec.text} with untrained weights"
    result = export(
        model, args.out, export_format, example_size=size, fold_bn=not args.no_fold_bn, overwrite=args.overwrite
    )
    carries = (f"; it carries the model's preprocessing and threshold: focusnet predict {result.path} IMAGES OUT_DIR"
               if result.config_embedded else "")
    print(
        f"exported {what} to {result.path} ({export_format}, {result.folded_batchnorms} BatchNorm(s) folded); "
        f"max probability difference vs PyTorch {result.max_prob_diff:.2g} on inputs "
        + ", ".join("x".join(map(str, shape)) for shape in result.check_shapes)
        + carries
    )
    return 0
