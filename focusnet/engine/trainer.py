"""The Lightning side of ``focusnet train``: the ``Trainer`` with its callbacks and loggers, the data
loaders, and what surrounds a fit (Lightning's messages, the determinism switch, Ctrl-C).

:func:`build_trainer` makes the one ``lightning.Trainer`` of a run: ``best.ckpt`` by the monitored
metric, ``last.ckpt`` every epoch (written atomically), the non-finite-loss guard, the per-epoch
reseeding, the progress lines or bar, the wall-time budget, and the CSV (plus TensorBoard, when
installed) loggers under ``<run>/logs``. :mod:`focusnet.engine.train` decides what to fit; this
module only builds and wraps Lightning's pieces. Lightning itself is imported inside the functions
that need it, so that importing this module (and ``focusnet --help``) stays cheap.

Example:
    >>> from focusnet.engine.config import TrainConfig
    >>> trainer = build_trainer(TrainConfig(epochs=1), Path("runs/try"), distributed=False)  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from focusnet.engine.config import TrainConfig
from focusnet.engine.rundir import RunDir
from focusnet.engine.split_tensors import SplitTensors

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger("focusnet.train")


# ------------------------------------------------------------------------------------ processes
def global_rank() -> int:
    """This process's global rank from the launcher's environment (0 when not distributed).

    Example:
        >>> global_rank()  # doctest: +SKIP
        0
    """
    for key in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key, "").strip().isdigit():
            if key == "SLURM_PROCID" and int(os.environ.get("SLURM_NTASKS", "1") or 1) <= 1:
                continue
            return int(os.environ[key])
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")) or 0)
    return local + node * 10_000  # only "is it zero" matters here


def launched_distributed() -> bool:
    """Whether a launcher (``torchrun``, SLURM, Lightning itself) started this process as one of several.

    Example:
        >>> launched_distributed()  # doctest: +SKIP
        False
    """
    return any(int(os.environ.get(k, "1") or 1) > 1 for k in ("WORLD_SIZE",)) or global_rank() != 0


def is_distributed(config: TrainConfig) -> bool:
    """Whether ``config`` trains on more than one process (devices, nodes, or a launcher's environment).

    Example:
        >>> from focusnet.engine.config import TrainConfig
        >>> is_distributed(TrainConfig(devices=2))
        True
    """
    return config.num_nodes > 1 or (isinstance(config.devices, int) and config.devices > 1) or launched_distributed()


# ------------------------------------------------------------------------------------ Lightning


@contextlib.contextmanager
def restore_determinism() -> Iterator[None]:
    """Undo, on exit, the process-wide ``torch.use_deterministic_algorithms`` that ``Trainer(deterministic=...)`` sets;
    inside, uninitialised memory is not filled.

    With deterministic algorithms on, PyTorch by default fills every new tensor with NaN
    (``torch.utils.deterministic.fill_uninitialized_memory``), a debugging aid for operations that
    read memory they did not write: an extra pass over each allocation, 7% of a FocusNet++ training
    step at 128² on the CPU, that changes no result of an operation writing its whole output (the
    same-seed runs of ``tests/reliability/test_determinism.py`` stay bit-identical without it).

    Example:
        >>> before = torch.are_deterministic_algorithms_enabled()
        >>> with restore_determinism():
        ...     torch.use_deterministic_algorithms(not before)
        ...     torch.utils.deterministic.fill_uninitialized_memory
        False
        >>> torch.are_deterministic_algorithms_enabled() == before
        True
    """
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]


class _DropMessages(logging.Filter):
    def __init__(self, *needles: str) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in self.needles)


@contextlib.contextmanager
def quiet_lightning(log_file: Path | None) -> Iterator[None]:
    """Silence Lightning messages that are noise here; copy the run's messages to ``log_file`` (``logs/train.log``).

    Args:
        log_file: where the messages of Lightning and focusnet are copied while the block runs;
            ``None`` (the processes other than rank 0) copies nothing.

    Example:
        >>> with quiet_lightning(None):
        ...     pass
    """
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "focusnet")]
    rz = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    drop = _DropMessages("litlogger", "Detected KeyboardInterrupt")  # Ctrl-C gets one line of ours
    rz.addFilter(drop)
    handler = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for lg in loggers:
            lg.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
            warnings.filterwarnings("ignore", message=r".*Experiment logs directory .* exists and is not empty.*")
            warnings.filterwarnings("ignore", message=r".*sync_dist=True.*")
            yield
    finally:
        rz.removeFilter(drop)
        log.setLevel(old_level)
        if handler is not None:
            for lg in loggers:
                lg.removeHandler(handler)
            handler.close()


def data_loader(data: SplitTensors, config: TrainConfig, train: bool, distributed: bool) -> torch.utils.data.DataLoader:
    """The loader of one split: seeded per-epoch shuffling for training, in order (with indices) otherwise.

    Args:
        data: the split, in memory.
        config: ``batch_size`` (training) or ``eval_batch_size``, ``seed`` and ``num_workers``.
        train: the training loader (shuffled; a last batch of one image dropped).
        distributed: under DDP, where Lightning swaps in a seeded ``DistributedSampler``.

    Example:
        >>> loader = data_loader(data["val"], config, train=False, distributed=False)  # doctest: +SKIP
    """
    from focusnet.engine.callbacks import EpochShuffleSampler  # imports Lightning: only when training

    n, b = len(data), (config.batch_size if train else config.eval_batch_size)
    sampler = EpochShuffleSampler(n, config.seed) if train and not distributed else None
    return torch.utils.data.DataLoader(
        data.dataset(with_index=not train),
        batch_size=b,
        shuffle=train and distributed,  # under DDP Lightning swaps in a seeded DistributedSampler
        sampler=sampler,
        # A last training batch of one image would break BatchNorm; drop only that case.
        drop_last=train and n > b and n % b == 1,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
    )


def build_trainer(config: TrainConfig, run_dir: Path, distributed: bool) -> L.Trainer:
    """The ``lightning.Trainer`` of a run in ``run_dir``: its checkpoints, callbacks, loggers and devices.

    Args:
        config: the run's config (epochs, devices, precision, monitor, budget, progress output).
        run_dir: the run folder; checkpoints go at its top, logs under ``logs/``.
        distributed: whether more than one process trains (``strategy="auto"`` becomes ``ddp``).

    Example:
        >>> from focusnet.engine.config import TrainConfig
        >>> trainer = build_trainer(TrainConfig(epochs=1), Path("runs/try"), distributed=False)  # doctest: +SKIP
        >>> trainer.max_epochs  # doctest: +SKIP
        1
    """
    import lightning as L  # heavy: only training needs it
    from lightning.pytorch.callbacks import ModelCheckpoint, Timer
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from focusnet.engine.callbacks import (  # imports Lightning: only when training
        AtomicCheckpointIO,
        BudgetCosine,
        DebiasedBatchNorm,
        PlainProgress,
        ProgressBar,
        ProgressiveResize,
        RunCheckpoint,
        StepSeed,
        WeightEMA,
    )
    from focusnet.engine.guards import NonFiniteLossGuard  # imports Lightning: only when training

    # best.ckpt: lowest val_loss (or highest val_dice) so far; last.ckpt: every epoch (Lightning's
    # save_last only writes when another checkpoint is written, so it is a callback of its own).
    best = ModelCheckpoint(
        dirpath=run_dir,
        filename=Path(RunDir.BEST_CKPT).stem,
        monitor=config.monitor,
        mode="max" if config.monitor == "val_dice" else "min",
        save_top_k=1,
        save_last=False,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    last = RunCheckpoint(
        dirpath=run_dir,
        filename=Path(RunDir.LAST_CKPT).stem,
        monitor=None,
        save_top_k=1,
        every_n_epochs=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    callbacks: list[Any] = [NonFiniteLossGuard(), best, last, StepSeed(config.seed)]
    if config.debias_bn_stats:  # before WeightEMA, which then averages the corrected statistics
        callbacks.append(DebiasedBatchNorm())
    if config.ema_decay is not None:
        callbacks.append(WeightEMA(config.ema_decay))
    bar = config.progress_bar and sys.stdout.isatty()  # a redirected log gets plain lines, not redraws
    if config.progress_bar:
        callbacks.append(PlainProgress(epoch_lines=not bar))
    if bar:
        callbacks.append(ProgressBar())
    timer = None
    if config.max_minutes is not None:
        timer = Timer(duration=timedelta(minutes=config.max_minutes), interval="epoch")
        callbacks.append(timer)
        if config.lr_schedule == "cosine":  # the cosine ends with the budget when that comes first
            callbacks.append(BudgetCosine(timer, config.epochs))
    if config.warmup_size is not None:
        callbacks.append(ProgressiveResize(config.warmup_size, config.warmup_share, config.epochs, timer))
    loggers: list[Any] = [CSVLogger(save_dir=run_dir, name="", version=RunDir.LOG_DIR)]
    if importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None:
        loggers.append(TensorBoardLogger(save_dir=run_dir / RunDir.LOG_DIR, name="", version="tensorboard",
                                         default_hp_metric=False))
    strategy = config.strategy
    if strategy == "auto" and distributed:
        strategy = "ddp"
    return L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=strategy,
        precision=config.precision,  # type: ignore[arg-type]  # a PRECISIONS value: Lightning's spelling
        deterministic=config.deterministic,  # type: ignore[arg-type]  # true, false or "warn"
        sync_batchnorm=config.sync_batchnorm and distributed,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=run_dir,
        enable_progress_bar=bar,
        enable_model_summary=False,  # its "Total Flops" reads 0 here; PlainProgress prints the parameters
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )


def sigint_handler(handler: Any = None) -> Any:
    """The current SIGINT handler; with ``handler``, also restore it (main thread only).

    Example:
        >>> old = sigint_handler()
        >>> sigint_handler(old) is old
        True
    """
    old = signal.getsignal(signal.SIGINT)
    if handler is not None:
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGINT, handler)
    return old


def interrupted_message(run_dir: Path) -> str:
    """The one line shown after Ctrl-C: how to resume, or that no epoch was saved.

    Example:
        >>> interrupted_message(Path("runs/none"))
        'interrupted before the first epoch ended; no last.ckpt in runs/none to resume from, start a new run'
    """
    last = RunDir.LAST_CKPT
    if (run_dir / last).is_file():
        return (f"interrupted; {last} holds the last completed epoch; "
                f"resume with: focusnet train --resume {shlex.quote(str(run_dir))}")
    return f"interrupted before the first epoch ended; no {last} in {run_dir} to resume from, start a new run"
