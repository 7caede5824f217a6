"""The speed acceptance benchmark: FocusNet++ (paper, official) against U-Net, in the same run.

Acceptance configuration (the issue): CPU, 256x256, batch 8, fp32, and again with bf16 autocast
where the CPU runs bf16 natively. FocusNet++ paper must train >= 1.5x and infer >= 2x as many
images/s as U-Net measured in the same run; the achieved fraction of the machine's 3x3-conv peak
is reported. With ``--onnx`` (and :mod:`focusnet.engine.export` plus ``onnxruntime`` installed)
the fp32 run adds ``focusnetpp:paper@onnxruntime``, whose inference must be >= 1.2x PyTorch eager.

Usage:
    python benchmarks/bench_speed.py                 # acceptance run, several minutes on 2 cores
    python benchmarks/bench_speed.py --quick         # smoke test: 64x64, batch 2, 1 repeat, 1 thread
    python benchmarks/bench_speed.py --onnx --out results/speed.json

Prints the Markdown tables and the acceptance verdicts; writes the JSON (and a .md next to it) to
``benchmarks/results/speed-<date>.json`` (git-ignored) unless ``--out`` is given.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from focusnet.engine.benchmark import (  # noqa: E402
    bf16_support,
    format_markdown,
    parse_model_specs,
    run_benchmark,
    spec_label,
)

TARGETS = {"train": 1.5, "inference": 2.0}  # FocusNet++ paper vs U-Net
ONNX_TARGET = 1.2  # ONNX Runtime vs PyTorch eager fp32 inference
SUBJECT = ("focusnetpp", "paper")


def _onnx_available() -> tuple[bool, str]:
    if importlib.util.find_spec("onnxruntime") is None:
        return False, "onnxruntime is not installed"
    if importlib.util.find_spec("focusnet.engine.export") is None:
        return False, "focusnet.engine.export is missing"
    return True, ""


def acceptance(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Verdicts of one run: speed-up targets of FocusNet++ paper and of the ONNX Runtime row."""
    rows = {r["label"]: r for r in result["rows"]}
    precision = result["settings"]["precision"]
    verdicts = []
    subject = rows.get(spec_label(*SUBJECT))
    for phase, target in TARGETS.items():
        cell = subject.get(phase) if subject else None
        ratio = cell["ratio_vs_baseline"]["median"] if cell and cell.get("ratio_vs_baseline") else None
        frac = cell["fraction_of_conv_peak"]["median"] if cell and cell.get("fraction_of_conv_peak") else None
        verdicts.append(
            {
                "check": f"{spec_label(*SUBJECT)} {phase} throughput vs {result['settings']['baseline']} ({precision})",
                "ratio": ratio,
                "target": target,
                "passed": None if ratio is None else ratio >= target,
                "fraction_of_conv_peak": frac,
            }
        )
    ort = rows.get(spec_label(*SUBJECT, "onnxruntime"))
    if ort is not None:
        cell = ort.get("inference") or {}
        ratio = cell["ratio_vs_torch"]["median"] if cell.get("ratio_vs_torch") else None
        verdicts.append(
            {
                "check": f"{spec_label(*SUBJECT)} ONNX Runtime inference vs PyTorch eager ({precision})",
                "ratio": ratio,
                "target": ONNX_TARGET,
                "passed": None if ratio is None else ratio >= ONNX_TARGET,
                "error": ort.get("error"),
            }
        )
    return verdicts


def _verdict_lines(verdicts: list[dict[str, Any]]) -> str:
    lines = []
    for v in verdicts:
        status = {True: "PASS", False: "FAIL", None: "n/a"}[v["passed"]]
        ratio = "–" if v["ratio"] is None else f"{v['ratio']:.2f}x"
        extra = ""
        if v.get("fraction_of_conv_peak") is not None:
            extra = f", {100 * v['fraction_of_conv_peak']:.1f}% of conv peak"
        if v.get("error"):
            extra += f" ({v['error'].splitlines()[0]})"
        lines.append(f"- {status}: {v['check']}: {ratio} (target >= {v['target']}x){extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 64x64, batch 2, 1 repeat, 1 warm-up, 1 thread"
    )
    parser.add_argument("--models", default="focusnetpp:paper,focusnetpp:official,unet")
    parser.add_argument("--size", type=int, default=None, help="default 256 (64 with --quick)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 (2 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (1 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="default 2 (1 with --quick)")
    parser.add_argument(
        "--precisions",
        default="auto",
        help="comma-separated fp32,bf16; 'auto' (default): fp32, plus bf16 where the CPU runs it natively",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads per model (default: torch's; 1 with --quick)"
    )
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--onnx", action="store_true", help="add focusnetpp:paper@onnxruntime to the fp32 run")
    parser.add_argument("--include-monai", action="store_true", help="add MONAI BasicUNet if installed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/speed-<date>.json)")
    args = parser.parse_args(argv)

    quick = args.quick
    size = args.size or (64 if quick else 256)
    batch = args.batch_size or (2 if quick else 8)
    repeats = args.repeats or (1 if quick else 5)
    warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    conv_shape = (2, 64, 64, 64) if quick else (8, 128, 128, 128)
    min_time = 0.2 if quick else 1.0
    # Tiny steps with 2+ OpenMP threads crawl on a shared, oversubscribed CPU: one thread in --quick.
    threads = args.threads if args.threads is not None else (1 if quick else None)
    if args.precisions == "auto":
        precisions = ["fp32"] + (["bf16"] if bf16_support(args.device)["native"] else [])
    else:
        precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    specs = parse_model_specs(args.models)

    runs, notes = [], []
    for precision in precisions:
        run_specs = list(specs)
        if args.onnx and precision == "fp32":
            ok, why = _onnx_available()
            if ok:
                run_specs.append((*SUBJECT, "onnxruntime"))
                if (*SUBJECT, "torch") not in run_specs:
                    run_specs.append((*SUBJECT, "torch"))
            else:
                notes.append(f"ONNX Runtime row skipped: {why}")
        print(f"# {precision}: {size}x{size}, batch {batch}, {repeats} repeats", file=sys.stderr, flush=True)
        result = run_benchmark(
            run_specs,
            size=size,
            batch_size=batch,
            precision=precision,
            device=args.device,
            channels_last=args.channels_last,
            repeats=repeats,
            warmup=warmup,
            include_monai=args.include_monai,
            min_repeat_time=min_time,
            conv_shape=conv_shape,
            threads=threads,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        result["acceptance"] = acceptance(result)
        runs.append(result)
        print(format_markdown(result))
        print(_verdict_lines(result["acceptance"]) + "\n", flush=True)
    for note in notes:
        print(f"Note: {note}")

    out = args.out or ROOT / "benchmarks" / "results" / f"speed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"quick": quick, "runs": runs, "notes": notes}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    md = "\n".join(format_markdown(r) + "\n" + _verdict_lines(r["acceptance"]) + "\n" for r in runs)
    out.with_suffix(".md").write_text(md + "".join(f"\nNote: {n}\n" for n in notes))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
