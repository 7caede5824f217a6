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

import dataclasses
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from focusnet.data.preprocess import NORMALIZATIONS
from focusnet.errors import DOCS_CONFIG, FocusNetError
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
LR_SCHEDULES = Vocabulary("schedule", ("paper_step", "constant", "cosine"))
MONITORS = Vocabulary("monitor", ("val_loss", "val_dice"))  # what picks best.ckpt
STRATEGIES = Vocabulary("strategy", ("auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true"))
DETERMINISTIC = Vocabulary("deterministic setting", (True, False, "warn"))
ACCELERATORS = DEVICES  # the config key is Lightning's name for it

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


# ------------------------------------------------------------------------------------- rules
def _config_error(message: str) -> FocusNetError:
    """A config error; the message ends with a pointer to the config reference page."""
    return FocusNetError(message, see=DOCS_CONFIG)


@dataclass(frozen=True)
class Rule:
    """What one config field accepts: a closed vocabulary, or a test and the words that state it.

    Every field of the config classes declares its rule and help text (:func:`setting`); the
    validator, the ``focusnet train`` flags and ``docs/reference/config.md`` are generated from them.

    Attributes:
        says: the condition in words (``"must be an integer >= 1"``); the error is
            ``"KEY: <says>; got VALUE"``. Unused with a vocabulary.
        test: the condition (None with a vocabulary).
        vocabulary: the allowed values; the error is ``"KEY: invalid value V; choose one of: ..."``
            and a deprecated spelling is replaced by its canonical one (with a warning).
        nullable: ``null`` (None) is allowed too.

    Example:
        >>> Rule.one_of(OPTIMIZERS).allowed
        'Choose one of: adam, adamw, sgd'
        >>> Rule.at_least(1, nullable=True).check("num_threads", 0)
        Traceback (most recent call last):
        ...
        focusnet.errors.FocusNetError: num_threads: must be an integer >= 1; got 0 (see docs/reference/config.md)
    """

    says: str = ""
    test: Callable[[Any], bool] | None = None
    vocabulary: Vocabulary | None = None
    nullable: bool = False

    @classmethod
    def one_of(cls, values: Sequence[Any], name: str = "value") -> "Rule":
        """One of a vocabulary's values (a plain tuple is made a vocabulary without aliases)."""
        return cls(vocabulary=values if isinstance(values, Vocabulary) else Vocabulary(name, values))

    @classmethod
    def at_least(cls, minimum: int, *, nullable: bool = False) -> "Rule":
        """An integer (not a boolean) ``>= minimum``."""
        return cls(f"must be an integer >= {minimum}", lambda v: _is_int(v) and v >= minimum, nullable=nullable)

    @classmethod
    def number_in(
        cls, low: float, high: float, *, low_open: bool = False, high_open: bool = False, nullable: bool = False
    ) -> "Rule":
        """A finite number (not a boolean) in ``[low, high]``, either end open."""

        def test(v: Any) -> bool:
            if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)):
                return False
            return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        return cls(f"must be a number in {interval}", test, nullable=nullable)

    @classmethod
    def text(cls, says: str, *, nullable: bool = False) -> "Rule":
        """A non-empty string."""
        return cls(says, lambda v: isinstance(v, str) and bool(v), nullable=nullable)

    def check(self, key: str, value: Any) -> Any:
        """``value`` (a vocabulary's canonical spelling of it), or :class:`FocusNetError` naming ``key``."""
        if value is None and self.nullable:
            return None
        if self.vocabulary is not None:
            return self.vocabulary.normalize(value, key=key, see=DOCS_CONFIG, stacklevel=4)
        if self.test is not None and not self.test(value):
            raise _config_error(f"{key}: {self.says}; got {value!r}")
        return value

    @property
    def allowed(self) -> str:
        """What the field accepts, as one sentence (the *allowed* column of the config reference)."""
        text = f"choose one of: {self.vocabulary.listing()}" if self.vocabulary is not None else self.says
        if self.nullable and "null" not in text:
            text += ", or null"
        return text[:1].upper() + text[1:]


