"""Numerical guards for training (issue 8, part 5).

:class:`NonFiniteLossGuard` stops a run at the first NaN or Inf loss with one clear
:class:`~focusnet.errors.FocusNetError` naming the epoch, the step, the ids of the images in the
offending batch and the last good checkpoint, which is kept as it is:

* a non-finite **training** loss is caught in ``on_before_backward``, before the backward pass and
  the optimiser step, so the weights in memory are never updated with NaN gradients;
* a non-finite **validation** loss is caught in ``on_validation_end``, which runs before the
  checkpoint callbacks (Lightning orders them last), so no checkpoint of a diverged model is written.

Lightning does not save on an exception, so ``last.ckpt`` (and ``best.ckpt``) stay those of the last
completed epoch, and the run can be continued with ``focusnet train --resume RUN_DIR`` (after, for
example, lowering ``lr`` in a new run or removing the images named).

The batch ids come from the training loader's batch sampler (the epoch's order is a function of
``(seed, epoch)``, see :class:`~focusnet.engine.callbacks.EpochShuffleSampler`) and the run's
``split.json`` (``train`` ids in loader order), or from ``train_ids`` when given.

Example:
    >>> guard = NonFiniteLossGuard()
    >>> guard.describe_ids(["a", "b", "c", "d", "e", "f"], [0, 5])
    "'a', 'f'"
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from focusnet.errors import FocusNetError

__all__ = ["NonFiniteLossGuard"]

LAST_CKPT = "last.ckpt"
PROGRESS_JSON = "progress.json"
SPLIT_JSON = "split.json"


class NonFiniteLossGuard(L.Callback):
    """Raise :class:`FocusNetError` at the first NaN/Inf training or validation loss.

    Args:
        train_ids: ids of the training items in the order of the training dataset (default: the
            ``train`` list of ``<run>/split.json``, the run folder being the trainer's
            ``default_root_dir``).
        max_ids: at most this many ids are named in the message.
    """

    def __init__(self, train_ids: Sequence[str] | None = None, max_ids: int = 8) -> None:
        self.train_ids = list(train_ids) if train_ids is not None else None
        self.max_ids = int(max_ids)
        self._batch_idx = -1

    # --------------------------------------------------------------------------- training loss
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_idx = int(batch_idx)

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        value = loss.detach()
        if bool(torch.isfinite(value).all()):
            return
        ids = self._batch_ids(trainer, self._batch_idx)
        where = (
            f"epoch {trainer.current_epoch}, step {trainer.global_step}, batch {self._batch_idx}"
            + (f" (ids {ids})" if ids else " (ids unknown)")
        )
        raise FocusNetError(
            f"non-finite training loss ({_show(value)}) at {where}; training stopped before the update. "
            f"{self._kept(trainer)}; lower lr, check those images, "
            f"or resume with `focusnet train --resume {_run_dir(trainer)}`"
        )

    # ------------------------------------------------------------------------- validation loss
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get("val_loss")
        if value is None or bool(torch.isfinite(torch.as_tensor(value)).all()):
            return
        raise FocusNetError(
            f"non-finite validation loss ({_show(torch.as_tensor(value))}) at epoch {trainer.current_epoch}; "
            f"training stopped, no checkpoint of this epoch written. {self._kept(trainer)}; "
            "lower lr or check the val images"
        )

    # -------------------------------------------------------------------------------- helpers
    @staticmethod
    def describe_ids(ids: Sequence[str], indices: Sequence[int], limit: int = 8) -> str:
        """``'a', 'f'`` (with ``, ... (+N more)`` past ``limit``)."""
        named = [repr(str(ids[i])) for i in indices[:limit] if 0 <= i < len(ids)]
        more = len(indices) - limit
        return ", ".join(named) + (f", ... (+{more} more)" if more > 0 else "")

    def _train_ids(self, trainer: L.Trainer) -> list[str] | None:
        if self.train_ids is not None:
            return self.train_ids
        path = Path(_run_dir(trainer)) / SPLIT_JSON
        try:
            return [str(i) for i in json.loads(path.read_text())["train"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _batch_ids(self, trainer: L.Trainer, batch_idx: int) -> str:
        """The ids of training batch ``batch_idx`` of this epoch ('' when they cannot be known)."""
        ids = self._train_ids(trainer)
        loader = trainer.train_dataloader
        batch_sampler = getattr(loader, "batch_sampler", None)
        if ids is None or batch_sampler is None or batch_idx < 0:
            return ""
        try:
            for k, indices in enumerate(batch_sampler):  # the epoch's order: (seed, epoch) only
                if k == batch_idx:
                    return self.describe_ids(ids, [int(i) for i in indices], self.max_ids)
        except Exception:  # noqa: BLE001 - only informative
            return ""
        return ""

    def _kept(self, trainer: L.Trainer) -> str:
        run = Path(_run_dir(trainer))
        last = run / LAST_CKPT
        if not last.is_file():
            return "no checkpoint was written before it (the first epoch failed)"
        epoch = None
        try:
            epoch = json.loads((run / PROGRESS_JSON).read_text()).get("epoch")
        except (OSError, ValueError, AttributeError):
            pass
        return f"the last good checkpoint is kept: {last}" + (f" (epoch {epoch})" if epoch is not None else "")


def _run_dir(trainer: L.Trainer) -> str:
    return str(trainer.default_root_dir)


def _show(value: torch.Tensor) -> str:
    v = value.float().reshape(-1)
    if v.numel() == 1:
        x = float(v[0])
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{int(torch.isnan(v).sum())} nan, {int(torch.isinf(v).sum())} inf"
