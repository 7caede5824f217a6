"""Helpers shared by the real-data training benchmarks (``bench_isic_train.py``, ``bench_dsb_train.py``,
``bench_monai_basicunet.py``)."""
from __future__ import annotations

import argparse
import csv
from pathlib import Path


def add_isic_protocol_args(p: argparse.ArgumentParser, dataset: str, minutes: float, threads: int | None) -> None:
    """The arguments that fix the ISIC budget protocol, shared so both sides of a comparison agree:
    data, split counts, seed, image size, time budget, epochs, batch size and learning rate."""
    p.add_argument("--source", type=Path, default=None, help=f"ISIC folder (default $FOCUSNET_DATA/{dataset})")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--train", type=int, default=300)
    p.add_argument("--val", type=int, default=50)
    p.add_argument("--test", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="seed of the image selection and of training")
    p.add_argument("--minutes", type=float, default=minutes,
                   help=f"training wall-time budget, checked after each epoch (default {minutes:g})")
    p.add_argument("--epochs", type=int, default=1000, help="epoch cap (default 1000: the budget decides)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=threads,
                   help="torch CPU threads" + (f" (default {threads})" if threads else ""))
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def epochs_run(run: Path) -> int:
    """Epochs that finished training (rows of ``logs/metrics.csv`` with a ``train_loss``)."""
    path = run / "logs" / "metrics.csv"
    if not path.is_file():
        return 0
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return len({r.get("epoch") for r in rows if r.get("train_loss")})


def budget_kwargs(minutes: float | None) -> tuple[dict, str]:
    """TrainConfig keys for a ``--minutes`` wall-time budget, and a note saying how it is enforced."""
    if minutes is None:
        return {}, "no time budget (--epochs only)"
    return {"max_minutes": float(minutes)}, f"max_minutes={minutes} (checked after each epoch; best weights kept)"
