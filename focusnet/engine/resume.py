"""What resuming a run needs besides the fit itself: the config it continues with, and its metrics rows.

:func:`focusnet.engine.train.resume` continues a run from its ``last.ckpt``. :func:`resumed_config`
reads the run's config and applies the overrides that may change (:data:`RESUME_OVERRIDABLE`; the rest
would make the continuation a different run). Lightning's CSV logger deletes an existing
``metrics.csv``, so :func:`earlier_rows` keeps the rows of the epochs before the resume (with a backup
file while the run goes on) and :func:`merge_rows` writes them back in front of the new ones.

Example:
    >>> config = resumed_config("runs/demo-20250101-120000", ["epochs=80"])  # doctest: +SKIP
"""
from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from focusnet.engine.config import TrainConfig, apply_overrides, parse_override
from focusnet.engine.rundir import RunDir
from focusnet.errors import FocusNetError

__all__ = ["RESUME_OVERRIDABLE", "earlier_rows", "merge_rows", "resumed_config"]

# What may change when resuming (the rest would make the continuation a different run).
RESUME_OVERRIDABLE = ("epochs", "accelerator", "devices", "num_nodes", "strategy", "num_threads", "num_workers",
                      "progress_bar", "eval_batch_size")
_BACKUP = "metrics.before-resume.csv"  # the earlier rows, in case the run is killed before the merge


def resumed_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """The config a resumed run continues with: the run's own, with ``overrides`` applied.

    Raises:
        FocusNetError: not a run folder, no ``last.ckpt``, or an override of a key that would make
            it a different run.

    Example:
        >>> resumed_config("runs/none")
        Traceback (most recent call last):
        ...
        focusnet.errors.FocusNetError: runs/none/last.ckpt: not found; nothing to resume (did the run finish an epoch?)
    """
    run_dir = Path(run_dir)
    if not (run_dir / RunDir.LAST_CKPT).is_file():
        raise FocusNetError(f"{run_dir / RunDir.LAST_CKPT}: not found; nothing to resume "
                            "(did the run finish an epoch?)")
    config = RunDir(run_dir).read_config()
    for item in overrides:
        key = parse_override(item)[0][0]
        if key not in RESUME_OVERRIDABLE:
            raise FocusNetError(
                f"--resume: {key!r} cannot change when resuming (it would be a different run); "
                f"these can: {', '.join(RESUME_OVERRIDABLE)}"
            )
    return apply_overrides(config, overrides).replace(out_dir=str(run_dir))


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    backup = path.with_name(_BACKUP)
    if rows and not backup.exists():
        shutil.copyfile(path, backup)
    return rows


def earlier_rows(run_dir: Path, ckpt_path: Path) -> list[dict]:
    """The rows of ``metrics.csv`` before the resume, plus the checkpoint's own training row when they lack it.

    The row is missing when a run stopped between Lightning's checkpoint (end of validation) and its
    epoch-end logging of ``train_loss``/``lr``. A copy of the file is kept (``metrics.before-resume.csv``)
    until :func:`merge_rows` has written the rows back.

    Example:
        >>> earlier_rows(Path("runs/none"), Path("runs/none/last.ckpt"))
        []
    """
    rows = _read_rows(run_dir / RunDir.METRICS_CSV)
    return _with_checkpoint_row(rows, ckpt_path) if rows else rows


def _with_checkpoint_row(rows: list[dict], ckpt_path: Path) -> list[dict]:
    from focusnet.engine.module import EPOCH_ROW_KEY  # imports Lightning: only when resuming

    try:
        row = torch.load(ckpt_path, map_location="cpu", weights_only=True).get(EPOCH_ROW_KEY)
    except Exception:  # noqa: BLE001 - the row is informative; the resume itself reads the file again
        return rows
    if not isinstance(row, dict) or "epoch" not in row:
        return rows
    epoch = str(row["epoch"])
    if any(r.get("epoch") == epoch and r.get("train_loss") not in ("", None) for r in rows):
        return rows
    return rows + [{"epoch": epoch, "train_loss": repr(row["train_loss"]), "lr": repr(row["lr"])}]


def merge_rows(path: Path, earlier: list[dict]) -> None:
    """``metrics.csv`` = the earlier rows of epochs before the resumed ones + the new rows.

    Example:
        >>> merge_rows(Path("runs/try/logs/metrics.csv"), [{"epoch": "0", "val_loss": "0.5"}])  # doctest: +SKIP
    """
    new = _read_rows(path) if path.is_file() else []
    first = min((int(r["epoch"]) for r in new if r.get("epoch", "").isdigit()), default=None)
    keep = [r for r in earlier if first is None or (r.get("epoch", "").isdigit() and int(r["epoch"]) < first)]
    fields = sorted({k for r in keep + new for k in r})
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(keep + new)
    os.replace(tmp, path)
    path.with_name(_BACKUP).unlink(missing_ok=True)
