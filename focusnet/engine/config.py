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

Each field declares what it accepts and its help text once (:func:`setting`, a :class:`Rule`); the
validator, the ``focusnet train`` flags and ``docs/reference/config.md`` are generated from that
(:func:`settings` lists them). Closed sets shared with other commands (data formats, mask rules,
precisions, devices) come from :mod:`focusnet.vocab`.

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

import copy
import dataclasses
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from focusnet.data.preprocess import NORMALIZATIONS
from focusnet.engine.config_augment import AugmentConfig
from focusnet.engine.config_fields import (
    BOOL,
    Rule,
    Setting,
    config_error,
    documented,
    is_int,
    is_mapping,
    section,
    setting,
    settings,
    unknown_key_error,
    validate_fields,
)
from focusnet.engine.config_files import (
    as_plain,
    as_tuples,
    expand_path,
    parse_override,
    read_config_file,
    yaml_float,
)
from focusnet.engine.lr_schedule import LR_SCHEDULES, PAPER_STEP_BOUNDARIES, PAPER_STEP_FACTORS, LRFactor, lr_factor
from focusnet.errors import FocusNetError
from focusnet.losses import LOSSES, create_loss
from focusnet.vocab import CUDA_GRAPHS, DEVICES, FORMATS, MASK_RULES, PRECISIONS, Vocabulary

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
    "Rule",
    "Setting",
    "TrainConfig",
    "apply_overrides",
    "expand_path",
    "load_config",
    "lr_factor",
    "setting",
    "settings",
]

# The closed sets only the config uses; the shared ones (formats, mask rules, precisions, devices)
# live in focusnet.vocab.
OPTIMIZERS = Vocabulary("optimizer", ("adam", "adamw", "sgd"))
MONITORS = Vocabulary("monitor", ("val_loss", "val_dice"))  # what picks best.ckpt
STRATEGIES = Vocabulary("strategy", ("auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true"))
DETERMINISTIC = Vocabulary("deterministic setting", (True, False, "warn"))
ACCELERATORS = DEVICES  # the config key is Lightning's name for it


_SPLIT_SAYS = "choose one of: default, bcdu, paper, paper-test, random, random:TRAIN,VAL,TEST, or a JSON split file"


# ----------------------------------------------------------------------------------- sections
@documented
@dataclass
class DataConfig:
    """The ``data`` section: which data set, where, and how it is split (see ``focusnet prepare``)."""

    format: str = setting(
        "folder", rule=Rule.one_of(FORMATS),
        help="``folder`` (``images/`` + ``masks/``), ``isic2018``, ``dsb2018`` or ``nnunet``.",
    )
    source: str | None = setting(
        None, rule=Rule.text("must be a non-empty string or null", nullable=True),
        help="the data set folder (read only); ``$FOCUSNET_DATA`` is expanded.",
    )
    mask_suffix: str | None = setting(
        None, rule=Rule("must be a string or null", lambda v: isinstance(v, str), nullable=True),
        help="``folder`` only: text after the id in mask file names (e.g. ``_mask``).",
    )
    mask_rule: str = setting(
        "binary", rule=Rule.one_of(MASK_RULES),
        help="``binary`` (refuse non-binary masks), ``nonzero`` or ``half``.",
    )
    split: str = setting(
        "default", rule=Rule.text(_SPLIT_SAYS),
        help="``default`` (isic2018: bcdu, dsb2018: paper, else random), ``bcdu``, ``paper``, ``paper-test``, "
        "``random``, ``random:0.7,0.15,0.15`` or a JSON split file.",
    )
    split_seed: int = setting(0, rule=Rule.at_least(0), help="seed of the ``paper``/``random`` splits.")
    fold: int = setting(0, rule=Rule.at_least(0), help="fold of an nnU-Net ``splits_final.json``.")
    cache_dir: str = setting(
        "prepared", rule=Rule.text("must be a folder path"),
        help="folder of prepared caches (default ``prepared``, relative to the working folder).",
    )
    skip_bad: bool = setting(
        False, rule=BOOL, help="leave out unreadable pairs with a warning instead of refusing the data set."
    )

    def __post_init__(self) -> None:
        for key in ("source", "cache_dir", "split"):
            if isinstance(getattr(self, key), Path):
                setattr(self, key, str(getattr(self, key)))
        self.validate()

    def validate(self) -> DataConfig:
        """Check every field (:func:`settings`); raise :class:`FocusNetError` naming the first bad key."""
        validate_fields(self, "data.")
        if self.mask_suffix is not None and self.format != "folder":
            raise config_error(f"data.mask_suffix: applies to data.format folder only (not {self.format})")
        return self

    def reader_options(self) -> dict[str, Any]:
        return {"mask_suffix": self.mask_suffix} if self.mask_suffix is not None else {}


