"""Real-data training benchmark: FocusNet++ (paper preset) on ISIC 2018 at 128x128, under a time budget.

On ``$FOCUSNET_DATA/isic2018_task1_512crop`` (400 pairs; default ``../shared/data``): the ids are
sorted and permuted with ``numpy.random.default_rng(--seed)``; the first 300 are train, the next
50 val, the next 50 test. The split is written as JSON (beside the results, and used as the
``data.split`` file of the run, so the prepared cache and the run's ``split.json`` agree).

Training goes through the engine (:class:`~focusnet.engine.config.TrainConfig` +
:func:`~focusnet.engine.train.train`): Adam, ``--lr`` (default 1e-3, constant schedule unless
``--lr-schedule``), batch ``--batch-size``, optional random flips (``--flips``), and the best
weights by validation loss. ``--minutes`` stops training after that much wall time (the engine's
``max_minutes``; the best-val weights are kept); ``--epochs`` is the epoch cap. The run's best
weights are then scored on the 50 test images with :func:`~focusnet.engine.evaluate.evaluate_run`
(model and original resolution).

Prints epochs, wall time and per-image mean Dice; writes JSON to
``benchmarks/results/isic-train-<date>.json`` (``--out`` to change).

Usage:
    python benchmarks/bench_isic_train.py --minutes 30 --device cuda      # the real benchmark
    python benchmarks/bench_isic_train.py --smoke                         # 1 epoch, 8/4/4 images, 32x32
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from focusnet.data.paths import data_root  # noqa: E402
from focusnet.data.readers import get_reader  # noqa: E402
from focusnet.engine.config import TrainConfig  # noqa: E402
from focusnet.engine.evaluate import evaluate_run  # noqa: E402
from focusnet.engine.train import train  # noqa: E402
from focusnet.runtime import tune_cpu_allocator  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_common import add_isic_protocol_args, budget_kwargs, epochs_run  # noqa: E402

DATASET = "isic2018_task1_512crop"
RESULTS = ROOT / "benchmarks" / "results"


def seeded_split(ids: list[str], counts: tuple[int, int, int], seed: int) -> dict[str, list[str]]:
    """Sorted ids, permuted with ``default_rng(seed)``: the first ``counts[0]`` train, then val, then test."""
    ids = sorted(ids)
    need = sum(counts)
    if need > len(ids):
        raise SystemExit(f"asked for {need} images ({counts}) but the data set has {len(ids)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    picked = [ids[i] for i in order[:need]]
    a, b = counts[0], counts[0] + counts[1]
    return {"train": sorted(picked[:a]), "val": sorted(picked[a:b]), "test": sorted(picked[b:need])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_isic_protocol_args(p, DATASET, minutes=30.0, threads=None)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine", "paper_step"])
    p.add_argument("--bn-momentum", type=float, default=0.1,
                   help="BatchNorm momentum (PyTorch convention). 0.1 for short budgets: the Keras 0.01 of the paper's 50-epoch\n"
                   "                   protocol leaves the running statistics far behind the weights for hundreds of steps")
    p.add_argument("--flips", action="store_true", help="random horizontal and vertical flips")
    p.add_argument("--monitor", default="val_loss", choices=["val_loss", "val_dice"],
                   help="what picks the best weights (default val_loss, the paper's)")
    p.add_argument("--loss", action="append", default=[], metavar="KEY=VALUE",
                   help="ALL-HL keyword (repeatable), e.g. --loss fp_weight=0.5 --loss fn_weight=0.5")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels_last memory format (default on: same maths, faster on CPU)")
    p.add_argument("--preset", default="paper")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--work", type=Path, default=None, help="folder for the cache and run (default benchmarks/results/work)")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/isic-train-<date>.json)")
    p.add_argument("--smoke", action="store_true", help="tiny check: 8/4/4 images, 32x32, 1 epoch, no budget")
    args = p.parse_args(argv)
    tune_cpu_allocator()  # as the focusnet command does (FOCUSNET_ALLOCATOR_TUNING=0: off)
    if args.smoke:
        args.train, args.val, args.test, args.size, args.epochs, args.minutes = 8, 4, 4, 32, 1, None

    stamp = time.strftime("%Y%m%d-%H%M%S")
    source = (args.source or data_root() / DATASET).resolve()
    work = (args.work or RESULTS / "work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    ids = get_reader("isic2018").list_items(source).ids
    split = seeded_split(ids, (args.train, args.val, args.test), args.seed)
    split_file = work / f"isic-split-{args.train}-{args.val}-{args.test}-seed{args.seed}.json"
    split_file.write_text(json.dumps(split, indent=1) + "\n")
    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    extra, budget_note = budget_kwargs(args.minutes)
    print(f"ISIC 2018 {source}: {len(ids)} pairs; split {args.train}/{args.val}/{args.test} -> {split_file}")
    print(f"budget: {budget_note}")

    loss: dict[str, float | str] = {"reduction": "batch"}
    for item in args.loss:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--loss expects KEY=VALUE, got {item!r}")
        loss[key.strip()] = value.strip() if key.strip() == "reduction" else float(value)
    config = TrainConfig(
        model="focusnetpp",
        preset=args.preset,
        data={"format": "isic2018", "source": str(source), "split": str(split_file), "cache_dir": str(work / "prepared")},
        size=args.size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        augment={"enabled": bool(args.flips), "hflip": 0.5, "vflip": 0.5, "rot90": 0.0},
        loss=loss,
        monitor=args.monitor,
        seed=args.seed,
        num_threads=args.threads,
        out_dir=str(work / f"isic-{args.preset}-{args.size}-{stamp}"),
        accelerator=accelerator,
        precision=args.precision,
        model_kwargs={"bn_momentum": args.bn_momentum},
        channels_last=args.channels_last,
        progress_bar=sys.stderr.isatty(),
        **extra,
    )
    t0 = time.perf_counter()
    run = train(config)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    summary = evaluate_run(run, split="test", device=args.device)
    eval_s = time.perf_counter() - t1

    epochs = epochs_run(run)
    model_dice = summary["model_resolution"]["mean"]["dice"]
    orig_dice = summary["original_resolution"]["mean"]["dice"]
    result = {
        "benchmark": "isic-train",
        "date": stamp,
        "data": str(source),
        "split_file": str(split_file),
        "counts": {"train": args.train, "val": args.val, "test": args.test},
        "model": "focusnetpp",
        "preset": args.preset,
        "size": args.size,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "flips": bool(args.flips),
        "loss": loss,
        "monitor": args.monitor,
        "precision": args.precision,
        "threads": args.threads,
        "budget": budget_note,
        "epochs": epochs,
        "train_wall_s": round(train_s, 1),
        "eval_wall_s": round(eval_s, 1),
        "test_mean_dice_model_res": model_dice,
        "test_mean_dice_original_res": orig_dice,
        "test": {k: {m: summary[k][m] for m in ("mean", "std", "pooled", "thresholded_jaccard", "count")}
                 for k in ("model_resolution", "original_resolution")},
        "run": str(run),
        "device": torch.cuda.get_device_name(0) if accelerator == "gpu" and torch.cuda.is_available() else platform.processor() or "cpu",
        "torch": torch.__version__,
    }
    out = args.out or RESULTS / f"isic-train-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"epochs {epochs}, training wall time {train_s:.1f} s (+ evaluation {eval_s:.1f} s)")
    print(f"test per-image mean Dice: {model_dice:.4f} at {args.size}x{args.size}, {orig_dice:.4f} at original resolution")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
