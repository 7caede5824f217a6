"""The training configuration: one typed dataclass, validated, saved with every run.

:class:`TrainConfig` holds everything :func:`focusnet.engine.train.train` needs. Its defaults are the
paper's training setup (spec section 6): Adam (betas 0.9/0.999, eps 1e-7), batch 8, 50 epochs, the
code's step schedule 1e-4 / 1e-5 / 1e-6 / 1e-7 (``lr_schedule="paper_step"``), the ALL-HL loss with
per-batch reduction, per-image min-max inputs, masks binarised at 0.5, and the best weights kept by
validation loss.

Every bad value raises :class:`~focusnet.errors.FocusNetError` naming the key and what is allowed.

Example:
    >>> cfg = TrainConfig(data_root="data/lesions", size=64, epochs=2)
    >>> cfg.lr_factor(0), cfg.lr_factor(16), cfg.lr_factor(26), cfg.lr_factor(41)
    (1.0, 0.1, 0.01, 0.001)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focusnet.data.preprocess import NORMALIZATIONS
from focusnet.errors import FocusNetError

__all__ = [
    "LR_SCHEDULES",
    "NORMALIZATIONS",
    "MASK_RULES",
    "OPTIMIZERS",
    "PAPER_STEP_BOUNDARIES",
    "PAPER_STEP_FACTORS",
    "LRFactor",
    "TrainConfig",
    "lr_factor",
]

OPTIMIZERS = ("adam",)
LR_SCHEDULES = ("paper_step", "constant", "cosine")
MASK_RULES = ("binary", "nonzero", "half")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")
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
    raise FocusNetError(f"lr_schedule: unknown schedule {schedule!r}; choose one of: {', '.join(LR_SCHEDULES)}")


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


def _choice(key: str, value: Any, allowed: tuple) -> None:
    ok = not isinstance(value, bool) and any(value == a and type(value) is type(a) for a in allowed)
    if not ok:
        raise FocusNetError(f"{key}: invalid value {value!r}; choose one of: {', '.join(map(str, allowed))}")


def _int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise FocusNetError(f"{key}: must be an integer >= {minimum}; got {value!r}")


def _float(key: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo = f"{'(' if low_open else '['}{low:g}"
        hi = f"{high:g}{')' if high_open else ']'}"
        raise FocusNetError(f"{key}: must be a number in {lo}, {hi}; got {value!r}")


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json``/``config.yaml`` in the run folder.

    Attributes:
        model: registered model name (``focusnet models`` lists them).
        preset: model preset (``"paper"``, ``"official"``, ``"lite"``, ...); None means the model's
            default (``"paper"`` for FocusNet++), resolved and saved when training starts.
        model_kwargs: extra keyword arguments for ``create_model`` (e.g. ``{"widths": [8, 8, 8, 8, 8]}``).
        data_root: folder with ``image_dir`` and ``mask_dir`` (required to train).
        image_dir, mask_dir, mask_suffix: passed to ``focusnet.data.folder.list_pairs``.
        size: images and masks are resized to ``size x size`` (the model input).
        channels: 3 (RGB) or 1 (grey).
        normalization: input scaling: ``"minmax"`` (per-image min-max to [0, 1], the paper's) or
            ``"unit"`` (/255).
        mask_rule: how mask pixels are read (``"binary"`` refuses non-binary masks).
        split_fractions: train/val/test fractions of the seeded random split (sum 1).
        split_seed: seed of the split.
        batch_size, epochs: the paper's 8 and 50.
        optimizer, lr, betas, eps, weight_decay: Adam as in Keras (eps 1e-7).
        lr_schedule: ``"paper_step"`` (multiples 1, 0.1, 0.01, 0.001 of ``lr`` at epochs 16, 26,
            41), ``"constant"`` or ``"cosine"`` (per epoch).
        loss: keyword arguments of :class:`focusnet.losses.ALLHybridLoss` (``reduction`` etc.).
        threshold: probability threshold of the predicted masks for the metrics.
        seed: global seed (``lightning.seed_everything``) for weights and batch order.
        num_workers: DataLoader workers (0: the data is already in memory).
        num_threads: CPU threads for torch during training and evaluation (None: torch's default).
            On a busy machine, 1 can be several times faster than 2 for small inputs.
        out_dir: the run folder; None means ``runs/<model>-<time>``.
        accelerator, devices, precision, deterministic: passed to ``lightning.Trainer``.
        progress_bar: show Lightning's progress bar.
        eval_batch_size: batch size of the final evaluation (inference only).
    """

    model: str = "focusnetpp"
    preset: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    image_dir: str = "images"
    mask_dir: str = "masks"
    mask_suffix: str = ""
    size: int = 256
    channels: int = 3
    normalization: str = "minmax"
    mask_rule: str = "binary"
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 0
    batch_size: int = 8
    epochs: int = 50
    optimizer: str = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-7
    weight_decay: float = 0.0
    lr_schedule: str = "paper_step"
    loss: dict[str, Any] = field(default_factory=lambda: {"reduction": "batch"})
    threshold: float = 0.5
    seed: int = 0
    num_workers: int = 0
    num_threads: int | None = None
    out_dir: str | None = None
    accelerator: str = "cpu"
    devices: int | str = 1
    precision: str = "32-true"
    deterministic: bool | str = "warn"
    progress_bar: bool = True
    eval_batch_size: int = 16

    def __post_init__(self) -> None:
        # normalise the JSON/YAML spellings (lists, paths) to the declared types
        if isinstance(self.split_fractions, list):
            self.split_fractions = tuple(self.split_fractions)
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
        for key in ("data_root", "out_dir"):
            value = getattr(self, key)
            if isinstance(value, Path):
                setattr(self, key, str(value))
        if self.model_kwargs is None:
            self.model_kwargs = {}
        if isinstance(self.model_kwargs, dict):  # JSON lists back to tuples, so round trips compare equal
            self.model_kwargs = {k: _tuples(v) for k, v in self.model_kwargs.items()}
        if self.loss is None:
            self.loss = {"reduction": "batch"}
        self.validate()

    # ------------------------------------------------------------------------------ validation
    def validate(self) -> "TrainConfig":
        """Check every field; raise :class:`FocusNetError` naming the first bad key. Returns self."""
        if not isinstance(self.model, str) or not self.model:
            raise FocusNetError(f"model: must be a registered model name; got {self.model!r}")
        if self.preset is not None and (not isinstance(self.preset, str) or not self.preset):
            raise FocusNetError(f"preset: must be a preset name or null; got {self.preset!r}")
        if not isinstance(self.model_kwargs, dict) or not all(isinstance(k, str) for k in self.model_kwargs):
            raise FocusNetError(f"model_kwargs: must be a mapping of keyword arguments; got {self.model_kwargs!r}")
        if "preset" in self.model_kwargs:
            raise FocusNetError("model_kwargs: give the preset as the 'preset' key, not inside model_kwargs")
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise FocusNetError(f"data_root: must be a folder path; got {self.data_root!r}")
        for key in ("image_dir", "mask_dir", "mask_suffix"):
            if not isinstance(getattr(self, key), str):
                raise FocusNetError(f"{key}: must be a string; got {getattr(self, key)!r}")
        _int("size", self.size, 8)
        _choice("channels", self.channels, (1, 3))
        _choice("normalization", self.normalization, NORMALIZATIONS)
        _choice("mask_rule", self.mask_rule, MASK_RULES)
        fr = self.split_fractions
        if (
            not isinstance(fr, tuple)
            or len(fr) != 3
            or not all(isinstance(f, numbers.Real) and not isinstance(f, bool) and 0.0 <= f <= 1.0 for f in fr)
            or abs(sum(fr) - 1.0) > 1e-6
            or fr[0] <= 0
            or fr[1] <= 0
            or fr[2] <= 0
        ):
            raise FocusNetError(
                f"split_fractions: must be three positive fractions (train, val, test) summing to 1; got {fr!r}"
            )
        _int("split_seed", self.split_seed, 0)
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
            raise FocusNetError(f"betas: must be two numbers in [0, 1); got {b!r}")
        _float("eps", self.eps, 0.0, 1.0, low_open=True)
        _float("weight_decay", self.weight_decay, 0.0, 1.0)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        self._validate_loss()
        _float("threshold", self.threshold, 0.0, 1.0, low_open=True, high_open=True)
        _int("seed", self.seed, 0)
        _int("num_workers", self.num_workers, 0)
        if self.num_threads is not None:
            _int("num_threads", self.num_threads, 1)
        if self.out_dir is not None and not isinstance(self.out_dir, str):
            raise FocusNetError(f"out_dir: must be a folder path or null; got {self.out_dir!r}")
        _choice("accelerator", self.accelerator, ACCELERATORS)
        if not (
            (isinstance(self.devices, int) and not isinstance(self.devices, bool) and self.devices >= 1)
            or self.devices == "auto"
        ):
            raise FocusNetError(f"devices: must be an integer >= 1 or 'auto'; got {self.devices!r}")
        if not isinstance(self.precision, str) or not self.precision:
            raise FocusNetError(f"precision: must be a Lightning precision string such as '32-true'; got {self.precision!r}")
        if self.deterministic not in DETERMINISTIC or (
            isinstance(self.deterministic, int) and not isinstance(self.deterministic, bool)
        ):
            raise FocusNetError(f"deterministic: invalid value {self.deterministic!r}; choose one of: true, false, warn")
        if not isinstance(self.progress_bar, bool):
            raise FocusNetError(f"progress_bar: must be true or false; got {self.progress_bar!r}")
        _int("eval_batch_size", self.eval_batch_size, 1)
        return self

    def _validate_loss(self) -> None:
        if not isinstance(self.loss, dict) or not all(isinstance(k, str) for k in self.loss):
            raise FocusNetError(f"loss: must be a mapping of ALLHybridLoss keyword arguments; got {self.loss!r}")
        from focusnet.losses import ALLHybridLoss

        try:
            ALLHybridLoss(**self.loss)
        except (TypeError, ValueError) as exc:
            raise FocusNetError(f"loss: {exc}") from None

    # ------------------------------------------------------------------------------- helpers
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

    # --------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe dict (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
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
            raise FocusNetError(f"config: expected a mapping of keys to values; got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise FocusNetError(f"unknown config key {key!r}; known keys: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        """Read a ``.json`` or ``.yaml``/``.yml`` config (e.g. a run's ``config.json``)."""
        path = Path(path)
        if not path.is_file():
            raise FocusNetError(f"{path}: config file not found")
        text = path.read_text()
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                import json

                data = json.loads(text)
        except Exception as exc:  # noqa: BLE001 - any parse error is the file's fault
            raise FocusNetError(f"{path}: cannot parse the config ({str(exc).splitlines()[0]})") from None
        try:
            return cls.from_dict(data if data is not None else {})
        except FocusNetError as exc:
            raise FocusNetError(f"{path}: {exc}") from None

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with some fields changed."""
        bad = [k for k in changes if k not in {f.name for f in dataclasses.fields(self)}]
        if bad:
            raise FocusNetError(f"unknown config key {bad[0]!r}")
        return dataclasses.replace(self, **changes)


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
