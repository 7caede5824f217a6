"""``focusnet benchmark``: training and inference speed, memory and FLOP/s against U-Net
(:mod:`focusnet.bench`).

Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_benchmark(parser.add_subparsers())
    >>> parser.parse_args(["benchmark", "--models", "unet"]).precision
    '32-true'
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from focusnet.bench import format_markdown, parse_model_spec, parse_model_specs, run_benchmark
from focusnet.errors import FocusNetError
from focusnet.models.spec import SPEC_SYNTAX
from focusnet.vocab import BENCHMARK_PRECISIONS, CUDA_GRAPHS, DEVICES

__all__ = ["add_benchmark", "cmd_benchmark"]


def add_benchmark(sub: argparse._SubParsersAction) -> None:
    """Register ``focusnet benchmark`` on ``sub``."""
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
        help=f"comma-separated {SPEC_SYNTAX}[@onnxruntime], values read as YAML, e.g. "
        "focusnetpp:lite[norm=instance] (default: focusnetpp:paper,focusnetpp:official,unet)",
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
    p.set_defaults(func=cmd_benchmark)


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Run ``focusnet benchmark``; returns the exit code."""
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