def _is_betas(b: Any) -> bool:
    return (
        isinstance(b, tuple)
        and len(b) == 2
        and all(isinstance(x, numbers.Real) and not isinstance(x, bool) and 0.0 <= cast(float, x) < 1.0 for x in b)
    )


@documented
@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json``/``config.yaml`` in the run folder."""

    model: str = setting(
        "focusnetpp", rule=Rule.text("must be a registered model name"),
        help="registered model name (``focusnet models`` lists them).",
    )
    preset: str | None = setting(
        None, rule=Rule.text("must be a preset name or null", nullable=True),
        help="model preset (``\"paper\"``, ``\"official\"``, ``\"lite\"``, ...); None means the model's default "
        "(``\"paper\"`` for FocusNet++), resolved and saved when training starts.",
    )
    model_kwargs: dict[str, Any] = setting(
        factory=dict, rule=Rule("must be a mapping of keyword arguments", is_mapping),
        help="extra keyword arguments for ``create_model`` (e.g. ``{\"widths\": [8, 8, 8, 8, 8]}``).",
    )
    data: DataConfig = setting(
        factory=DataConfig, rule=Rule("must be a mapping of settings", lambda v: isinstance(v, DataConfig)),
        help="the :class:`DataConfig` section (format, source, split, cache folder).",
    )
    size: int = setting(
        256, rule=Rule.at_least(8), help="images and masks are resized to ``size x size`` (the model input)."
    )
    channels: int = setting(3, rule=Rule.one_of((1, 3), "channel count"), help="3 (RGB) or 1 (grey).")
    warmup_size: int | None = setting(
        None, rule=Rule.at_least(8, nullable=True),
        help="progressive resizing: training batches are resized to ``warmup_size x warmup_size`` (smaller than "
        "``size``) until ``warmup_share`` of the run, then train at ``size``; validation always runs at ``size``. "
        "Cheaper early steps buy more epochs in a time budget. None: off.",
    )
    warmup_share: float = setting(
        0.5, rule=Rule.number_in(0.0, 1.0),
        help="the share of the run trained at ``warmup_size``: of the epochs, or of ``max_minutes`` when that "
        "binds first (the progress of the ``cosine`` schedule).",
    )
    normalization: str = setting(
        "minmax", rule=Rule.one_of(NORMALIZATIONS, "normalization"),
        help="``\"minmax\"`` (per-image min-max to [0, 1], the paper's) or ``\"unit\"`` (/255).",
    )
    batch_size: int = setting(
        8, rule=Rule.at_least(1),
        help="images per training step, the paper's 8 (per process under DDP: the global batch is "
        "``batch_size x devices x num_nodes``).",
    )
    epochs: int = setting(50, rule=Rule.at_least(1), help="training epochs, the paper's 50.")
    optimizer: str = setting(
        "adam", rule=Rule.one_of(OPTIMIZERS),
        help="``adam`` (the paper, Keras eps 1e-7), ``adamw`` or ``sgd`` (with ``momentum``, ``nesterov``).",
    )
    lr: float = setting(
        1e-4, rule=Rule.number_in(0.0, 10.0, low_open=True),
        help="base learning rate (the paper's 1e-4); ``lr_schedule`` scales it per epoch.",
    )
    betas: tuple[float, float] = setting(
        (0.9, 0.999), rule=Rule("must be two numbers in [0, 1)", _is_betas),
        help="Adam/AdamW betas (Keras' 0.9, 0.999).",
    )
    eps: float = setting(
        1e-7, rule=Rule.number_in(0.0, 1.0, low_open=True),
        help="Adam/AdamW epsilon (Keras' 1e-7; PyTorch's default would be 1e-8).",
    )
    weight_decay: float = setting(
        0.0, rule=Rule.number_in(0.0, 1.0), help="weight decay of every optimiser (0: none; decoupled for ``adamw``)."
    )
    momentum: float = setting(
        0.9, rule=Rule.number_in(0.0, 1.0, high_open=True), help="SGD momentum (``optimizer: sgd`` only)."
    )
    nesterov: bool = setting(False, rule=BOOL, help="SGD with Nesterov momentum (``optimizer: sgd`` only).")
    lr_schedule: str = setting(
        "paper_step", rule=Rule.one_of(LR_SCHEDULES),
        help="``\"paper_step\"`` (multiples 1, 0.1, 0.01, 0.001 of ``lr`` at epochs 16, 26, 41), ``\"constant\"`` "
        "or ``\"cosine\"`` (per epoch).",
    )
    loss: dict[str, Any] = setting(
        factory=lambda: {"reduction": "batch"},
        rule=Rule("must be a mapping: the loss's name and keyword arguments", is_mapping),
        help=f"the loss: ``name`` (one of {LOSSES.listing()}; default ``all_hl``, FocusNet++'s ALL-HL) and the "
        "keyword arguments of its class: :class:`focusnet.losses.ALLHybridLoss` (``reduction`` etc.) or "
        ":class:`focusnet.losses.DiceCELoss`.",
    )
    augment: AugmentConfig = setting(
        factory=AugmentConfig, rule=Rule("must be a mapping of settings", lambda v: isinstance(v, AugmentConfig)),
        help="the :class:`AugmentConfig` section (off by default).",
    )
    threshold: float = setting(
        0.5, rule=Rule.number_in(0.0, 1.0, low_open=True, high_open=True),
        help="probability threshold of the predicted masks for the metrics.",
    )
    ema_decay: float | None = setting(
        None, rule=Rule.number_in(0.0, 1.0, low_open=True, high_open=True, nullable=True),
        help="exponential moving average of the weights, updated every step with this decay (e.g. 0.995: "
        "about the last 200 steps); validation, ``best.ckpt`` and the saved weights use the average. None: off.",
    )
    debias_bn_stats: bool = setting(
        True, rule=BOOL,
        help="BatchNorm running statistics without the pull of their start values (0 and 1), as Adam debiases its "
        "moments: evaluation works from the first epoch even at the paper's Keras momentum (0.01), where the raw "
        "statistics give validation Dice 0 for several epochs. Training is unchanged; after about "
        "``16 / momentum`` steps the two agree to float32 precision. ``false``: PyTorch's and Keras' raw "
        "running averages (:class:`focusnet.engine.callbacks.DebiasedBatchNorm`).",
    )
    monitor: str = setting(
        "val_loss", rule=Rule.one_of(MONITORS),
        help="what picks ``best.ckpt``: ``\"val_loss\"`` (lowest, the paper's) or ``\"val_dice\"`` (highest "
        "per-image mean validation Dice at ``threshold``).",
    )
    seed: int = setting(
        0, rule=Rule.at_least(0), help="global seed of weights, batch order, dropout and augmentation."
    )
    deterministic: bool | str = setting(
        "warn", rule=Rule.one_of(DETERMINISTIC),
        help="``true`` (deterministic algorithms), ``false`` or ``\"warn\"``.",
    )
    num_workers: int = setting(
        0, rule=Rule.at_least(0), help="DataLoader workers (0: the data is already in memory)."
    )
    num_threads: int | None = setting(
        None, rule=Rule.at_least(1, nullable=True), help="CPU threads for torch (None: torch's default)."
    )
    max_minutes: float | None = setting(
        None, rule=Rule.number_in(0.0, 1e6, low_open=True, nullable=True),
        help="wall-time budget for training (None: no budget); checked after each epoch, so a run can overshoot "
        "it by at most one epoch. The best weights so far are kept.",
    )
    out_dir: str | None = setting(
        None, rule=Rule.text("must be a folder path or null", nullable=True),
        help="the run folder; None means ``runs/<model>-<time>``.",
    )
    accelerator: str = setting(
        "cpu", rule=Rule.one_of(DEVICES),
        help="``cpu``, ``cuda``, ``mps`` or ``auto`` (CUDA when available); passed to ``lightning.Trainer``. "
        "``gpu`` still means ``cuda``, with a warning.",
    )
    devices: int | str = setting(
        1, rule=Rule("must be an integer >= 1 or 'auto'", lambda v: (is_int(v) and v >= 1) or v == "auto"),
        help="devices per node (an integer or ``auto``); ``devices > 1`` trains with DDP.",
    )
    num_nodes: int = setting(1, rule=Rule.at_least(1), help="machines; ``num_nodes > 1`` trains with DDP.")
    strategy: str = setting(
        "auto", rule=Rule.one_of(STRATEGIES),
        help="Lightning strategy; ``auto`` becomes ``ddp`` when training on several devices.",
    )
    precision: str = setting(
        "32-true", rule=Rule.one_of(PRECISIONS),
        help="``32-true``, ``bf16-mixed`` or ``16-mixed`` (mixed precision is for GPUs; the loss is always summed "
        "in float32). The older ``32``, ``fp32`` and ``bf16`` still work, with a warning.",
    )
    channels_last: bool = setting(
        False, rule=BOOL, help="``channels_last`` memory format for the model and its inputs."
    )
    cuda_graphs: str = setting(
        "auto", rule=Rule.one_of(CUDA_GRAPHS),
        help="replay the model's forward and backward as CUDA graphs: ``auto`` on one CUDA device in "
        "``32-true`` or ``bf16-mixed``, ``on`` also under DDP, ``off`` never (see docs/how-to/speed.md).",
    )
    sync_batchnorm: bool = setting(False, rule=BOOL, help="convert BatchNorm to SyncBatchNorm under DDP.")
    progress_bar: bool = setting(True, rule=BOOL, help="show Lightning's progress bar.")
    eval_batch_size: int = setting(
        16, rule=Rule.at_least(1), help="batch size of the final evaluation (inference only)."
    )

    def __post_init__(self) -> None:
        # normalise the JSON/YAML spellings (lists, paths, mappings) to the declared types
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
        for key in ("lr", "eps", "weight_decay", "momentum", "threshold"):  # YAML 1.1 reads 1e-4 as a string
            setattr(self, key, yaml_float(getattr(self, key)))
        if isinstance(self.out_dir, Path):
            self.out_dir = str(self.out_dir)
        if self.model_kwargs is None:
            self.model_kwargs = {}
        if isinstance(self.model_kwargs, dict):  # JSON lists back to tuples, so round trips compare equal
            self.model_kwargs = {k: as_tuples(v) for k, v in self.model_kwargs.items()}
            if "preset" in self.model_kwargs:  # `model_kwargs.preset=lite` means the preset
                preset = self.model_kwargs.pop("preset")
                if self.preset is not None and preset != self.preset:
                    raise config_error(f"model_kwargs.preset: {preset!r} contradicts preset {self.preset!r}; give one")
                self.preset = preset
        if self.loss is None:
            self.loss = {"reduction": "batch"}
        self.data = section(DataConfig, "data", self.data)
        self.augment = section(AugmentConfig, "augment", self.augment)
        self.validate()

    # ------------------------------------------------------------------------------ validation
    def validate(self) -> TrainConfig:
        """Check every field (:func:`settings`); raise :class:`FocusNetError` naming the first bad key.

        Deprecated spellings (``precision: fp32``, ``accelerator: gpu``) are replaced by the current ones,
        with a :class:`FutureWarning`. Returns self.
        """
        validate_fields(self, "")
        for key in ("in_channels",):
            if key in self.model_kwargs:
                raise config_error(f"model_kwargs.{key}: set by 'channels'; remove it from model_kwargs")
        if self.warmup_size is not None and self.warmup_size >= self.size:
            raise config_error(f"warmup_size: {self.warmup_size} must be smaller than size ({self.size}), or null")
        self._validate_loss()
        return self

    def _validate_loss(self) -> None:
        try:
            create_loss(self.loss)
        except (TypeError, ValueError) as exc:
            raise config_error(f"loss: {exc}") from None

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
            out[f.name] = as_plain(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict such as ``to_dict()``'s; unknown keys raise :class:`FocusNetError`.

        Example:
            >>> TrainConfig.from_dict({"epochs": 3, "lr_schedul": "cosine"})  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            focusnet.errors.FocusNetError: unknown config key 'lr_schedul'; did you mean 'lr_schedule'? ...
        """
        if not isinstance(data, dict):
            raise config_error(f"config: expected a mapping of keys to values; got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key == "data_root":
                raise config_error("unknown config key 'data_root' (now data.source)")
            if key not in known:
                raise unknown_key_error(str(key), known)
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
        """Read a ``.json`` or ``.yaml``/``.yml`` config (e.g. a run's ``config.json``), then apply overrides."""
        path = Path(path)
        data = read_config_file(path)
        try:
            return cls.from_dict(_override_dict(data, overrides))
        except FocusNetError as exc:
            raise FocusNetError(f"{path}: {exc}") from None  # exc already names the config page

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        known = {f.name for f in dataclasses.fields(self)}
        bad = [k for k in changes if k not in known]
        if bad:
            raise unknown_key_error(bad[0], known)
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------------- overrides
def _override_dict(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    nested = {"data": DataConfig, "augment": AugmentConfig}
    for item in overrides:
        parts, value = parse_override(item)
        if parts == ["model_kwargs", "preset"]:  # the preset is a key of its own
            parts = ["preset"]
        if parts[0] not in known:
            raise unknown_key_error(parts[0], known, context=f" (in override {item!r})")
        if len(parts) > 1 and parts[0] in nested:
            allowed = [f.name for f in dataclasses.fields(nested[parts[0]])]
            if len(parts) != 2 or parts[1] not in allowed:
                where = f" (in override {item!r})"
                raise unknown_key_error(".".join(parts[1:]), allowed, section=parts[0], context=where)
        elif len(parts) > 1 and parts[0] not in ("model_kwargs", "loss"):
            raise config_error(f"{parts[0]}: not a section; write {parts[0]}=VALUE")
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
