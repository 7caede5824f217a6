"""Train a segmentation model with Lightning, then evaluate its best checkpoint on the test split.

:func:`train` writes one self-contained run folder::

    <run>/config.json, config.yaml   the resolved TrainConfig
    <run>/split.json                 the seeded train/val/test ids
    <run>/best.ckpt, last.ckpt       best by val_loss (the test split is never looked at), and last
    <run>/logs/metrics.csv           per-epoch train_loss, val_loss, val_dice, lr (+ hparams.yaml)
    <run>/curves.png                 loss and validation Dice per epoch
    <run>/summary.json               test-split metrics of best.ckpt (``focusnet score --json`` schema)

The data path is one function, :func:`load_split_tensors`: it reads the images of the requested
splits into memory (fine for small data sets; the place to put a cache).

Example:
    >>> from focusnet.engine.config import TrainConfig
    >>> run = train(TrainConfig(data_root="data/lesions", size=64, epochs=2, out_dir="runs/try"))  # doctest: +SKIP
    >>> sorted(p.name for p in run.iterdir())  # doctest: +SKIP
    ['best.ckpt', 'config.json', 'config.yaml', 'curves.png', 'last.ckpt', 'logs', 'split.json', 'summary.json']
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import yaml
from torch import nn

from focusnet.data.splits import SPLIT_NAMES
from focusnet.engine.config import TrainConfig
from focusnet.errors import FocusNetError

__all__ = [
    "SplitTensors",
    "build_model",
    "default_run_dir",
    "load_split_tensors",
    "prepare_run_dir",
    "read_config",
    "read_split",
    "resolve_model",
    "torch_threads",
    "train",
]

CONFIG_JSON = "config.json"
CONFIG_YAML = "config.yaml"
SPLIT_JSON = "split.json"
SUMMARY_JSON = "summary.json"
BEST_CKPT = "best.ckpt"
LAST_CKPT = "last.ckpt"
LOG_DIR = "logs"
METRICS_CSV = f"{LOG_DIR}/metrics.csv"
CURVES_PNG = "curves.png"


@dataclass
class SplitTensors:
    """One split in memory: images (N, C, S, S) float32, masks (N, 1, S, S) 0/1, ids, orig sizes (N, 2)."""

    images: torch.Tensor
    masks: torch.Tensor
    ids: list[str]
    orig_sizes: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)

    def dataset(self) -> torch.utils.data.TensorDataset:
        return torch.utils.data.TensorDataset(self.images, self.masks)


# ------------------------------------------------------------------------------------- run folder
def default_run_dir(prefix: str) -> Path:
    """``runs/<prefix>-YYYYmmdd-HHMMSS`` (relative to the working directory)."""
    return Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(run_dir: str | Path, keep: Iterable[str | Path] = ()) -> Path:
    """Create ``run_dir``, refusing an existing non-empty folder (runs are never overwritten).

    Args:
        run_dir: the run folder.
        keep: paths inside ``run_dir`` that may already exist (e.g. the data folder the demo
            generated there); anything else makes the folder count as used.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise FocusNetError(f"{run_dir}: exists and is not a folder; choose a new run folder with --out")
    if run_dir.is_dir():
        allowed = {Path(k).resolve() for k in keep}
        used = sorted(p.name for p in run_dir.iterdir() if p.resolve() not in allowed)
        if used:
            raise FocusNetError(
                f"{run_dir}: run folder already exists and is not empty ({', '.join(used[:3])}"
                f"{', ...' if len(used) > 3 else ''}); runs are never overwritten, choose a new folder with --out"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _top_entry_inside(path: Path, folder: Path) -> Path | None:
    """The child of ``folder`` that contains ``path`` (or is it), if ``path`` is inside ``folder``."""
    try:
        rel = path.resolve().relative_to(folder.resolve())
    except ValueError:
        return None
    return folder.resolve() / rel.parts[0] if rel.parts else None


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def read_config(run_dir: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` saved in a run folder."""
    path = Path(run_dir) / CONFIG_JSON
    if not path.is_file():
        raise FocusNetError(f"{path}: not found; is {run_dir} a run folder made by `focusnet` training?")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FocusNetError(f"{path}: not valid JSON ({exc})") from None
    return TrainConfig.from_dict(data)


def read_split(run_dir: str | Path) -> dict[str, list[str]]:
    """The ``{"train": [...], "val": [...], "test": [...]}`` ids saved in a run folder."""
    path = Path(run_dir) / SPLIT_JSON
    if not path.is_file():
        raise FocusNetError(f"{path}: not found; is {run_dir} a run folder made by `focusnet` training?")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or any(k not in data for k in SPLIT_NAMES):
        raise FocusNetError(f"{path}: expected the keys {', '.join(SPLIT_NAMES)}")
    return {k: [str(i) for i in data[k]] for k in SPLIT_NAMES}


# ------------------------------------------------------------------------------------------- data
def _data_root(config: TrainConfig) -> Path:
    if config.data_root is None:
        raise FocusNetError("data_root: not set; give the folder that holds images/ and masks/")
    return Path(config.data_root)


def make_split(config: TrainConfig) -> dict[str, list[str]]:
    """The seeded random train/val/test split of every image/mask pair under ``data_root``."""
    from focusnet.data.folder import list_pairs
    from focusnet.data.splits import random_split_ids

    pairs = list_pairs(_data_root(config), config.image_dir, config.mask_dir, config.mask_suffix)
    return random_split_ids([p.id for p in pairs], config.split_fractions, config.split_seed)


def load_split_tensors(
    config: TrainConfig, split: dict[str, list[str]], parts: Iterable[str] = ("train", "val")
) -> dict[str, SplitTensors]:
    """Read, resize and normalise the images and masks of the requested splits into memory.

    This is the one place data is loaded for training and evaluation.

    Args:
        config: data settings (``data_root``, folders, ``size``, ``channels``, ``normalization``,
            ``mask_rule``).
        split: ids per split, as in ``split.json``.
        parts: which splits to load.

    Returns:
        ``{part: SplitTensors}`` with the items in the order of ``split[part]``.
    """
    from focusnet.data.folder import SegmentationDataset, list_pairs

    pairs = {p.id: p for p in list_pairs(_data_root(config), config.image_dir, config.mask_dir, config.mask_suffix)}
    out: dict[str, SplitTensors] = {}
    for part in parts:
        if part not in split:
            raise FocusNetError(f"split: no {part!r} split; the splits are {', '.join(split)}")
        missing = [i for i in split[part] if i not in pairs]
        if missing:
            raise FocusNetError(
                f"{config.data_root}: the {part} split names {len(missing)} id(s) with no image/mask pair "
                f"(first: {missing[0]!r}); the data folder changed since the split was made"
            )
        if not split[part]:
            raise FocusNetError(f"split: the {part} split is empty; add images or change split_fractions")
        ds = SegmentationDataset(
            [pairs[i] for i in split[part]],
            size=config.size,
            channels=config.channels,
            normalization=config.normalization,
            mask_rule=config.mask_rule,
        )
        images, masks, ids, sizes = ds.preload()
        out[part] = SplitTensors(images, masks, list(ids), sizes)
    return out


def resolve_model(config: TrainConfig) -> TrainConfig:
    """``config`` with the model name checked and ``preset=None`` replaced by the model's default preset.

    Raises:
        FocusNetError: unknown model or preset, or a preset for a model that has none.
    """
    from focusnet.models import list_presets

    presets = list_presets(config.model)  # FocusNetError for an unknown model
    if config.preset is None:
        return config.replace(preset=presets[0]) if presets else config
    if not presets:
        raise FocusNetError(f"preset: model {config.model!r} has no presets; set preset to null")
    if config.preset not in presets:
        raise FocusNetError(f"preset: unknown preset {config.preset!r} for model {config.model!r}; choose one of: {', '.join(presets)}")
    return config


def build_model(config: TrainConfig) -> nn.Module:
    """``create_model(config.model, in_channels=..., preset=..., **config.model_kwargs)``."""
    from focusnet.models import create_model

    return create_model(config.model, **config.model_args())


# ------------------------------------------------------------------------------------------ train
@contextlib.contextmanager
def torch_threads(num_threads: int | None):
    """Run with ``torch.set_num_threads(num_threads)`` (None: unchanged), restoring the old value."""
    old = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _restore_determinism():
    """Undo the process-wide ``torch.use_deterministic_algorithms`` that ``Trainer(deterministic=...)`` sets."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


class _DropMessages(logging.Filter):
    def __init__(self, *needles: str) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in self.needles)


@contextlib.contextmanager
def _quiet_lightning():
    """Silence Lightning messages that are noise here (and only those)."""
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    drop = _DropMessages("litlogger")
    log.addFilter(drop)
    try:
        with warnings.catch_warnings():
            # In-memory tensors: worker processes would only add start-up time.
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            # The run folder holds config.json etc. before the first checkpoint is written.
            warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
            # Lightning 2.6 with torch >= 2.10 (internal deprecation, not ours).
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
            yield
    finally:
        log.removeFilter(drop)


def _callbacks(config: TrainConfig, checkpoint) -> list:
    from lightning.pytorch.callbacks import TQDMProgressBar

    class _ProgressBar(TQDMProgressBar):
        def get_metrics(self, trainer, pl_module):  # noqa: ANN001, ANN202 - Lightning's signature
            items = super().get_metrics(trainer, pl_module)
            items.pop("v_num", None)  # the logger "version" is always "logs" here
            return items

    return [checkpoint, _ProgressBar()] if config.progress_bar else [checkpoint]


def _loader(data: SplitTensors, config: TrainConfig, shuffle: bool) -> torch.utils.data.DataLoader:
    n, b = len(data), config.batch_size
    return torch.utils.data.DataLoader(
        data.dataset(),
        batch_size=b,
        shuffle=shuffle,
        # A last training batch of one image would break BatchNorm; drop only that case.
        drop_last=shuffle and n > b and n % b == 1,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
    )


def train(config: TrainConfig) -> Path:
    """Train ``config.model`` on ``config.data_root`` and evaluate the best checkpoint on the test split.

    Steps: seeded split -> ``split.json``; config -> ``config.json``/``config.yaml``; train and val
    images into memory; Lightning fit with ``best.ckpt`` chosen by ``val_loss``; ``curves.png``;
    then the test split is loaded for the first time and ``best.ckpt`` is scored -> ``summary.json``.

    Returns:
        The run folder.

    Raises:
        FocusNetError: bad config, bad data, or a run folder that already holds files.
    """
    config.validate()
    with torch_threads(config.num_threads):
        return _train(config)


def _train(config: TrainConfig) -> Path:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from focusnet.engine.evaluate import evaluate_checkpoint
    from focusnet.engine.module import SegmentationModule
    from focusnet.engine.plots import plot_training_curves

    config = resolve_model(config.validate())
    data_root = _data_root(config)
    if not data_root.is_dir():
        raise FocusNetError(f"data_root: {data_root} is not a folder; give the folder that holds images/ and masks/")
    # Everything that can fail on bad input happens before the run folder is created.
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = build_model(config)
    split = make_split(config)
    run_dir = Path(config.out_dir) if config.out_dir is not None else default_run_dir(config.model)
    keep = [k for k in (_top_entry_inside(data_root, run_dir),) if k is not None]
    run_dir = prepare_run_dir(run_dir, keep=keep)
    config = config.replace(data_root=str(data_root.resolve()), out_dir=str(run_dir))

    _write_json(run_dir / SPLIT_JSON, split)
    _write_json(run_dir / CONFIG_JSON, config.to_dict())
    (run_dir / CONFIG_YAML).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    # Only train and val are loaded for fitting; model selection (best.ckpt) sees val_loss only.
    data = load_split_tensors(config, split, parts=("train", "val"))

    module = SegmentationModule.from_config(model, config)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir,
        filename=Path(BEST_CKPT).stem,
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    with _quiet_lightning(), _restore_determinism():
        trainer = L.Trainer(
            max_epochs=config.epochs,
            accelerator=config.accelerator,
            devices=config.devices,
            precision=config.precision,
            deterministic=config.deterministic,
            logger=CSVLogger(save_dir=run_dir, name="", version=LOG_DIR),
            callbacks=_callbacks(config, checkpoint),
            default_root_dir=run_dir,
            enable_progress_bar=config.progress_bar,
            enable_model_summary=config.progress_bar,
            log_every_n_steps=1,
        )
        trainer.fit(module, _loader(data["train"], config, shuffle=True), _loader(data["val"], config, shuffle=False))
    if trainer.interrupted:
        raise KeyboardInterrupt
    if not (run_dir / BEST_CKPT).is_file():
        raise FocusNetError(f"{run_dir}: training produced no {BEST_CKPT} (was val_loss NaN?)")

    metrics_csv = run_dir / METRICS_CSV
    if metrics_csv.is_file():
        plot_training_curves(metrics_csv, run_dir / CURVES_PNG, title=f"{config.model} ({config.preset}) - {run_dir.name}")

    del data, module, model, trainer
    summary = evaluate_checkpoint(run_dir, split="test")
    _write_json(run_dir / SUMMARY_JSON, summary)
    return run_dir
