"""The model-resolution score of a run's checkpoint on one split, built in one place.

``focusnet train`` scores the test split with the best checkpoint through Lightning's test loop (on
every process, counts gathered) and writes the result as ``summary.json``;
:func:`focusnet.engine.evaluate.evaluate_checkpoint` scores any split in a plain loop. Both count
``logits > logit(threshold)`` against ``mask > 0.5`` per image
(:func:`focusnet.metrics.confusion_counts`) and hand the counts to :func:`split_summary`, so the two
give the same numbers and the same protocol for the same checkpoint.

Example:
    >>> selection_rule("val_dice")
    'highest per-image mean val_dice on the val split'
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from focusnet.engine.config import TrainConfig
from focusnet.engine.rundir import ScoreSummary
from focusnet.metrics import summarize

__all__ = ["selection_rule", "split_summary"]


def selection_rule(monitor: str) -> str:
    """How ``best.ckpt`` was picked, for the protocol of every metric file."""
    if monitor == "val_dice":
        return "highest per-image mean val_dice on the val split"
    return "lowest val_loss on the val split"


def split_summary(
    counts: torch.Tensor,
    ids: Sequence[str],
    config: TrainConfig,
    run_dir: str | Path,
    checkpoint: str,
    epoch: int | None,
    split: str = "test",
    processes: int | None = None,
) -> ScoreSummary:
    """:func:`focusnet.metrics.summarize` of per-image ``counts`` (N, 4), with the protocol: split,
    model-input resolution, threshold, model, run, checkpoint (and epoch), selection rule, and the
    number of processes that scored it where given.

    Example:
        >>> from focusnet.engine.config import TrainConfig
        >>> s = split_summary(torch.tensor([[5, 1, 0, 10]]), ["a"], TrainConfig(size=32), "run", "best.ckpt", 3)
        >>> s["protocol"]["checkpoint"], round(s["mean"]["dice"], 4)
        ('best.ckpt (epoch 3)', 0.9091)
    """
    protocol: dict[str, object] = {
        "split": split,
        "resolution": f"{config.size}x{config.size} (model input)",
        "threshold": config.threshold,
        "model": config.model,
        "preset": config.preset,
        "run": str(run_dir),
        "checkpoint": checkpoint + (f" (epoch {epoch})" if epoch is not None else ""),
        "selection": selection_rule(config.monitor),
    }
    if processes is not None:
        protocol["processes"] = int(processes)
    return ScoreSummary(**summarize(counts, list(ids), empty_score=1.0, protocol=protocol))