def setting(default: Any = dataclasses.MISSING, *, rule: Rule, help: str, factory: Any = dataclasses.MISSING) -> Any:
    """A config field that carries its :class:`Rule` and help text (``dataclasses.field`` metadata).

    Example:
        >>> setting(3, rule=Rule.one_of((1, 3), "channel count"), help="3 (RGB) or 1 (grey).").metadata["help"]
        '3 (RGB) or 1 (grey).'
    """
    return field(default=default, default_factory=factory, metadata={"rule": rule, "help": help})


@dataclass(frozen=True)
class Setting:
    """One declared config field, as :func:`settings` lists it.

    Attributes:
        key: dotted key (``"data.mask_rule"``).
        default: the default value (a section's default instance for ``data`` and ``augment``).
        rule: what it accepts.
        help: one-paragraph description (reST inline markup).
    """

    key: str
    default: Any
    rule: Rule
    help: str

    @property
    def choices(self) -> Vocabulary | None:
        """The allowed values when they are a closed set (argparse ``choices``)."""
        return self.rule.vocabulary


def settings(cls: type, prefix: str = "") -> dict[str, Setting]:
    """The declared fields of a config class, by name, in declaration order.

    Example:
        >>> settings(TrainConfig)["precision"].choices
        ('32-true', 'bf16-mixed', '16-mixed')
        >>> settings(DataConfig, "data.")["mask_rule"].key
        'data.mask_rule'
    """
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out[f.name] = Setting(prefix + f.name, default, f.metadata["rule"], f.metadata["help"])
    return out


def _validate_fields(obj: Any, prefix: str) -> None:
    """Check every declared field of ``obj`` in order, writing back canonical spellings."""
    for f in dataclasses.fields(obj):
        value = f.metadata["rule"].check(prefix + f.name, getattr(obj, f.name))
        if dataclasses.is_dataclass(value):
            value.validate()
        setattr(obj, f.name, value)


def _documented(cls: type) -> type:
    """Append the fields' help as the docstring's ``Attributes:`` section (``help(cls)`` shows it)."""
    lines = [f"        {f.name}: {f.metadata['help']}" for f in dataclasses.fields(cls)]
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Attributes:\n" + "\n".join(lines) + "\n    "
    return cls


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


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


_BOOL = Rule("must be true or false", lambda v: isinstance(v, bool))
_SPLIT_SAYS = "choose one of: default, bcdu, paper, paper-test, random, random:TRAIN,VAL,TEST, or a JSON split file"


def _is_mapping(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


# ----------------------------------------------------------------------------------- sections
@_documented
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
        False, rule=_BOOL, help="leave out unreadable pairs with a warning instead of refusing the data set."
    )

    def __post_init__(self) -> None:
        for key in ("source", "cache_dir", "split"):
            if isinstance(getattr(self, key), Path):
                setattr(self, key, str(getattr(self, key)))
        self.validate()

    def validate(self) -> "DataConfig":
        """Check every field (:func:`settings`); raise :class:`FocusNetError` naming the first bad key."""
        _validate_fields(self, "data.")
        if self.mask_suffix is not None and self.format != "folder":
            raise _config_error(f"data.mask_suffix: applies to data.format folder only (not {self.format})")
        return self

    def reader_options(self) -> dict[str, Any]:
        return {"mask_suffix": self.mask_suffix} if self.mask_suffix is not None else {}


_PROBABILITY = Rule.number_in(0.0, 1.0)
_JITTER = "strength of the colour jitter (factor drawn from ``[1 - s, 1 + s]``; 0: off), applied after the model's input normalisation."


