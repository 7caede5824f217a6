"""The native kernels built with and without ``-fno-trapping-math``, timed in one process (A/B).

Without the flag GCC leaves the LeakyReLU-select loops scalar unless AVX-512 masking makes the
speculation safe; run this with ``FOCUSNET_KERNEL_MARCH=x86-64-v3`` (and, for PyTorch's own kernels,
``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``) to see what an AVX2-only CPU gets. Times
BatchNorm + LeakyReLU forward + backward at ``--shape``, alternating the two builds, and prints the
median (min-max) of each; JSON with ``--out``.

Usage:
    FOCUSNET_KERNEL_MARCH=x86-64-v3 python benchmarks/bench_kernel_flags.py --threads 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import focusnet.kernels as kernels

FLAG = "-fno-trapping-math"


def _build(flags: list[str]):
    kernels.build._FLAGS[:] = flags
    kernels.build._LIB, kernels.build._TRIED = None, False
    lib = kernels.native_library()
    if lib is None:
        raise SystemExit(f"the kernels could not be built: {kernels.build._ERROR}")
    return lib


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shape", default="8,32,128,128", help="N,C,H,W (default 8,32,128,128)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    n, c, h, w = (int(v) for v in args.shape.split(","))
    shipped = list(kernels.build._FLAGS)
    builds = {"without " + FLAG: _build([f for f in shipped if f != FLAG]), "with " + FLAG: _build(shipped)}
    bn = torch.nn.BatchNorm2d(c)
    x = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last).requires_grad_()
    g = torch.randn_like(x)
    times: dict[str, list[float]] = {k: [] for k in builds}
    for _ in range(args.repeats + 1):  # the first round warms up
        for name, lib in builds.items():
            kernels.build._LIB = lib
            t = time.perf_counter()
            kernels.bn_leaky_relu(x, bn, 0.3).backward(g)
            times[name].append((time.perf_counter() - t) * 1e3)
    print(f"BatchNorm + LeakyReLU forward + backward, {args.shape}, {args.threads} threads, -march={kernels.kernel_march()}")
    print("| build | ms, median (min–max) |\n|---|---|")
    result = {}
    for name, values in times.items():
        values = values[1:]
        result[name] = {"median_ms": statistics.median(values), "min_ms": min(values), "max_ms": max(values)}
        print(f"| {name} | {statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f}) |")
    if args.out:
        args.out.write_text(json.dumps({"shape": args.shape, "threads": args.threads, "march": kernels.kernel_march(),
                                        "builds": result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
