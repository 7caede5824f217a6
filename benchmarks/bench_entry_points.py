"""One FocusNet++ training step through three entry points: a user's loop, `focusnet benchmark`, `focusnet train`.

Issue 15 found a plain loop around ``focusnet.create_model`` at 0.60-0.67x the CLI's speed (the CLI
tuned glibc's allocator, the library did not). This script measures the step time of each entry
point in the same run, fp32 on the CPU, same model, batch and threads:

* ``loop``: a fresh Python process with the code a researcher writes (``create_model``,
  :class:`~focusnet.losses.ALLHybridLoss`, Adam, random images), nothing else; median of the
  timed steps after warm-up;
* ``benchmark``: ``focusnet benchmark --phases train`` (its median img/s, as step time);
* ``train``: ``focusnet train`` on a synthetic data set of ``--steps`` batches, run for 1 and for
  ``1 + --epochs`` epochs; the difference of the two wall times over the extra steps (start-up,
  data preparation and the one-epoch run's work cancel). Its validation split is 2 images.

``--model`` takes a model spec (``focusnetpp:lite[norm=instance]``, the CPU-budget recipe's network;
default ``focusnetpp:paper``). Rounds repeat the three (``--rounds``), interleaved; the table gives each entry point's median step
time with its range and its ratio to the loop's, per round. JSON goes to ``--out``.

Usage:
    python benchmarks/bench_entry_points.py --size 256 --threads 2 --rounds 3
    python benchmarks/bench_entry_points.py --size 128 --steps 12 --model "focusnetpp:lite[norm=instance]"
    python benchmarks/bench_entry_points.py --smoke
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FOCUSNET = [sys.executable, "-m", "focusnet.cli"]

LOOP = r"""
import json, sys, time, torch
from focusnet import create_model
from focusnet.losses import ALLHybridLoss
from focusnet.models.spec import ModelSpec
size, batch, threads, warmup, steps = map(int, sys.argv[1:6])
spec = ModelSpec.parse(sys.argv[6])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = create_model(spec.model, **spec.create_kwargs()).train()
loss_fn = ALLHybridLoss()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.rand(batch, 3, size, size)
y = (torch.rand(batch, 1, size, size) > 0.5).float()
times = []
for i in range(warmup + steps):
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    opt.step()
    if i >= warmup:
        times.append(time.perf_counter() - t)
print(json.dumps({"step_s": sorted(times)[len(times) // 2]}))
"""


def _env(threads: int) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS=str(threads))


def time_loop(args: argparse.Namespace) -> float:
    out = subprocess.run([sys.executable, "-c", LOOP, str(args.size), "8", str(args.threads), "2", str(args.steps),
                          args.spec.text],
                         capture_output=True, text=True, check=True, env=_env(args.threads))
    return json.loads(out.stdout.strip().splitlines()[-1])["step_s"]


def time_benchmark(args: argparse.Namespace, work: Path) -> float:
    out = work / "bench.json"
    subprocess.run([*FOCUSNET, "benchmark", "--models", args.spec.text, "--baseline", "none", "--phases", "train",
                    "--size", str(args.size), "--threads", str(args.threads), "--repeats", "3", "--warmup", "2", "--quiet",
                    "--json-out", str(out)], capture_output=True, text=True, check=True, env=_env(args.threads))
    rows = json.loads(out.read_text())["rows"]
    return rows[0]["train"]["seconds_per_step"]["median"]


def _train_once(args: argparse.Namespace, data: Path, work: Path, epochs: int, tag: str) -> float:
    run = work / f"run-{tag}-{epochs}"
    spec = args.spec
    t = time.perf_counter()
    subprocess.run([*FOCUSNET, "train", "configs/demo.yaml", f"data.source={data}", "data.format=folder",
                    f"data.split={data / 'split.json'}", f"data.cache_dir={work / 'cache'}", f"size={args.size}",
                    f"epochs={epochs}", "batch_size=8", f"num_threads={args.threads}", "progress_bar=false",
                    f"model={spec.model}", f"preset={spec.preset or 'null'}",
                    f"model_kwargs={json.dumps(dict(spec.kwargs))}", "augment.enabled=false", "--out", str(run)],
                   capture_output=True, text=True, check=True, cwd=ROOT, env=_env(args.threads))
    return time.perf_counter() - t


def time_train(args: argparse.Namespace, data: Path, work: Path, tag: str) -> float:
    one = _train_once(args, data, work, 1, tag)
    more = _train_once(args, data, work, 1 + args.epochs, tag)
    return (more - one) / (args.epochs * args.steps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--steps", type=int, default=6, help="timed loop steps, and batches per training epoch (default 6)")
    p.add_argument("--epochs", type=int, default=2, help="extra epochs of the longer focusnet train run (default 2)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model", default="focusnetpp:paper", help="model spec, NAME[:PRESET][[KEY=VALUE;...]]")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--smoke", action="store_true", help="64x64, 2 steps, 1 extra epoch, 1 round")
    args = p.parse_args(argv)
    from focusnet.models.spec import ModelSpec

    args.spec = ModelSpec.parse(args.model, "--model")
    if args.smoke:
        args.size, args.steps, args.epochs, args.rounds = 64, 2, 1, 1
    from focusnet.data.synthetic import generate

    results: dict[str, list[float]] = {"loop": [], "benchmark": [], "train": []}
    with tempfile.TemporaryDirectory(prefix="fn-entry-") as tmp:
        work = Path(tmp)
        data = work / "data"
        ids = generate("lesions", data, count=args.steps * 8 + 2, size=args.size)
        (data / "split.json").write_text(json.dumps({"train": ids[:-2], "val": ids[-2:], "test": []}))
        for r in range(args.rounds):
            results["loop"].append(time_loop(args))
            results["benchmark"].append(time_benchmark(args, work))
            results["train"].append(time_train(args, data, work, f"r{r}"))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s/step" for k, v in results.items()), file=sys.stderr, flush=True)
    table = ["| entry point | step s, median (range) | x loop, median of rounds (range) |", "|---|---|---|"]
    summary = {}
    for name, values in results.items():
        ratios = [v / loop for v, loop in zip(values, results["loop"])]
        summary[name] = {"step_s": values, "median_step_s": statistics.median(values), "ratio_to_loop": ratios,
                         "median_ratio": statistics.median(ratios)}
        table.append(f"| {name} | {statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f}) | "
                     f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) |")
    print(f"### {args.spec.text}, {args.size}x{args.size}, batch 8, fp32, {args.threads} threads, {args.rounds} rounds")
    print("\n".join(table))
    out = args.out or RESULTS / f"entry-points-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.spec.text, "size": args.size, "threads": args.threads, "rounds": args.rounds, "results": summary}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
