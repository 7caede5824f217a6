"""The data-layer benchmark: prepare throughput, and cache batch loading against a training step.

Measures, on the real data under ``$FOCUSNET_DATA`` (default ``../shared/data``):

1. ``prepare`` throughput (images/s, wall time, cache size) on ``isic2018_task1`` (24 full-resolution
   JPEGs, up to ~3000x2000) and on ``isic2018_task1_512crop`` (400 pairs), at 256x256, into a fresh
   temporary folder; then the second, no-op ``prepare`` of each;
2. loading batches of 8 at 256x256 from the 512crop cache (memory-mapped uint8 -> normalised float32
   tensors, plus the copy to the device when it is a GPU), through ``PreparedDataset.batches`` and
   through ``PreparedDataset.loader`` (a ``DataLoader`` that reads whole batches);
3. one FocusNet++ (paper preset) training step at batch 8, 256x256: forward + ALL-HL loss + backward
   + Adam step, timed after a warm-up step, on the same machine.

The acceptance target is loading >= 10x faster than a training step. Prints a table and writes the
JSON to ``benchmarks/results/data-<date>.json`` (git-ignored) unless ``--out`` is given.

Usage:
    python benchmarks/bench_data.py                  # CPU: a few minutes on 2 cores
    python benchmarks/bench_data.py --device cuda    # GPU training step (20 timed steps)
    python benchmarks/bench_data.py --quick          # 1 timed step, fewer loading batches
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from focusnet.data.cache import open_cache, prepare  # noqa: E402
from focusnet.data.paths import data_root  # noqa: E402

TARGET_RATIO = 10.0
SETS = (("isic2018_task1", "24 full-res JPEGs"), ("isic2018_task1_512crop", "400 pairs at 512x512"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_prepare(name: str, out: Path, size: int, workers: int | None) -> dict:
    source = data_root() / name
    first = prepare("isic2018", source, out, size=size, workers=workers, progress=False)
    t0 = time.perf_counter()
    second = prepare("isic2018", source, out, size=size, workers=workers, progress=False)
    noop = time.perf_counter() - t0
    assert second["noop"], "the second prepare should be a no-op"
    return {
        "set": name,
        "count": first["count"],
        "seconds": first["seconds"],
        "images_per_s": first["images_per_s"],
        "cache_mb": round(first["cache_bytes"] / 1e6, 1),
        "noop_seconds": round(noop, 3),
        "workers": first["workers"],
        "cache": first["cache"],
        "splits": first["splits"],
    }


def bench_loading(cache: str, device: torch.device, batches: int, batch_size: int) -> dict:
    ds = open_cache(cache)
    times, it = [], None
    for k in range(batches + 1):
        if it is None:
            it = ds.batches("train", batch_size=batch_size, shuffle=True, seed=k, drop_last=True)
        t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = None
            continue
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        _sync(device)
        if k:  # the first batch pays for opening the memory map
            times.append(time.perf_counter() - t0)
    loader = ds.loader("train", batch_size=batch_size, shuffle=True, drop_last=True)
    dl_times = []
    t0 = time.perf_counter()
    for k, batch in enumerate(loader):
        batch["image"].to(device), batch["mask"].to(device)
        _sync(device)
        t1 = time.perf_counter()
        if k:
            dl_times.append(t1 - t0)
        t0 = t1
        if k >= min(batches, 30):
            break
    return {
        "batch_size": batch_size,
        "shape": list(x.shape),
        "batches_ms_median": round(1000 * statistics.median(times), 3),
        "batches_ms_p95": round(1000 * sorted(times)[int(0.95 * (len(times) - 1))], 3),
        "dataloader_ms_median": round(1000 * statistics.median(dl_times), 3),
        "n": len(times),
    }


def bench_step(cache: str, device: torch.device, steps: int, batch_size: int) -> dict:
    from focusnet.losses import ALLHybridLoss
    from focusnet.models import create_model

    ds = open_cache(cache)
    x, y = next(ds.batches("train", batch_size=batch_size, seed=0))
    x, y = x.to(device), y.to(device)
    model = create_model("focusnetpp", preset="paper").to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
    loss_fn = ALLHybridLoss()

    def step() -> float:
        _sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        _sync(device)
        return time.perf_counter() - t0

    warmup = [step() for _ in range(1 if device.type == "cpu" else 3)]
    times = [step() for _ in range(steps)]
    return {
        "model": "focusnetpp:paper",
        "batch_size": batch_size,
        "warmup_s": round(warmup[0], 3),
        "step_s_median": round(statistics.median(times), 4),
        "steps_s": [round(t, 4) for t in times],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="device of the training step (cpu, cuda)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="timed training steps (default: cpu 2, cuda 20)")
    p.add_argument("--load-batches", type=int, default=200, help="timed loading batches")
    p.add_argument("--workers", type=int, default=None, help="prepare threads (default: CPUs, at most 8)")
    p.add_argument("--quick", action="store_true", help="1 timed step, 50 loading batches")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/data-<date>.json)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    steps = args.steps or (1 if args.quick else (2 if device.type == "cpu" else 20))
    load_batches = 50 if args.quick else args.load_batches
    missing = [n for n, _ in SETS if not (data_root() / n).is_dir()]
    if missing:
        print(f"real data not found: {', '.join(str(data_root() / m) for m in missing)}", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="focusnet-bench-data-"))
    try:
        prep = [bench_prepare(name, tmp / "prepared", args.size, args.workers) for name, _ in SETS]
        cache = prep[1]["cache"]
        loading = bench_loading(cache, device, load_batches, args.batch_size)
        train = bench_step(cache, device, steps, args.batch_size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = train["step_s_median"] / (loading["batches_ms_median"] / 1000)
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "platform": platform.platform(),
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "prepare": prep,
        "loading": loading,
        "train_step": train,
        "step_over_batch_ratio": round(ratio, 1),
        "target_ratio": TARGET_RATIO,
        "pass": ratio >= TARGET_RATIO,
    }

    rows = []
    for r, (_, what) in zip(prep, SETS):
        rows.append((f"prepare {r['set']} ({what}) at {args.size}", f"{r['count']} pairs in {r['seconds']:.2f} s = "
                     f"{r['images_per_s']:.1f} images/s ({r['workers']} threads), cache {r['cache_mb']} MB"))
        rows.append((f"prepare {r['set']} again (no-op)", f"{r['noop_seconds']:.3f} s"))
    rows.append((f"cache batch of {args.batch_size} at {args.size}² (batches(), to {device.type})",
                 f"{loading['batches_ms_median']:.2f} ms median, {loading['batches_ms_p95']:.2f} ms p95 ({loading['n']} batches)"))
    rows.append((f"cache batch of {args.batch_size} (PreparedDataset.loader(), DataLoader, 0 workers)",
                 f"{loading['dataloader_ms_median']:.2f} ms median"))
    rows.append((f"FocusNet++ paper training step, batch {args.batch_size}, {args.size}² ({result['machine']['device']})",
                 f"{train['step_s_median'] * 1000:.1f} ms median of {steps} (warm-up {train['warmup_s']:.2f} s)"))
    rows.append(("training step / cache batch", f"{ratio:.0f}x (target >= {TARGET_RATIO:.0f}x): "
                 + ("PASS" if result["pass"] else "FAIL")))
    w = max(len(a) for a, _ in rows)
    print(f"| {'measurement'.ljust(w)} | result |")
    print(f"|{'-' * (w + 2)}|--------|")
    for a, b in rows:
        print(f"| {a.ljust(w)} | {b} |")

    out = args.out or ROOT / "benchmarks" / "results" / f"data-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
