"""Native training kernels (focusnet.kernels) against PyTorch's operators, in one process.

Times forward + backward of each kernel at FocusNet++'s full-resolution shapes against the same
maths in PyTorch operators, and a whole FocusNet++ training step with the kernels on and off
(``FOCUSNET_NATIVE_KERNELS``, read per call), alternating so both see the same machine state.
Prints a table and writes JSON.

    python benchmarks/bench_kernels.py --threads 1 --out kernels.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from focusnet.kernels import ENV_VAR, bn_leaky_relu, bn_leaky_relu_available
from focusnet.losses import ALLHybridLoss
from focusnet.models import create_model
from focusnet.models.layers import SqueezeExcite
from focusnet.models.resganet import block_tail
from focusnet.runtime import tune_cpu_allocator

CL = torch.channels_last


def _median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _native(on: bool) -> None:
    os.environ[ENV_VAR] = "1" if on else "0"


def _kernel_rows(shapes: list[tuple[int, int, int, int]], repeats: int) -> list[dict]:
    rows = []
    for shape in shapes:
        n, c, h, w = shape
        gen = torch.Generator().manual_seed(0)
        y = torch.randn(shape, generator=gen).contiguous(memory_format=CL).requires_grad_(True)
        skip = torch.randn(shape, generator=gen).contiguous(memory_format=CL).requires_grad_(True)
        grad = torch.randn(shape, generator=gen).contiguous(memory_format=CL)
        bn = torch.nn.BatchNorm2d(c)
        se = SqueezeExcite(c)  # the block's tail: the native kernel, or PyTorch's operators with it off
        cases = {
            "bn_leaky_relu": lambda: bn_leaky_relu(y, bn, 0.3).backward(grad),
            "residual_tail": lambda: block_tail(y, skip, bn, se, 0.3).backward(grad),
        }
        for name, fn in cases.items():
            times = {}
            for on in (True, False):
                _native(on)
                times[on] = _median_ms(fn, repeats)
            _native(True)
            rows.append({"kernel": name, "shape": list(shape), "native_ms": round(times[True], 2),
                         "pytorch_ms": round(times[False], 2), "speedup": round(times[False] / times[True], 3)})
    return rows


def _step_row(size: int, batch: int, pairs: int) -> dict:
    model = create_model("focusnetpp", preset="paper").train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = ALLHybridLoss()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=gen)
    target = (torch.rand(batch, 1, size, size, generator=gen) > 0.5).float()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), target).backward()
        optimizer.step()

    for on in (True, False):
        _native(on)
        step()
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(pairs):
        for on in (True, False):
            _native(on)
            start = time.perf_counter()
            step()
            times[on].append(time.perf_counter() - start)
    _native(True)
    ratios = [off / on for on, off in zip(times[True], times[False])]
    return {"size": size, "batch": batch, "pairs": pairs,
            "native_ms": round(1e3 * statistics.median(times[True]), 1),
            "pytorch_ms": round(1e3 * statistics.median(times[False]), 1),
            "speedup_paired_median": round(statistics.median(ratios), 3)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per kernel case")
    p.add_argument("--pairs", type=int, default=6, help="alternating on/off training steps")
    p.add_argument("--size", type=int, default=256, help="training-step input size")
    p.add_argument("--quick", action="store_true", help="smoke test: small shapes, 2 repeats, 1 pair at 32x32")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: print only)")
    args = p.parse_args()
    if not bn_leaky_relu_available():
        print("the native kernels are unavailable here (no C compiler, or FOCUSNET_NATIVE_KERNELS=0)")
        return 1
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    if args.quick:
        shapes, args.repeats, args.pairs, args.size = [(2, 8, 16, 16)], 2, 1, 32
    else:
        shapes = [(8, 32, 256, 256), (8, 64, 128, 128)]
    result = {"threads": args.threads, "torch": torch.__version__,
              "kernels": _kernel_rows(shapes, args.repeats), "train_step": _step_row(args.size, 8, args.pairs)}
    print(f"native kernels vs PyTorch operators, forward + backward, {args.threads} thread(s), median ms")
    print("| kernel | shape | native | PyTorch | speed-up |\n|---|---|---:|---:|---:|")
    for r in result["kernels"]:
        print(f"| {r['kernel']} | {'x'.join(map(str, r['shape']))} | {r['native_ms']} | {r['pytorch_ms']} | {r['speedup']} |")
    s = result["train_step"]
    print(f"| FocusNet++ paper training step | 8x3x{s['size']}x{s['size']} | {s['native_ms']} | {s['pytorch_ms']} "
          f"| {s['speedup_paired_median']} (paired) |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
