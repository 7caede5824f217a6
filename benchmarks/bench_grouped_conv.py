"""FocusNet++'s grouped 3x3 convolutions (4 groups) against a dense block-diagonal convolution of the same function.

For each level of the ``paper`` preset at ``--size`` input (8x32x128², 8x64x64², ... at 128), times
forward and forward + backward of ``conv2d(groups=4)`` and of a dense ``conv2d`` whose weight is
block-diagonal (off-diagonal blocks zero: the same outputs), channels_last fp32, batch 8, and the
grouped backward split into its input and weight gradients. CPU time (``time.process_time``) of
one thread, median of ``--repeats``, so other work on the machine does not count.

Usage:
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_grouped_conv.py --size 128
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

WIDTHS = (32, 64, 128, 192, 256)


def _time(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    values = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        values.append(time.process_time() - t)
    return statistics.median(values) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    print("| C x H² | d | grouped fwd | grouped fwd+bwd | bwd input | bwd weight | dense fwd | dense fwd+bwd | dense / grouped (fwd+bwd) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for level, c in enumerate(WIDTHS):
        h = args.size >> level
        d = c // 4
        x = torch.randn(8, c, h, h).contiguous(memory_format=torch.channels_last).requires_grad_()
        w = (torch.randn(c, d, 3, 3) * 0.1).requires_grad_()
        b = torch.zeros(c, requires_grad=True)
        g = torch.randn(8, c, h, h).contiguous(memory_format=torch.channels_last)
        dense = torch.zeros(c, c, 3, 3)
        for i in range(4):
            dense[i * d:(i + 1) * d, i * d:(i + 1) * d] = w.detach()[i * d:(i + 1) * d]
        dense.requires_grad_()

        def grad(mask: tuple[bool, bool, bool]) -> None:
            torch.ops.aten.convolution_backward(g, x.detach(), w.detach(), None, (1, 1), (1, 1), (1, 1), False, (0, 0), 4, mask)

        def fwd(weight: torch.Tensor, groups: int) -> None:
            with torch.no_grad():
                F.conv2d(x, weight, b, padding=1, groups=groups)

        def both(weight: torch.Tensor, groups: int) -> None:
            F.conv2d(x, weight, b, padding=1, groups=groups).backward(g)

        r = {"channels": c, "size": h, "group_channels": d,
             "grouped_fwd_ms": _time(lambda: fwd(w, 4), args.repeats), "grouped_fwd_bwd_ms": _time(lambda: both(w, 4), args.repeats),
             "grouped_bwd_input_ms": _time(lambda: grad((True, False, False)), args.repeats),
             "grouped_bwd_weight_ms": _time(lambda: grad((False, True, False)), args.repeats),
             "dense_fwd_ms": _time(lambda: fwd(dense, 1), args.repeats), "dense_fwd_bwd_ms": _time(lambda: both(dense, 1), args.repeats)}
        rows.append(r)
        print(f"| {c} x {h}² | {d} | {r['grouped_fwd_ms']:.1f} | {r['grouped_fwd_bwd_ms']:.1f} | {r['grouped_bwd_input_ms']:.1f} | "
              f"{r['grouped_bwd_weight_ms']:.1f} | {r['dense_fwd_ms']:.1f} | {r['dense_fwd_bwd_ms']:.1f} | "
              f"{r['dense_fwd_bwd_ms'] / r['grouped_fwd_bwd_ms']:.2f} |")
    if args.out:
        args.out.write_text(json.dumps({"size": args.size, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
