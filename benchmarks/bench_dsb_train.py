"""Real-data training benchmark: FocusNet++ (lite preset) on DSB 2018 nuclei, scored as in Table 3.

On ``$FOCUSNET_DATA/dsb2018`` (``stage1_train/<id>/images`` + ``masks``; default
``../shared/data``), with the ``paper-test`` split (sorted ids permuted with ``--seed``: the
paper's 540/130 train/val proportions with a test part of the validation size, scaled to the
data set's size; see :func:`focusnet.data.splits.dsb_paper_split`). Training goes through the
engine (:class:`~focusnet.engine.config.TrainConfig` + :func:`~focusnet.engine.train.train`),
``--minutes`` is the wall-time budget (the engine's ``max_minutes``; best-val weights kept) and
``--epochs`` the epoch cap. The best weights are scored on the test split with
:func:`~focusnet.engine.evaluate.evaluate_run`; the table shows per-image mean precision, recall,
Dice and Jaccard (Table 3's columns) at model and at original resolution.

``--limit N`` keeps only the first N ids of each split (sorted), written as a JSON split file; for
smoke runs.

Usage:
    python benchmarks/bench_dsb_train.py --minutes 30 --device cuda
    python benchmarks/bench_dsb_train.py --smoke          # 1 epoch, 8/4/4 images, 32x32
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

import torch  # noqa: E402

from focusnet.data.paths import data_root  # noqa: E402
from focusnet.data.readers import get_reader  # noqa: E402
from focusnet.data.splits import dsb_paper_split  # noqa: E402
from focusnet.engine.config import TrainConfig  # noqa: E402
from focusnet.engine.evaluate import evaluate_run  # noqa: E402
from focusnet.engine.train import train  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_common import budget_kwargs, epochs_run  # noqa: E402

DATASET = "dsb2018"
RESULTS = ROOT / "benchmarks" / "results"
TABLE3 = ("precision", "recall", "dice", "jaccard")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=None, help=f"DSB 2018 folder (default $FOCUSNET_DATA/{DATASET})")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of training")
    p.add_argument("--limit", type=int, default=None, help="keep the first N ids of each split")
    p.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget (default 30)")
    p.add_argument("--epochs", type=int, default=50, help="epoch cap (default 50, the paper's)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine", "paper_step"])
    p.add_argument("--bn-momentum", type=float, default=0.1,
                   help="BatchNorm momentum (PyTorch convention). 0.1 for short budgets: the Keras 0.01 of the paper's 50-epoch\n"
                   "                   protocol leaves the running statistics far behind the weights for hundreds of steps")
    p.add_argument("--flips", action="store_true", help="random horizontal and vertical flips")
    p.add_argument("--preset", default="lite")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--work", type=Path, default=None, help="folder for the cache and run (default benchmarks/results/work)")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/dsb-train-<date>.json)")
    p.add_argument("--smoke", action="store_true", help="tiny check: 8/4/4 images, 32x32, 1 epoch, no budget")
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.epochs, args.minutes = 32, 1, None
        args.limit = args.limit or 4

    stamp = time.strftime("%Y%m%d-%H%M%S")
    source = (args.source or data_root() / DATASET).resolve()
    work = (args.work or RESULTS / "work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    ids = get_reader("dsb2018").list_items(source).ids
    split_spec = "paper-test"
    if args.limit:
        full = dsb_paper_split(ids, seed=args.seed, with_test=True)
        limited = {k: sorted(v)[: args.limit * (2 if k == "train" else 1)] for k, v in full.items()}
        split_file = work / f"dsb-paper-test-seed{args.seed}-limit{args.limit}.json"
        split_file.write_text(json.dumps(limited, indent=1) + "\n")
        split_spec = str(split_file)
    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    extra, budget_note = budget_kwargs(args.minutes)
    print(f"DSB 2018 {source}: {len(ids)} cases; split {split_spec}; budget: {budget_note}")

    config = TrainConfig(
        model="focusnetpp",
        preset=args.preset,
        data={"format": "dsb2018", "source": str(source), "split": split_spec, "split_seed": args.seed,
              "cache_dir": str(work / "prepared")},
        size=args.size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        augment={"enabled": bool(args.flips), "hflip": 0.5, "vflip": 0.5, "rot90": 0.0},
        seed=args.seed,
        num_threads=args.threads,
        out_dir=str(work / f"dsb-{args.preset}-{args.size}-{stamp}"),
        accelerator=accelerator,
        precision=args.precision,
        model_kwargs={"bn_momentum": args.bn_momentum},
        progress_bar=sys.stderr.isatty(),
        **extra,
    )
    t0 = time.perf_counter()
    run = train(config)
    train_s = time.perf_counter() - t0
    summary = evaluate_run(run, split="test", device=args.device)
    split = json.loads((run / "split.json").read_text())

    epochs = epochs_run(run)
    table = {
        key: {m: summary[key]["mean"][m] for m in TABLE3}
        for key in ("model_resolution", "original_resolution")
    }
    result = {
        "benchmark": "dsb-train",
        "date": stamp,
        "data": str(source),
        "split": split_spec,
        "counts": {k: len(v) for k, v in split.items()},
        "model": "focusnetpp",
        "preset": args.preset,
        "size": args.size,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "flips": bool(args.flips),
        "budget": budget_note,
        "epochs": epochs,
        "train_wall_s": round(train_s, 1),
        "table3_test_mean": table,
        "test": {k: {m: summary[k][m] for m in ("mean", "std", "pooled", "thresholded_jaccard", "count")}
                 for k in ("model_resolution", "original_resolution")},
        "run": str(run),
        "device": torch.cuda.get_device_name(0) if accelerator == "gpu" and torch.cuda.is_available() else platform.processor() or "cpu",
        "torch": torch.__version__,
    }
    out = args.out or RESULTS / f"dsb-train-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"epochs {epochs}, training wall time {train_s:.1f} s; test images {result['counts']['test']}")
    print(f"{'resolution':<22}" + "".join(f"{m:>11}" for m in TABLE3))
    for key, row in table.items():
        print(f"{key.replace('_', ' '):<22}" + "".join(f"{row[m]:>11.4f}" for m in TABLE3))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
