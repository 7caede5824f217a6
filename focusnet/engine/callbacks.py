"""Lightning pieces that make runs resumable bit for bit and their files safe to read at any time.

* :class:`StepSeed`: reseeds torch, numpy and ``random`` before every training step from
  ``(seed, epoch, step, rank)``, so the dropout and augmentation of a step do not depend on what ran
  before it (a resumed run repeats them exactly, whatever Lightning or the DataLoader drew from the
  global RNG while restoring). It also stores every RNG state in each checkpoint and restores it on
  resume.
* :class:`EpochShuffleSampler`: a single-process shuffle whose order depends only on
  ``(seed, epoch)`` (Lightning calls ``set_epoch``).
* :class:`AtomicCheckpointIO`: checkpoints are written to a temporary file and renamed into place,
  so a process killed while saving never leaves a truncated ``last.ckpt``.
* :class:`RunCheckpoint`: ``ModelCheckpoint`` that also writes ``progress.json`` (the last
  completed epoch) after every ``last.ckpt``.
* :class:`BudgetCosine`: under a wall-time budget (``max_minutes``), the cosine learning rate
  follows whichever ends first, the epochs or the budget, so it reaches zero when the run stops.
* :class:`ProgressiveResize`: trains the first share of a run on smaller batches (config
  ``warmup_size``).
* :class:`WeightEMA`: an exponential moving average of the weights (config ``ema_decay``), which
  validation, the checkpoints and the final weights use.
* :class:`DebiasedBatchNorm`: BatchNorm running statistics without the pull of their initial values
  (config ``debias_bn_stats``), so evaluation works from the first epoch at any momentum.
"""
from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch
import torch.nn as nn
from lightning.pytorch.callbacks import ModelCheckpoint, Timer, TQDMProgressBar, WeightAveraging
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn

from focusnet.atomic import replace_into
from focusnet.engine.config import lr_factor

__all__ = [
    "AtomicCheckpointIO", "BudgetCosine", "DebiasedBatchNorm", "StepSeed", "EpochShuffleSampler", "PlainProgress",
    "ProgressBar", "ProgressiveResize", "RunCheckpoint", "WeightEMA", "ema_decay_at", "epoch_seed", "run_progress",
]

PROGRESS_JSON = "progress.json"