@_documented
@dataclass
class AugmentConfig:
    """The ``augment`` section: random batch augmentation in torch, off by default (the paper has none).

    Each image of a training batch gets its own draw (the mask gets the same geometric transform).
    """

    enabled: bool = setting(False, rule=_BOOL, help="master switch.")
    hflip: float = setting(0.5, rule=_PROBABILITY, help="probability of a horizontal flip.")
    vflip: float = setting(0.5, rule=_PROBABILITY, help="probability of a vertical flip.")
    rot90: float = setting(0.5, rule=_PROBABILITY, help="probability of a rotation by a random multiple of 90 degrees.")
    rotate: float = setting(
        0.0, rule=Rule.number_in(0.0, 180.0),
        help="maximum angle (degrees) of a random free rotation (bilinear image, nearest mask; 0: off).",
    )
    brightness: float = setting(0.0, rule=_PROBABILITY, help=f"brightness {_JITTER}")
    contrast: float = setting(0.0, rule=_PROBABILITY, help=f"contrast {_JITTER}")
    saturation: float = setting(0.0, rule=_PROBABILITY, help=f"saturation {_JITTER}")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "AugmentConfig":
        """Check every field (:func:`settings`); raise :class:`FocusNetError` naming the first bad key."""
        _validate_fields(self, "augment.")
        return self


def _is_betas(b: Any) -> bool:
    return (
        isinstance(b, tuple)
        and len(b) == 2
        and all(isinstance(x, numbers.Real) and not isinstance(x, bool) and 0.0 <= x < 1.0 for x in b)
    )


@_documented
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
        factory=dict, rule=Rule("must be a mapping of keyword arguments", _is_mapping),
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
        (0.9, 0.999), rule=Rule("must be two numbers in [0, 1)", _is_betas), help="Adam/AdamW betas (Keras' 0.9, 0.999)."
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
    nesterov: bool = setting(False, rule=_BOOL, help="SGD with Nesterov momentum (``optimizer: sgd`` only).")
    lr_schedule: str = setting(
        "paper_step", rule=Rule.one_of(LR_SCHEDULES),
        help="``\"paper_step\"`` (multiples 1, 0.1, 0.01, 0.001 of ``lr`` at epochs 16, 26, 41), ``\"constant\"`` "
        "or ``\"cosine\"`` (per epoch).",
    )
    loss: dict[str, Any] = setting(
        factory=lambda: {"reduction": "batch"},
        rule=Rule("must be a mapping of ALLHybridLoss keyword arguments", _is_mapping),
        help="keyword arguments of :class:`focusnet.losses.ALLHybridLoss` (``reduction`` etc.).",
    )
    augment: AugmentConfig = setting(
        factory=AugmentConfig, rule=Rule("must be a mapping of settings", lambda v: isinstance(v, AugmentConfig)),
        help="the :class:`AugmentConfig` section (off by default).",
    )
    threshold: float = setting(
        0.5, rule=Rule.number_in(0.0, 1.0, low_open=True, high_open=True),
        help="probability threshold of the predicted masks for the metrics.",
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
        1, rule=Rule("must be an integer >= 1 or 'auto'", lambda v: (_is_int(v) and v >= 1) or v == "auto"),
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
        False, rule=_BOOL, help="``channels_last`` memory format for the model and its inputs."
    )
    cuda_graphs: str = setting(
        "auto", rule=Rule.one_of(CUDA_GRAPHS),
        help="replay the model's forward and backward as CUDA graphs: ``auto`` on one CUDA device in "
        "``32-true`` or ``bf16-mixed``, ``on`` also under DDP, ``off`` never (see docs/how-to/speed.md).",
    )
    sync_batchnorm: bool = setting(False, rule=_BOOL, help="convert BatchNorm to SyncBatchNorm under DDP.")
    progress_bar: bool = setting(True, rule=_BOOL, help="show Lightning's progress bar.")
    eval_batch_size: int = setting(
        16, rule=Rule.at_least(1), help="batch size of the final evaluation (inference only)."
    )

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
        """Check every field (:func:`settings`); raise :class:`FocusNetError` naming the first bad key.

        Deprecated spellings (``precision: fp32``, ``accelerator: gpu``) are replaced by the current ones,
        with a :class:`FutureWarning`. Returns self.
        """
        _validate_fields(self, "")
        for key in ("in_channels",):
            if key in self.model_kwargs:
                raise _config_error(f"model_kwargs.{key}: set by 'channels'; remove it from model_kwargs")
        self._validate_loss()
        return self

    def _validate_loss(self) -> None:
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
