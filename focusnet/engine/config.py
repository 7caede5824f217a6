"""The training configuration: one typed dataclass, validated, saved with every run.

:class:`TrainConfig` holds everything :func:`focusnet.engine.train.train` needs. Its defaults are the
paper's training setup (spec section 6): Adam (betas 0.9/0.999, eps 1e-7), batch 8, 50 epochs, the
code's step schedule 1e-4 / 1e-5 / 1e-6 / 1e-7 (``lr_schedule="paper_step"``), the ALL-HL loss with
per-batch reduction, per-image min-max inputs, masks binarised at 0.5, no augmentation, no early
stopping, and the best weights kept by validation loss.

The data come from a prepared cache (:func:`focusnet.data.cache.prepare`); the ``data`` section
(:class:`DataConfig`) says which data set, where, and how it is split. The optional batch
augmentation is the ``augment`` section (:class:`AugmentConfig`, off by default).

Configs are YAML/JSON files (``configs/*.yaml``) plus ``key=value`` overrides, with dotted keys for
nested values (``data.source=...``, ``model_kwargs.widths=[8,8,8,8,8]``, ``augment.enabled=true``);
values are read as YAML. Every unknown key and bad value raises
:class:`~focusnet.errors.FocusNetError` naming the key and what is allowed, before any training.

Example:
    >>> cfg = TrainConfig(data={"source": "data/lesions"}, size=64, epochs=2)
    >>> cfg.lr_factor(0), cfg.lr_factor(16), cfg.lr_factor(26), cfg.lr_factor(41)
    (1.0, 0.1, 0.01, 0.001)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> apply_overrides(cfg, ["epochs=3", "data.format=folder"]).epochs
    3
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from focusnet.data.preprocess import NORMALIZATIONS
from focusnet.errors import DOCS_CONFIG, FocusNetError

__all__ = [
    "ACCELERATORS",
    "AugmentConfig",
    "DataConfig",
    "FORMATS",
    "LR_SCHEDULES",
    "MONITORS",
    "MASK_RULES",
    "NORMALIZATIONS",
    "OPTIMIZERS",
    "PAPER_STEP_BOUNDARIES",
    "PAPER_STEP_FACTORS",
    "PRECISIONS",
    "LRFactor",
    "TrainConfig",
    "apply_overrides",
    "expand_path",
    "load_config",
    "lr_factor",
]

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("paper_step", "constant", "cosine")
MONITORS = ("val_loss", "val_dice")  # what picks best.ckpt
MASK_RULES = ("binary", "nonzero", "half")
FORMATS = ("folder", "isic2018", "dsb2018", "nnunet")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true")
DETERMINISTIC = (True, False, "warn")

# The authors' Keras scheduler (spec section 2.2 row 20), 0-based epochs:
# 1e-4 for epochs 0-15, 1e-5 for 16-25, 1e-6 for 26-40, 1e-7 from 41 on.
# Expressed as multiples of the base learning rate (default 1e-4).
PAPER_STEP_BOUNDARIES = (16, 26, 41)
PAPER_STEP_FACTORS = (1.0, 0.1, 0.01, 0.001)


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Multiple of the base learning rate used during 0-based ``epoch``.

    * ``paper_step``: 1 for epochs 0-15, 0.1 for 16-25, 0.01 for 26-40, 0.001 from 41 on
      (independent of ``epochs``).
    * ``constant``: always 1.
    * ``cosine``: ``0.5 * (1 + cos(pi * epoch / epochs))``, from 1 at epoch 0 towards 0 at the end.

    Example:
        >>> [lr_factor("paper_step", e, 50) for e in (15, 16, 25, 26, 40, 41, 49)]
        [1.0, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
        >>> lr_factor("cosine", 5, 10)
        0.5
    """
    if schedule == "paper_step":
        index = sum(epoch >= b for b in PAPER_STEP_BOUNDARIES)
        return PAPER_STEP_FACTORS[index]
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(max(epoch, 0), epochs) / max(epochs, 1)
        return float(0.5 * (1.0 + math.cos(math.pi * progress)))
    raise _config_error(f"lr_schedule: unknown schedule {schedule!r}; choose one of: {', '.join(LR_SCHEDULES)}")


