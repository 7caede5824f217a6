"""OpenMP's wait policy and focusnet's CPU speed, on an idle machine and beside other busy processes.

PyTorch's CPU operators share out their work on libgomp's thread pool: every parallel operator ends
at a barrier where the threads that finished first wait for the last. By default libgomp's waiting
threads spin (up to ``GOMP_SPINCOUNT``, 300,000 iterations) before they sleep. When another process
keeps the cores busy, the thread being waited for may not be running, and the spinning waiters hold
the cores it needs: each operator can then cost a scheduler time slice. A FocusNet++ forward pass
runs about a thousand operators (a U-Net a few dozen), so it suffers most. With
``OMP_WAIT_POLICY=PASSIVE`` waiting threads sleep at once.

Each setting runs in a fresh Python process (libgomp reads its variables when it loads, with torch):

* ``default``: neither variable set, and ``FOCUSNET_OMP_WAIT=default`` (focusnet would set PASSIVE
  otherwise when it is imported before torch; :func:`focusnet.runtime.set_omp_wait_policy`);
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE``;
* ``spin10k``: ``GOMP_SPINCOUNT=10000`` (a short spin, then sleep).

Each process times, for every model, a training step (zero_grad, forward, ALL-HL loss, backward,
Adam; ``--batch`` images) and an inference pass (``--infer-batch`` images, ``torch.inference_mode``),
median of ``--steps`` after ``--warmup``, at ``--size``, with ``--threads`` torch threads. A
measurement stops early after ``--max-seconds`` (the slowest busy cases; the count is recorded).
``--busy N`` runs N pure-Python busy loops beside the measuring process (default: one per core; 0
measures the idle machine only). Rounds interleave the settings. The table gives each setting's
median time per step with its range over rounds and its ratio to ``default`` in the same load.

Usage (from the repository root)::

    python benchmarks/bench_wait_policy.py --rounds 3                 # idle and busy, JSON in benchmarks/results
    python benchmarks/bench_wait_policy.py --loads idle --rounds 5    # the idle machine only
    python benchmarks/bench_wait_policy.py --loads busy --rounds 1 --max-seconds 30
    python benchmarks/bench_wait_policy.py --smoke                    # tiny shapes, one round
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

SETTINGS: dict[str, dict[str, str]] = {
    "default": {"FOCUSNET_OMP_WAIT": "default"},  # focusnet leaves libgomp's default (it sets PASSIVE otherwise)
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
}
MODELS = ("focusnetpp:paper", "focusnetpp:lite[norm=instance;head_norm=batch;ensemble=2]", "unet", "monai_basicunet")

CHILD = r"""
import json, os, sys, time, torch
from focusnet import create_model
from focusnet.losses import ALLHybridLoss
from focusnet.models.spec import ModelSpec
size, batch, infer_batch, threads, warmup, steps = map(int, sys.argv[1:7])
max_seconds = float(sys.argv[7])
torch.set_num_threads(threads)
out = {}
for text in sys.argv[8:]:
    torch.manual_seed(0)
    if text == "monai_basicunet":
        from monai.networks.nets import BasicUNet
        model = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1)
    else:
        spec = ModelSpec.parse(text)
        model = create_model(spec.model, **spec.create_kwargs())
    loss_fn, opt = ALLHybridLoss(), torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.rand(batch, 3, size, size), (torch.rand(batch, 1, size, size) > 0.5).float()
    xi = torch.rand(infer_batch, 3, size, size)

    def train():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    def infer():
        with torch.inference_mode():
            model(xi)

    row = {}
    for phase, fn, mode in (("train", train, model.train), ("infer", infer, model.eval)):
        mode()
        times, start = [], time.perf_counter()
        for i in range(warmup + steps):
            t = time.perf_counter()
            fn()
            if i >= warmup:
                times.append(time.perf_counter() - t)
            if time.perf_counter() - start > max_seconds and times:
                break
        row[phase] = times
    out[text] = row
env = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
print(json.dumps({"models": out, "env": env}))
"""

BUSY = "while True:\n    pass\n"


def run_child(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "FOCUSNET_OMP_WAIT")}
    env.update(SETTINGS[setting], PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", CHILD, str(args.size), str(args.batch), str(args.infer_batch), str(args.threads),
           str(args.warmup), str(args.steps), str(args.max_seconds), *args.models]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"the {setting} process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(load: str, args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """``{setting: [child result per round]}`` under ``load`` (``idle`` or ``busy``)."""
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy if load == "busy" else 0)]
    try:
        time.sleep(0.5 if busy else 0.0)
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in args.settings}
        for r in range(args.rounds):
            for setting in args.settings:
                runs[setting].append(run_child(setting, args))
                print(f"  {load} round {r + 1}/{args.rounds}: {setting} done", file=sys.stderr, flush=True)
        return runs
    finally:
        for p in busy:
            p.kill()
            p.wait()


def summarise(runs: dict[str, list[dict[str, Any]]], models: list[str]) -> list[dict[str, Any]]:
    """One row per (model, phase): each setting's median step (median over rounds of each round's median)."""
    rows = []
    for model in models:
        for phase in ("train", "infer"):
            row: dict[str, Any] = {"model": model, "phase": phase}
            for setting, results in runs.items():
                per_round = [statistics.median(res["models"][model][phase]) for res in results]
                row[setting] = {"median_s": statistics.median(per_round), "min_s": min(per_round),
                                "max_s": max(per_round), "rounds": per_round,
                                "steps": [len(res["models"][model][phase]) for res in results],
                                "env": results[0]["env"]}
            base = row.get("default", {}).get("median_s")
            for setting in runs:
                row[setting]["vs_default"] = row[setting]["median_s"] / base if base else None
            rows.append(row)
    return rows


def table(load: str, rows: list[dict[str, Any]], settings: list[str]) -> str:
    head = "| load | model | phase | " + " | ".join(f"{s} ms (range)" for s in settings) + " | " + \
        " | ".join(f"{s} / default" for s in settings if s != "default") + " |"
    lines = [head, "|" + "---|" * (3 + len(settings) + len(settings) - 1)]
    for r in rows:
        cells = [f"{1000 * r[s]['median_s']:.0f} ({1000 * r[s]['min_s']:.0f}–{1000 * r[s]['max_s']:.0f})"
                 for s in settings]
        ratios = [f"{r[s]['vs_default']:.2f}" for s in settings if s != "default"]
        lines.append(f"| {load} | {r['model']} | {r['phase']} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--infer-batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--max-seconds", type=float, default=60.0, help="cap per measurement (default 60)")
    p.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy processes beside it (0: idle only)")
    p.add_argument("--loads", nargs="+", default=["idle", "busy"], choices=["idle", "busy"],
                   help="which loads to measure (default both)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--smoke", action="store_true", help="tiny shapes, one round, two models")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.smoke:
        args.models = ["focusnetpp:lite", "unet[base_width=4]"]
        args.size, args.batch, args.infer_batch, args.steps, args.warmup, args.rounds = 32, 2, 2, 2, 1, 1
    if "default" not in args.settings:
        args.settings.insert(0, "default")
    result: dict[str, Any] = {"benchmark": "wait-policy", "size": args.size, "batch": args.batch,
                              "infer_batch": args.infer_batch, "threads": args.threads, "busy": args.busy,
                              "rounds": args.rounds, "steps": args.steps, "cpus": os.cpu_count(), "loads": {}}
    loads = [load for load in args.loads if load == "idle" or args.busy > 0]
    for load in loads:
        rows = summarise(measure(load, args), args.models)
        result["loads"][load] = rows
        print(table(load, rows, args.settings), flush=True)
    out = args.out or RESULTS / f"wait-policy-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
