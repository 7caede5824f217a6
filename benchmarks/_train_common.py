"""Helpers shared by the real-data training benchmarks (``bench_isic_train.py``, ``bench_dsb_train.py``)."""
from __future__ import annotations

import csv
from pathlib import Path


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