class LRFactor:
    """Picklable ``epoch -> factor`` callable for :class:`torch.optim.lr_scheduler.LambdaLR`.

    A class rather than a lambda so the scheduler's state dict holds only plain values
    (checkpoints stay loadable with ``torch.load(weights_only=True)``).
    """

    def __init__(self, schedule: str, epochs: int) -> None:
        self.schedule = schedule
        self.epochs = int(epochs)

    def __call__(self, epoch: int) -> float:
        return lr_factor(self.schedule, epoch, self.epochs)


# ------------------------------------------------------------------------------------ checks
def _config_error(message: str) -> FocusNetError:
    """A config error; the message ends with a pointer to the config reference page."""
    return FocusNetError(message, see=DOCS_CONFIG)


def _choice(key: str, value: Any, allowed: tuple) -> None:
    ok = not isinstance(value, bool) and any(value == a and type(value) is type(a) for a in allowed)
    if not ok:
        raise _config_error(f"{key}: invalid value {value!r}; choose one of: {', '.join(map(str, allowed))}")


def _int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise _config_error(f"{key}: must be an integer >= {minimum}; got {value!r}")


def _float(key: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo = f"{'(' if low_open else '['}{low:g}"
        hi = f"{high:g}{')' if high_open else ']'}"
        raise _config_error(f"{key}: must be a number in {lo}, {hi}; got {value!r}")


def _bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _config_error(f"{key}: must be true or false; got {value!r}")


def _str_or_none(key: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise _config_error(f"{key}: must be a non-empty string or null; got {value!r}")


def _section(cls: type, key: str, value: Any) -> Any:
    """Build a nested section (``data``, ``augment``) from a mapping, refusing unknown keys."""
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    if not isinstance(value, dict):
        raise _config_error(f"{key}: must be a mapping of settings; got {value!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    for k in value:
        if k not in known:
            raise _config_error(f"unknown config key '{key}.{k}'; known keys in {key}: {', '.join(known)}")
    return cls(**value)


def expand_path(value: str) -> str:
    """``~`` and ``$VARS`` expanded; ``$FOCUSNET_DATA`` defaults to :func:`focusnet.data.paths.data_root`.

    Example:
        >>> expand_path("${FOCUSNET_DATA}/isic2018").endswith("/isic2018")
        True
    """
    from focusnet.data.paths import ENV_VAR, data_root

    value = re.sub(r"\$\{%s\}|\$%s(?![A-Za-z0-9_])" % (ENV_VAR, ENV_VAR), str(data_root()).replace("\\", "\\\\"), value)
    return os.path.expanduser(os.path.expandvars(value))


# ----------------------------------------------------------------------------------- sections
@dataclass
class DataConfig:
    """The ``data`` section: which data set, where, and how it is split (see ``focusnet prepare``).

    Attributes:
        format: ``folder`` (``images/`` + ``masks/``), ``isic2018``, ``dsb2018`` or ``nnunet``.
        source: the data set folder (read only); ``$FOCUSNET_DATA`` is expanded.
        mask_suffix: ``folder`` only: text after the id in mask file names (e.g. ``_mask``).
        mask_rule: ``binary`` (refuse non-binary masks), ``nonzero`` or ``half``.
        split: ``default`` (isic2018: bcdu, dsb2018: paper, else random), ``bcdu``, ``paper``,
            ``paper-test``, ``random``, ``random:0.7,0.15,0.15`` or a JSON split file.
        split_seed: seed of the ``paper``/``random`` splits.
        fold: fold of an nnU-Net ``splits_final.json``.
        cache_dir: folder of prepared caches (default ``prepared``, relative to the working folder).
        skip_bad: leave out unreadable pairs with a warning instead of refusing the data set.
    """

    format: str = "folder"
    source: str | None = None
    mask_suffix: str | None = None
    mask_rule: str = "binary"
    split: str = "default"
    split_seed: int = 0
    fold: int = 0
    cache_dir: str = "prepared"
    skip_bad: bool = False

    def __post_init__(self) -> None:
        for key in ("source", "cache_dir", "split"):
            if isinstance(getattr(self, key), Path):
                setattr(self, key, str(getattr(self, key)))
        self.validate()

    def validate(self) -> "DataConfig":
        _choice("data.format", self.format, FORMATS)
        _str_or_none("data.source", self.source)
        if self.mask_suffix is not None and not isinstance(self.mask_suffix, str):
            raise _config_error(f"data.mask_suffix: must be a string or null; got {self.mask_suffix!r}")
        if self.mask_suffix is not None and self.format != "folder":
            raise _config_error(f"data.mask_suffix: applies to data.format folder only (not {self.format})")
        _choice("data.mask_rule", self.mask_rule, MASK_RULES)
        if not isinstance(self.split, str) or not self.split:
            raise _config_error(
                "data.split: choose one of: default, bcdu, paper, paper-test, random, "
                f"random:TRAIN,VAL,TEST, or a JSON split file; got {self.split!r}"
            )
        _int("data.split_seed", self.split_seed, 0)
        _int("data.fold", self.fold, 0)
        if not isinstance(self.cache_dir, str) or not self.cache_dir:
            raise _config_error(f"data.cache_dir: must be a folder path; got {self.cache_dir!r}")
        _bool("data.skip_bad", self.skip_bad)
        return self

    def reader_options(self) -> dict[str, Any]:
        return {"mask_suffix": self.mask_suffix} if self.mask_suffix is not None else {}


@dataclass
class AugmentConfig:
    """The ``augment`` section: random batch augmentation in torch, off by default (the paper has none).

    Each image of a training batch gets its own draw (the mask gets the same geometric transform).

    Attributes:
        enabled: master switch.
        hflip, vflip: probability of a horizontal / vertical flip.
        rot90: probability of a rotation by a random multiple of 90 degrees.
        rotate: maximum angle (degrees) of a random free rotation (bilinear image, nearest mask;
            0: off).
        brightness, contrast, saturation: colour jitter strengths (factor drawn from
            ``[1 - s, 1 + s]``; 0: off). Applied after the model's input normalisation.
    """

    enabled: bool = False
    hflip: float = 0.5
    vflip: float = 0.5
    rot90: float = 0.5
    rotate: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "AugmentConfig":
        _bool("augment.enabled", self.enabled)
        for key in ("hflip", "vflip", "rot90"):
            _float(f"augment.{key}", getattr(self, key), 0.0, 1.0)
        _float("augment.rotate", self.rotate, 0.0, 180.0)
        for key in ("brightness", "contrast", "saturation"):
            _float(f"augment.{key}", getattr(self, key), 0.0, 1.0)
        return self


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json``/``config.yaml`` in the run folder.

    Attributes:
        model: registered model name (``focusnet models`` lists them).
        preset: model preset (``"paper"``, ``"official"``, ``"lite"``, ...); None means the model's
            default (``"paper"`` for FocusNet++), resolved and saved when training starts.
        model_kwargs: extra keyword arguments for ``create_model`` (e.g. ``{"widths": [8, 8, 8, 8, 8]}``).
        data: the :class:`DataConfig` section (format, source, split, cache folder).
        size: images and masks are resized to ``size x size`` (the model input).
        channels: 3 (RGB) or 1 (grey).
        normalization: ``"minmax"`` (per-image min-max to [0, 1], the paper's) or ``"unit"`` (/255).
        batch_size: images per training step, the paper's 8 (per process under DDP: the global batch
            is ``batch_size x devices x num_nodes``).
        epochs: training epochs, the paper's 50.
        optimizer: ``adam`` (the paper, Keras eps 1e-7), ``adamw`` or ``sgd`` (with ``momentum``,
            ``nesterov``).
        lr: base learning rate (the paper's 1e-4); ``lr_schedule`` scales it per epoch.
        betas: Adam/AdamW betas (Keras' 0.9, 0.999).
        eps: Adam/AdamW epsilon (Keras' 1e-7; PyTorch's default would be 1e-8).
        weight_decay: weight decay of every optimiser (0: none; decoupled for ``adamw``).
        momentum: SGD momentum (``optimizer: sgd`` only).
        nesterov: SGD with Nesterov momentum (``optimizer: sgd`` only).
        lr_schedule: ``"paper_step"`` (multiples 1, 0.1, 0.01, 0.001 of ``lr`` at epochs 16, 26,
            41), ``"constant"`` or ``"cosine"`` (per epoch).
        loss: keyword arguments of :class:`focusnet.losses.ALLHybridLoss` (``reduction`` etc.).
        augment: the :class:`AugmentConfig` section (off by default).
        threshold: probability threshold of the predicted masks for the metrics.
        monitor: what picks ``best.ckpt``: ``"val_loss"`` (lowest, the paper's) or ``"val_dice"``
            (highest per-image mean validation Dice at ``threshold``).
        seed: global seed of weights, batch order, dropout and augmentation.
        deterministic: ``true`` (deterministic algorithms), ``false`` or ``"warn"``.
        num_workers: DataLoader workers (0: the data is already in memory).
        num_threads: CPU threads for torch (None: torch's default).
        max_minutes: wall-time budget for training (None: no budget); checked after each epoch, so a
            run can overshoot it by at most one epoch. The best weights so far are kept.
        out_dir: the run folder; None means ``runs/<model>-<time>``.
        accelerator: ``cpu``, ``gpu`` (``cuda``), ``mps`` or ``auto``; passed to ``lightning.Trainer``.
        devices: devices per node (an integer or ``auto``); ``devices > 1`` trains with DDP.
        num_nodes: machines; ``num_nodes > 1`` trains with DDP.
        strategy: Lightning strategy; ``auto`` becomes ``ddp`` when training on several devices.
        precision: ``32-true``, ``bf16-mixed`` or ``16-mixed`` (mixed precision is for GPUs; the
            loss is always summed in float32).
        channels_last: ``channels_last`` memory format for the model and its inputs.
        sync_batchnorm: convert BatchNorm to SyncBatchNorm under DDP.
        progress_bar: show Lightning's progress bar.
        eval_batch_size: batch size of the final evaluation (inference only).
    """

    model: str = "focusnetpp"
    preset: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    size: int = 256
    channels: int = 3
    normalization: str = "minmax"
    batch_size: int = 8
    epochs: int = 50
    optimizer: str = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-7
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    lr_schedule: str = "paper_step"
    loss: dict[str, Any] = field(default_factory=lambda: {"reduction": "batch"})
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    threshold: float = 0.5
    monitor: str = "val_loss"
    seed: int = 0
    deterministic: bool | str = "warn"
    num_workers: int = 0
    num_threads: int | None = None
    max_minutes: float | None = None
    out_dir: str | None = None
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    channels_last: bool = False
    sync_batchnorm: bool = False
    progress_bar: bool = True
    eval_batch_size: int = 16

    def __post_init__(self) -> None:
        # normalise the JSON/YAML spellings (lists, paths, mappings) to the declared types
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
        for key in ("lr", "eps", "weight_decay", "momentum", "threshold"):  # YAML 1.1 reads 1e-4 as a string
            setattr(self, key, _yaml_float(getattr(self, key)))
        if isinstance(self.out_dir, Path):
            self.out_dir = str(self.out_dir)
        if self.model_kwargs is None:
            self.model_kwargs = {}
        if isinstance(self.model_kwargs, dict):  # JSON lists back to tuples, so round trips compare equal
            self.model_kwargs = {k: _tuples(v) for k, v in self.model_kwargs.items()}
            if "preset" in self.model_kwargs:  # `model_kwargs.preset=lite` means the preset
                preset = self.model_kwargs.pop("preset")
                if self.preset is not None and preset != self.preset:
                    raise _config_error(f"model_kwargs.preset: {preset!r} contradicts preset {self.preset!r}; give one")
                self.preset = preset
        if self.loss is None:
            self.loss = {"reduction": "batch"}
        self.data = _section(DataConfig, "data", self.data)
        self.augment = _section(AugmentConfig, "augment", self.augment)
        self.validate()

    # ------------------------------------------------------------------------------ validation
    def validate(self) -> "TrainConfig":
        """Check every field; raise :class:`FocusNetError` naming the first bad key. Returns self."""
        if not isinstance(self.model, str) or not self.model:
            raise _config_error(f"model: must be a registered model name; got {self.model!r}")
        if self.preset is not None and (not isinstance(self.preset, str) or not self.preset):
            raise _config_error(f"preset: must be a preset name or null; got {self.preset!r}")
        if not isinstance(self.model_kwargs, dict) or not all(isinstance(k, str) for k in self.model_kwargs):
            raise _config_error(f"model_kwargs: must be a mapping of keyword arguments; got {self.model_kwargs!r}")
        for key in ("in_channels",):
            if key in self.model_kwargs:
                raise _config_error(f"model_kwargs.{key}: set by 'channels'; remove it from model_kwargs")
        if not isinstance(self.data, DataConfig):
            raise _config_error(f"data: must be a mapping of settings; got {self.data!r}")
        self.data.validate()
        _int("size", self.size, 8)
        _choice("channels", self.channels, (1, 3))
        _choice("normalization", self.normalization, NORMALIZATIONS)
        _int("batch_size", self.batch_size, 1)
        _int("epochs", self.epochs, 1)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _float("lr", self.lr, 0.0, 10.0, low_open=True)
        b = self.betas
        if not (
            isinstance(b, tuple)
            and len(b) == 2
            and all(isinstance(x, numbers.Real) and not isinstance(x, bool) and 0.0 <= x < 1.0 for x in b)
        ):
            raise _config_error(f"betas: must be two numbers in [0, 1); got {b!r}")
        _float("eps", self.eps, 0.0, 1.0, low_open=True)
        _float("weight_decay", self.weight_decay, 0.0, 1.0)
        _float("momentum", self.momentum, 0.0, 1.0, high_open=True)
        _bool("nesterov", self.nesterov)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _choice("monitor", self.monitor, MONITORS)
        self._validate_loss()
        if not isinstance(self.augment, AugmentConfig):
            raise _config_error(f"augment: must be a mapping of settings; got {self.augment!r}")
        self.augment.validate()
        _float("threshold", self.threshold, 0.0, 1.0, low_open=True, high_open=True)
        _int("seed", self.seed, 0)
        if self.deterministic not in DETERMINISTIC or (
            isinstance(self.deterministic, int) and not isinstance(self.deterministic, bool)
        ):
            raise _config_error(f"deterministic: invalid value {self.deterministic!r}; choose one of: true, false, warn")
        _int("num_workers", self.num_workers, 0)
        if self.num_threads is not None:
            _int("num_threads", self.num_threads, 1)
        if self.max_minutes is not None:
            _float("max_minutes", self.max_minutes, 0.0, 1e6, low_open=True)
        if self.out_dir is not None and (not isinstance(self.out_dir, str) or not self.out_dir):
            raise _config_error(f"out_dir: must be a folder path or null; got {self.out_dir!r}")
        _choice("accelerator", self.accelerator, ACCELERATORS)
        if not (
            (isinstance(self.devices, int) and not isinstance(self.devices, bool) and self.devices >= 1)
            or self.devices == "auto"
        ):
            raise _config_error(f"devices: must be an integer >= 1 or 'auto'; got {self.devices!r}")
        _int("num_nodes", self.num_nodes, 1)
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("precision", self.precision, PRECISIONS)
        _bool("channels_last", self.channels_last)
        _bool("sync_batchnorm", self.sync_batchnorm)
        _bool("progress_bar", self.progress_bar)
        _int("eval_batch_size", self.eval_batch_size, 1)
        return self

    def _validate_loss(self) -> None:
        if not isinstance(self.loss, dict) or not all(isinstance(k, str) for k in self.loss):
            raise _config_error(f"loss: must be a mapping of ALLHybridLoss keyword arguments; got {self.loss!r}")
        from focusnet.losses import ALLHybridLoss

        try:
            ALLHybridLoss(**self.loss)
        except (TypeError, ValueError) as exc:
            raise _config_error(f"loss: {exc}") from None

    # ------------------------------------------------------------------------------- helpers
    @property
    def data_root(self) -> str | None:
        """The data set folder (``data.source``), kept for older callers."""
        return self.data.source

    @property
    def mask_rule(self) -> str:
        return self.data.mask_rule

    def lr_factor(self, epoch: int) -> float:
        """Multiple of ``lr`` used during 0-based ``epoch`` (see :func:`lr_factor`)."""
        return lr_factor(self.lr_schedule, epoch, self.epochs)

    def model_args(self) -> dict[str, Any]:
        """Keyword arguments for ``create_model(self.model, **...)``: ``in_channels`` and the preset."""
        kwargs: dict[str, Any] = {"in_channels": self.channels}
        if self.preset is not None:
            kwargs["preset"] = self.preset
        kwargs.update(self.model_kwargs)
        return kwargs

    def preprocessing(self) -> dict[str, Any]:
        """``{"size", "channels", "normalization"}``: what a saved model needs to preprocess inputs."""
        return {"size": self.size, "channels": self.channels, "normalization": self.normalization}

    # --------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe dict (tuples become lists, sections become mappings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value = {g.name: getattr(value, g.name) for g in dataclasses.fields(value)}
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict such as ``to_dict()``'s; unknown keys raise :class:`FocusNetError`.

        Example:
            >>> TrainConfig.from_dict({"epochs": 3, "lr_schedul": "cosine"})  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            focusnet.errors.FocusNetError: unknown config key 'lr_schedul'; known keys: ...
        """
        if not isinstance(data, dict):
            raise _config_error(f"config: expected a mapping of keys to values; got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                hint = " (now data.source)" if key == "data_root" else ""
                raise _config_error(f"unknown config key {key!r}{hint}; known keys: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path, overrides: Sequence[str] = ()) -> "TrainConfig":
        """Read a ``.json`` or ``.yaml``/``.yml`` config (e.g. a run's ``config.json``), then apply overrides."""
        path = Path(path)
        data = read_config_file(path)
        try:
            return cls.from_dict(_override_dict(data, overrides))
        except FocusNetError as exc:
            raise FocusNetError(f"{path}: {exc}") from None  # exc already names the config page

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with some fields changed."""
        bad = [k for k in changes if k not in {f.name for f in dataclasses.fields(self)}]
        if bad:
            raise _config_error(f"unknown config key {bad[0]!r}")
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------------- overrides
def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON config file (FocusNetError naming the file when unreadable)."""
    path = Path(path)
    if not path.is_file():
        raise _config_error(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            import json

            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is the file's fault
        raise _config_error(f"{path}: cannot parse the config ({str(exc).splitlines()[0]})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise _config_error(f"{path}: expected a mapping of keys to values; got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"data.source=x"`` -> (``["data", "source"]``, ``"x"``); the value is read as YAML."""
    import yaml

    if "=" not in item:
        raise _config_error(f"override {item!r}: expected KEY=VALUE, e.g. epochs=10 or data.source=/path")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(p.strip() for p in parts):
        raise _config_error(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return [p.strip() for p in parts], value


def _override_dict(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    import copy

    data = copy.deepcopy(data)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    nested = {"data": DataConfig, "augment": AugmentConfig}
    for item in overrides:
        parts, value = parse_override(item)
        if parts == ["model_kwargs", "preset"]:  # the preset is a key of its own
            parts = ["preset"]
        if parts[0] not in known:
            raise _config_error(f"unknown config key {parts[0]!r} (in override {item!r}); known keys: {', '.join(sorted(known))}")
        if len(parts) > 1 and parts[0] in nested:
            allowed = [f.name for f in dataclasses.fields(nested[parts[0]])]
            if len(parts) != 2 or parts[1] not in allowed:
                raise _config_error(f"unknown config key {'.'.join(parts)!r}; known keys in {parts[0]}: {', '.join(allowed)}")
        elif len(parts) > 1 and parts[0] not in ("model_kwargs", "loss"):
            raise _config_error(f"{parts[0]}: not a section; write {parts[0]}=VALUE")
        target = data
        for p in parts[:-1]:
            if not isinstance(target.get(p), dict):
                target[p] = {}
            target = target[p]
        target[parts[-1]] = value
    return data


def apply_overrides(config: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """``config`` with ``key=value`` overrides applied (dotted keys for sections), validated."""
    return TrainConfig.from_dict(_override_dict(config.to_dict(), overrides))


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """A config file (or the defaults when ``path`` is None) with ``key=value`` overrides applied."""
    if path is None:
        return TrainConfig.from_dict(_override_dict({}, overrides))
    return TrainConfig.from_file(path, overrides)


_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _yaml_float(value: Any) -> Any:
    """``"1e-4"`` (a string to YAML 1.1) as the float it means; anything else unchanged."""
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        return float(value)
    return value


def _tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