def epoch_seed(seed: int, epoch: int, rank: int = 0, step: int = 0) -> int:
    """A 31-bit seed derived from ``(seed, epoch, rank, step)``."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(rank), int(step)]).generate_state(1)[0] & 0x7FFFFFFF)


def rng_state() -> dict[str, Any]:
    """Every RNG state as plain values and tensors (loadable with ``torch.load(weights_only=True)``)."""
    # the legacy tuple form (get_state's default)
    kind, keys, pos, has_gauss, gauss = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    version, internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss),
        },
        "python": {"version": version, "internal": list(internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StepSeed(L.Callback):
    """Reseed every RNG before each training step; keep the RNG states in checkpoints."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        s = epoch_seed(self.seed, trainer.current_epoch, trainer.global_rank, batch_idx + 1)
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)  # also seeds every CUDA device

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rng": rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "rng" in state_dict:
            set_rng_state(state_dict["rng"])


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """A random order of ``range(n)`` that depends only on ``(seed, epoch)``."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, 1_000_003))
        return iter(torch.randperm(self.n, generator=g).tolist())


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file in the same folder, then ``os.replace`` into place."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            torch.save(checkpoint, tmp)
            replace_into(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that writes ``progress.json`` (the epoch just saved) after each checkpoint."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            progress = {
                "epoch": trainer.current_epoch, "epochs_done": trainer.current_epoch + 1,
                "max_epochs": trainer.max_epochs, "global_step": trainer.global_step, "checkpoint": Path(filepath).name,
            }
            assert self.dirpath is not None  # set by Lightning before the first save
            out = Path(self.dirpath) / PROGRESS_JSON
            tmp = out.with_name(f".{out.name}.tmp")
            tmp.write_text(json.dumps(progress, indent=2) + "\n")
            replace_into(tmp, out)


class ProgressBar(TQDMProgressBar):
    def get_metrics(self, trainer, pl_module):  # noqa: ANN001, ANN201 - Lightning's signature
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)  # the logger "version" is always "logs" here
        return items


def budget_progress(epoch_fraction: float, elapsed_s: float, remaining_s: float) -> float:
    """Schedule progress in [0, 1]: the larger of the epoch fraction and the time-budget fraction.

    Example:
        >>> budget_progress(0.25, elapsed_s=300.0, remaining_s=900.0)  # a quarter of each
        0.25
        >>> budget_progress(0.25, elapsed_s=600.0, remaining_s=600.0)  # the budget binds first
        0.5
    """
    total = elapsed_s + remaining_s
    time_fraction = elapsed_s / total if total > 0 else 1.0
    return float(min(1.0, max(epoch_fraction, time_fraction, 0.0)))


def run_progress(timer: Timer | None, epochs: int, epoch: int, batch_idx: int, batches: int) -> float:
    """A run's progress in [0, 1] at ``batch_idx`` of 0-based ``epoch``: :func:`budget_progress` of the
    fractional epoch and, with a ``timer`` that has a duration, the elapsed share of the budget.

    Example:
        >>> run_progress(None, epochs=10, epoch=2, batch_idx=5, batches=10)
        0.25
    """
    epoch_fraction = (epoch + batch_idx / max(batches, 1)) / max(epochs, 1)
    remaining = None if timer is None else timer.time_remaining("train")  # None without a duration
    if remaining is None:
        return float(min(1.0, max(epoch_fraction, 0.0)))
    return budget_progress(epoch_fraction, cast(Timer, timer).time_elapsed("train"), remaining)


def _batches(trainer: L.Trainer) -> int:
    batches = trainer.num_training_batches
    return int(batches) if math.isfinite(batches) else 1


class BudgetCosine(L.Callback):
    """The ``cosine`` schedule of a run with a wall-time budget, set before every training step.

    An epoch-based cosine over ``epochs`` never decays when the budget stops the run first (23 of
    50 epochs leave the learning rate at 0.62x), and the validation Dice of such runs swings from
    epoch to epoch. This callback sets each parameter group's learning rate to
    ``base_lr * 0.5 * (1 + cos(pi * p))`` with ``p`` the larger of the (fractional) epoch progress
    and the elapsed share of the budget, read from Lightning's :class:`~lightning.pytorch.callbacks.Timer`
    (whose state is checkpointed, so a resumed run continues the same schedule).

    Args:
        timer: the run's budget timer.
        epochs: the run's epoch cap.

    Example:
        >>> from datetime import timedelta
        >>> cb = BudgetCosine(Timer(duration=timedelta(minutes=25)), epochs=50)
        >>> cb.epochs
        50
    """

    def __init__(self, timer: Timer, epochs: int) -> None:
        self.timer = timer
        self.epochs = int(epochs)

    def factor(self, epoch: int, batch_idx: int, batches: int) -> float:
        """The learning-rate factor at ``batch_idx`` of ``epoch``."""
        progress = run_progress(self.timer, self.epochs, epoch, batch_idx, batches)
        return lr_factor("cosine", progress, 1)  # the cosine of the epoch schedule, at fractional progress

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(trainer, 0)  # before the module logs the epoch's learning rate (callbacks run first)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._set(trainer, batch_idx)

    def _set(self, trainer: L.Trainer, batch_idx: int) -> None:
        factor = self.factor(trainer.current_epoch, batch_idx, _batches(trainer))
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = base * factor


class ProgressiveResize(L.Callback):
    """Progressive resizing (config ``warmup_size``): the module trains on batches resized to
    ``warmup_size`` until ``share`` of the run's :func:`run_progress`, then at the data's size.

    Before every training step it sets :attr:`SegmentationModule.train_size
    <focusnet.engine.module.SegmentationModule.train_size>` (``None``: the batch as loaded). Validation
    and everything after training run at the data's size.

    Args:
        warmup_size: the early steps' square size.
        share: the share of the run at ``warmup_size``.
        epochs: the run's epoch cap.
        timer: the run's budget timer, if it has one (then the budget's elapsed share counts too).

    Example:
        >>> resize = ProgressiveResize(96, share=0.5, epochs=10)
        >>> [resize.size_at(epoch, 0, 10) for epoch in (0, 4, 5, 9)]
        [96, 96, None, None]
    """

    def __init__(self, warmup_size: int, share: float, epochs: int, timer: Timer | None = None) -> None:
        self.warmup_size, self.share, self.epochs, self.timer = int(warmup_size), float(share), int(epochs), timer

    def size_at(self, epoch: int, batch_idx: int, batches: int) -> int | None:
        """The training size at ``batch_idx`` of ``epoch`` (None: the batch's own)."""
        progress = run_progress(self.timer, self.epochs, epoch, batch_idx, batches)
        return self.warmup_size if progress < self.share else None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        cast(Any, pl_module).train_size = self.size_at(trainer.current_epoch, batch_idx, _batches(trainer))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cast(Any, pl_module).train_size = None


class PlainProgress(L.Callback):
    """The model in one line at the start, and, with ``epoch_lines``, one plain line per epoch on stdout.

    Used instead of Lightning's model summary (whose "Total Flops" reads 0 for these models) and,
    when stdout is not a terminal, instead of the progress bar, so a redirected log gets one line
    per epoch instead of carriage-return redraws. Epochs are numbered from 0, as in metrics.csv.
    """

    def __init__(self, epoch_lines: bool) -> None:
        self.epoch_lines = bool(epoch_lines)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            params = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
            print(f"model: {type(getattr(pl_module, 'model', pl_module)).__name__}, {params:,} trainable parameters; "
                  f"{trainer.max_epochs} epochs", flush=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.epoch_lines or not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        keys = ("train_loss", "val_loss", "val_dice")
        shown = ", ".join(f"{k} {float(metrics[k]):.4f}" for k in keys if k in metrics)
        epoch = trainer.current_epoch
        print(f"epoch {epoch} ({epoch + 1} of {trainer.max_epochs}): {shown}", flush=True)


def ema_decay_at(decay: float, averaged: int) -> float:
    """The EMA's decay at an update that follows ``averaged`` earlier ones: ``min(decay, (1 + n) / (10 + n))``.

    The warm-up keeps the average close to the recent weights while they still change fast; without
    it, a 0.995 average of a budget run holds no usable network for its first 10 epochs (the initial
    weights dominate) and a 0.999 average none in 33 (issue 15, session 9).

    Example:
        >>> round(ema_decay_at(0.995, 0), 3), round(ema_decay_at(0.995, 90), 3), ema_decay_at(0.995, 10_000)
        (0.1, 0.91, 0.995)
    """
    return min(float(decay), (1.0 + averaged) / (10.0 + averaged))


class WeightEMA(WeightAveraging):
    """Exponential moving average of the weights and BatchNorm statistics, updated after every step.

    Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging` with a foreach EMA,
    ``avg = d * avg + (1 - d) * current`` where ``d`` warms up to ``decay`` (:func:`ema_decay_at`):
    validation scores the average, so ``best.ckpt`` is chosen by and holds averaged weights,
    ``last.ckpt`` keeps the raw weights beside them for an exact resume, and the model holds the
    average when training ends. Loading a checkpoint outside fitting (``trainer.test(ckpt_path=...)``)
    leaves the averaged weights in place, where Lightning's callback would put the raw ones back.

    Args:
        decay: the decay after the warm-up; the average then spans about ``1 / (1 - decay)`` steps.

    Example:
        >>> WeightEMA(0.99).decay
        0.99
    """

    def __init__(self, decay: float) -> None:
        self.decay = float(decay)

        def blend(averaged: list[torch.Tensor], current: list[torch.Tensor], count: torch.Tensor) -> None:
            if averaged[0].is_floating_point():  # torch groups the tensors by dtype: one kind per call
                torch._foreach_lerp_(averaged, current, 1.0 - ema_decay_at(self.decay, int(count)))
            else:  # counters (BatchNorm's num_batches_tracked) follow the model
                torch._foreach_copy_(averaged, current)

        super().__init__(use_buffers=True, multi_avg_fn=blend)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class DebiasedBatchNorm(L.Callback):
    """BatchNorm running statistics debiased like Adam's moments, so evaluation works from the start.

    A BatchNorm's running mean and variance are an exponential moving average that starts at 0 and 1.
    After ``n`` updates with momentum ``m`` the start values still weigh ``(1 - m) ** n``: with the
    Keras momentum of the paper presets (0.01) that is 53% after 64 steps, and an evaluation-mode
    network outputs nothing useful for several epochs (validation Dice 0.000 on DSB 2018 for the first
    epochs at 256^2) although training, which uses each batch's statistics, goes well. After each
    training step this callback replaces every running statistic by the average of the batch
    statistics seen so far with the same exponential weights, rescaled to sum to one:
    ``(after - b * before) / (1 - b)`` with ``b = (1 - m) ** n`` (``n`` updates so far, the current
    step's included), which needs neither the start values nor the batch statistics. Training is
    unchanged (it never reads the running statistics); once ``b`` is below ``1e-7`` for every layer
    the correction is a no-op and the callback stops. The update count ``n`` comes from each layer's
    ``num_batches_tracked``, read once at the start and once after the first step (a layer applied
    several times per step, as in R2U-Net, counts each); layers that never update it (FocusNet's
    batch-statistics BatchNorm) and layers without running statistics are left alone. Works for
    every execution path (PyTorch's BatchNorm, focusnet's kernels, CUDA graphs: the running
    statistics are corrected in place).

    Example:
        >>> cb = DebiasedBatchNorm()
        >>> cb.done
        False
    """

    #: Below this start-value weight the correction changes nothing that float32 can show.
    NEGLIGIBLE = 1e-7

    def __init__(self) -> None:
        self.done = False
        self._layers: list[_TrackedNorm] = []
        self._before: list[torch.Tensor] = []  # each layer's mean and variance before the current step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._layers, self._before = [], []
        for m in pl_module.modules():
            if not isinstance(m, nn.modules.batchnorm._BatchNorm) or m.momentum is None:
                continue
            mean, var, count = m.running_mean, m.running_var, m.num_batches_tracked
            if mean is not None and var is not None and count is not None and 0.0 < float(m.momentum) < 1.0:
                self._layers.append(_TrackedNorm(m, mean, var, count, 1.0 - float(m.momentum), int(count)))
        self.done = not self._layers

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.done:
            return
        running = [r for t in self._layers for r in (t.mean, t.var)]
        if len(self._before) != len(running):
            self._before = [r.detach().clone() for r in running]
        else:
            with torch.no_grad():
                torch._foreach_copy_(self._before, running)  # one call for all layers: few GPU kernels

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.done or not self._before:
            return
        kept, running, before, scale = [], [], [], []
        for t, (mean0, var0) in zip(self._layers, zip(self._before[0::2], self._before[1::2])):
            if t.per_step is None:  # one read of the counter: how often the layer updates per step
                t.per_step = int(t.count) - t.updates
            if t.per_step <= 0:
                continue
            t.updates += t.per_step
            b = t.beta ** t.updates
            # (after - b before) / (1 - b) = after + b / (1 - b) * (after - before): the difference of
            # two close values is exact in float32, so no cancellation is scaled up
            running += [t.mean, t.var]
            before += [mean0, var0]
            scale += [b / (1.0 - b)] * 2
            if b >= self.NEGLIGIBLE:
                kept.append(t)
        if running:
            with torch.no_grad():
                diff = torch._foreach_sub(running, before)
                torch._foreach_mul_(diff, scale)
                torch._foreach_add_(running, diff)
        if len(kept) != len(self._layers):
            self._before = []
        self._layers = kept
        self.done = not kept


@dataclass
class _TrackedNorm:
    """One BatchNorm that :class:`DebiasedBatchNorm` corrects: its running statistics and counter, its
    ``1 - momentum``, its update count and its updates per step (known after the first)."""

    layer: nn.Module
    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor
    beta: float
    updates: int
    per_step: int | None = None
