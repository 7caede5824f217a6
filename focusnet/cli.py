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

from focusnet.compare.profiles import PROFILES
from focusnet.data.splits import SPLIT_NAMES
from focusnet.errors import FocusNetError
from focusnet.vocab import BACKENDS, BENCHMARK_PRECISIONS, CUDA_GRAPHS, DEVICES, FORMATS, MASK_RULES


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
        choices=MASK_RULES,
        default="binary",
        help="how mask pixel values are read (default: refuse non-binary masks)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_score)


def _cmd_score(args: argparse.Namespace) -> int:
    from focusnet.engine.scoring import empty_predictions_warning, format_summary, score_folders

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


# ------------------------------------------------------------------------------------------ train
def _add_train(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("config", nargs="?", type=Path, default=None, metavar="CONFIG", help="YAML or JSON config (omit with --resume)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. epochs=10 data.source=/data/isic")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<model>-<time>)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue this run from its last.ckpt")
    _config_flag(p, "--devices", "devices")
    _config_flag(p, "--num-nodes", "num_nodes", type=int)
    _config_flag(p, "--accelerator", "accelerator")
    _config_flag(p, "--precision", "precision")
    _config_flag(p, "--seed", "seed", type=int)
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms only")
    p.set_defaults(func=_cmd_train)
    _allow_late_overrides(p)


def _config_flag(p: argparse.ArgumentParser, flag: str, key: str, **kwargs: object) -> None:
    """A flag that sets config key ``key``: its choices and help come from the key's declaration
    (:func:`focusnet.engine.config.settings`); a deprecated spelling is replaced, with a warning."""
    from focusnet.engine.config import TrainConfig, settings

    setting = settings(TrainConfig)[key]
    default = setting.default if not isinstance(setting.default, bool) else str(setting.default).lower()
    text = setting.help.replace("``", "").rstrip(".")
    extra: dict = {"default": None, "help": f"{text} (default: the config's, else {default})"}
    if setting.choices is not None:
        extra.update(choices=setting.choices, type=setting.choices.argparse_type(flag))
    p.add_argument(flag, **{**extra, **kwargs})


def _allow_late_overrides(p: argparse.ArgumentParser) -> None:
    """KEY=VALUE overrides may also follow the flags (argparse alone takes positionals only before them)."""
    parse_known = p.parse_known_args

    def parse_known_args(args=None, namespace=None):  # noqa: ANN001, ANN202 - argparse's signature
        ns, extras = parse_known(args, namespace)
        late = [e for e in extras if "=" in e and not e.startswith("-")]
        ns.overrides = list(getattr(ns, "overrides", None) or []) + late
        return ns, [e for e in extras if e not in late]

    p.parse_known_args = parse_known_args


def _cmd_train(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.config is not None and "=" in str(args.config) and not args.config.exists():
        overrides.insert(0, str(args.config))  # `focusnet train --resume RUN epochs=6`
        args.config = None
    flags = {
        "devices": None if args.devices is None else (args.devices if args.devices == "auto" else _int_flag("--devices", args.devices)),
        "num_nodes": args.num_nodes,
        "accelerator": args.accelerator,
        "precision": args.precision,
        "seed": args.seed,
        "deterministic": True if args.deterministic else None,
    }
    overrides += [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in flags.items() if v is not None]
    if args.resume is not None:
        from focusnet.engine.train import resume

        if args.config is not None:
            raise FocusNetError("--resume takes the run folder's own config; give KEY=VALUE overrides only (e.g. epochs=60)")
        if args.out is not None:
            raise FocusNetError("--resume continues in the run folder itself; --out does not apply")
        run_dir = resume(args.resume, overrides)
        from focusnet.engine.evaluate import stale_evaluations

        for folder in stale_evaluations(run_dir):
            print(f"focusnet: warning: {folder} scored the weights before this resume; update it with "
                  f"`focusnet evaluate {args.resume} --split {folder.name} --overwrite`", file=sys.stderr)
    else:
        from focusnet.engine.config import load_config
        from focusnet.engine.train import train

        if args.config is None:
            raise FocusNetError("give a CONFIG file (e.g. configs/isic2018_focusnetpp.yaml) or --resume RUN_DIR")
        config = load_config(args.config, overrides)
        if args.out is not None:
            config = config.replace(out_dir=str(args.out))
        run_dir = train(config)
    summary = run_dir / "summary.json"
    if summary.is_file():
        mean = json.loads(summary.read_text())["mean"]
        print(f"focusnet train: run folder {run_dir}; test Dice {mean['dice']:.4f}, Jaccard {mean['jaccard']:.4f} (per-image means)")
    return 0


def _int_flag(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise FocusNetError(f"{name}: expected an integer or auto; got {value!r}") from None


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
    p.add_argument(
        "--precision", choices=BENCHMARK_PRECISIONS, type=BENCHMARK_PRECISIONS.argparse_type("--precision"),
        default="32-true", help="32-true (default) or bf16-mixed (torch.autocast bfloat16, weights float32); "
        "the older fp32 and bf16 still work, with a warning",
    )
    p.add_argument("--device", default="cpu", type=DEVICES.argparse_type("--device"),
                   help="cpu or cuda[:N] (default cpu; the older gpu still works, with a warning)")
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
    p.add_argument(
        "--cuda-graphs",
        choices=CUDA_GRAPHS,
        default="auto",
        help="on CUDA, replay every model's forward and backward as CUDA graphs, as focusnet train does "
        "(default auto: on for CUDA; off: eager)",
    )
    p.add_argument("--include-monai", action="store_true", help="add MONAI's BasicUNet if monai is installed")
    p.add_argument(
        "--no-allocator-tuning",
        action="store_true",
        help="let glibc mmap/unmap large tensors every step in every process, as plain PyTorch does "
        "(default: focusnet.runtime.tune_cpu_allocator; also FOCUSNET_ALLOCATOR_TUNING=0)",
    )
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
        cuda_graphs=args.cuda_graphs,
        repeats=args.repeats,
        warmup=args.warmup,
        baseline=None if args.baseline.lower() == "none" else parse_model_spec(args.baseline),
        include_monai=args.include_monai,
        in_channels=args.in_channels,
        phases=phases,
        min_repeat_time=args.min_repeat_time,
        threads=args.threads,
        conv_shape=conv_shape,
        allocator_tuning=False if args.no_allocator_tuning else None,
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
    p.add_argument("--format", required=True, choices=FORMATS, help="dataset layout")
    p.add_argument("--source", required=True, type=Path, help="dataset folder (read only)")
    p.add_argument("--out", type=Path, default=Path("prepared"), help="folder for caches (default: prepared/)")
    p.add_argument("--size", type=int, default=None,
                   help="network input side (default 256; with --check the size is not used and not reported "
                   "unless given: training resizes to its config's size)")
    p.add_argument("--channels", type=int, choices=_config_choices("channels"), default=3, help="3 = RGB (default), 1 = grey")
    p.add_argument(
        "--normalization",
        choices=_config_choices("normalization"),
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
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable pairs with a warning instead of stopping")
    p.add_argument("--check", action="store_true", help="only validate the dataset; write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_prepare)


def _config_choices(key: str) -> tuple:
    """The allowed values of config key ``key`` (``focusnet prepare`` takes the same as the config)."""
    from focusnet.engine.config import TrainConfig, settings

    return tuple(settings(TrainConfig)[key].choices or ())


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


# ---------------------------------------------------------------------------------------- predict
def _add_predict(sub: argparse._SubParsersAction) -> None:
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
        "model", metavar="MODEL", help="weights (.safetensors), their .json, or a run folder (uses weights/best.safetensors)"
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
    p.add_argument("--overlays", action="store_true", help="also write <stem>_overlay.png (mask tinted on the image, downscaled to at most 1024 pixels a side)")
    p.add_argument("--tta", action="store_true", help="average over identity, horizontal and vertical flips")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default 4)")
    p.add_argument("--threshold", type=float, default=None, help="probability threshold (default: the model's, 0.5)")
    p.add_argument("--backend", choices=BACKENDS, default="torch", help="inference engine (default torch)")
    p.add_argument("--onnx", type=Path, default=None, metavar="FILE", help="exported .onnx model for --backend onnxruntime")
    p.add_argument("--device", default=None, type=DEVICES.argparse_type("--device"),
                   help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the per-image results as JSON instead of the summary")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    import time

    from focusnet.engine.predict import predict

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
    )
    if rows and all(r["foreground"] == 0.0 for r in rows):
        from focusnet.engine.scoring import all_empty_warning

        print(f"focusnet: warning: {all_empty_warning(len(rows))}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    extras = [name for name, on in (("probability maps", args.probabilities), ("overlays", args.overlays)) if on]
    print(
        f"predicted {len(rows)} mask(s)" + (f" (+ {' and '.join(extras)})" if extras else "")
        + f" into {args.output_dir} in {time.perf_counter() - start:.1f} s"
    )
    return 0


# --------------------------------------------------------------------------------------- evaluate
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from focusnet.engine.evaluate import evaluate_run, interrupted_note
    from focusnet.engine.scoring import empty_predictions_warning, format_summary

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
    for key, title in (("model_resolution", "model resolution"), ("original_resolution", "original resolution")):
        if summary[key] is not None:
            print(f"== {title} ==")
            print(format_summary(summary[key]))
    if summary.get("reused"):
        print(f"{args.run_dir / 'eval' / args.split}: already up to date (same weights and settings), shown as it is; "
              "--overwrite recomputes it")
    else:
        print(f"wrote {', '.join(summary['files'])} under {args.run_dir}")
    return 0


# ---------------------------------------------------------------------------------------- compare
def _add_compare(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("config", type=Path, metavar="CONFIG", help="training config (e.g. configs/isic2018_focusnetpp.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides after the profile's, e.g. data.source=/data/isic")
    p.add_argument("--models", default=None, metavar="LIST",
                   help="comma-separated NAME[:PRESET][[KEY=VALUE;...]] (default focusnetpp,unet,attention_unet)")
    p.add_argument("--profile", choices=tuple(PROFILES), default="quick",
                   help="quick: 128x128, 8 epochs, Adam 1e-3 cosine, flips (CPU, minutes per model), replacing the "
                   "config's size, epochs, lr and schedule; paper: the config as written (the paper's protocol; a GPU). "
                   "KEY=VALUE overrides replace the profile's values; the header and the report say what ran")
    p.add_argument("--out", type=Path, default=None, help="comparison folder (default runs/compare-<config>-<profile>)")
    p.add_argument("--gallery-limit", type=int, default=300, help="at most this many images in the report's gallery")
    p.set_defaults(func=_cmd_compare)
    _allow_late_overrides(p)


def _cmd_compare(args: argparse.Namespace) -> int:
    from focusnet.compare.runner import DEFAULT_MODELS, run_compare

    if args.gallery_limit < 0:
        raise FocusNetError(f"--gallery-limit must be >= 0; got {args.gallery_limit}")
    comparison = run_compare(args.config, args.models or DEFAULT_MODELS, out=args.out, profile=args.profile,
                             overrides=args.overrides, gallery_limit=args.gallery_limit)
    return 1 if any(m["status"] != "done" for m in comparison["models"]) else 0


# ----------------------------------------------------------------------------------------- export
def _add_export(sub: argparse._SubParsersAction) -> None:
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
        help="a registered model NAME or NAME:PRESET (untrained weights; see `focusnet models`), or saved weights "
        "(.safetensors, their .json) or a run folder",
    )
    p.add_argument("--format", choices=["onnx", "torchscript"], required=True, help="onnx or torchscript")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="output file, e.g. model.onnx or model.pt")
    p.add_argument("--preset", default=None, help="model preset of a registered MODEL, e.g. paper, official, lite")
    p.add_argument(
        "--size", type=int, default=None, help="side of the example input (default: the saved model's, else 256)"
    )
    p.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers instead of folding them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from focusnet.engine.export import export

    source = Path(args.model)
    if source.exists():
        from focusnet.weights import load_model

        if args.preset is not None:
            raise FocusNetError(f"{source}: --preset applies to a registered model name; saved weights carry their own")
        model = load_model(source)
        size = args.size if args.size is not None else model.focusnet_config.size
        what = f"{model.focusnet_config.describe()} from {source}"
    elif source.suffix.lower() in (".safetensors", ".json", ".ckpt", ".pt", ".pth") or "/" in args.model:
        raise FocusNetError(f"{source}: weights file or run folder not found; fix the path or give a registered model name")
    else:
        from focusnet.models import create_model

        name, _, preset = args.model.partition(":")  # NAME:PRESET, as compare and benchmark take it
        if preset and args.preset is not None and preset != args.preset:
            raise FocusNetError(f"{args.model}: names preset {preset!r} but --preset is {args.preset!r}; give one")
        args.model, args.preset = name, (preset or args.preset)
        kwargs = {} if args.preset is None else {"preset": args.preset}
        model = create_model(args.model, **kwargs)
        size = args.size if args.size is not None else 256
        what = f"{args.model}" + (f" ({args.preset})" if args.preset else "") + " with untrained weights"
    result = export(model, args.out, args.format, example_size=size, fold_bn=not args.no_fold_bn, overwrite=args.overwrite)
    print(
        f"exported {what} to {result.path} ({args.format}, {result.folded_batchnorms} BatchNorm(s) folded); "
        f"max probability difference vs PyTorch {result.max_prob_diff:.2g} on inputs "
        + ", ".join("x".join(map(str, shape)) for shape in result.check_shapes)
    )
    return 0


# ------------------------------------------------------------------------------------------- main
_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_models,
    _add_complexity,
    _add_score,
    _add_train,
    _add_demo,
    _add_benchmark,
    _add_prepare,
    _add_predict,
    _add_evaluate,
    _add_compare,
    _add_export,
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
_RUNS_MODELS = {_cmd_train, _cmd_demo, _cmd_benchmark, _cmd_predict, _cmd_evaluate, _cmd_compare}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func in _RUNS_MODELS:
        from focusnet.runtime import tune_cpu_allocator

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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
