"""What a benchmark run measures: model specs (``NAME[:PRESET][[KEY=VALUE;...]][@BACKEND]``), their
row labels, and the check of a run's inputs before any worker starts.

The part before ``@`` is :mod:`focusnet.models.spec`'s grammar, the one ``focusnet compare`` reads.

Example:
    >>> [s.label for s in parse_model_specs("focusnetpp:paper, unet, focusnetpp:lite[norm=instance]")]
    ['focusnetpp:paper', 'unet', 'focusnetpp:lite[norm=instance]']
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from focusnet.errors import FocusNetError
from focusnet.models import list_models, list_presets
from focusnet.models.spec import SPEC_SYNTAX, ModelSpec, check_arguments, split_model_specs
from focusnet.vocab import BACKENDS, BENCHMARK_PRECISIONS

__all__ = [
    "MONAI_BASICUNET",
    "PHASES",
    "PRECISIONS",
    "BenchSpec",
    "ModelSpec",
    "check_inputs",
    "normalise_spec",
    "parse_model_spec",
    "parse_model_specs",
    "spec_label",
]

PRECISIONS = BENCHMARK_PRECISIONS  # 32-true, bf16-mixed (the older fp32, bf16 with a FutureWarning)
PHASES = ("inference", "train")
#: Registry-style name of MONAI's BasicUNet (2D, default features) when ``monai`` is installed.
MONAI_BASICUNET = "monai_basicunet"


@dataclass(frozen=True)
class BenchSpec(ModelSpec):
    """A benchmarked model: a :class:`~focusnet.models.spec.ModelSpec` and the inference backend.

    Example:
        >>> BenchSpec("focusnetpp", "lite", {"norm": "instance"}, "onnxruntime").label
        'focusnetpp:lite[norm=instance]@onnxruntime'
    """

    backend: str = "torch"

    def __hash__(self) -> int:
        return hash(("BenchSpec", self.label))

    @property
    def label(self) -> str:
        """Row label: the spec's text and ``@backend`` (``@torch`` is left out)."""
        return self.text + (f"@{self.backend}" if self.backend != "torch" else "")

    @classmethod
    def parse(cls, text: str, option: str = "--models") -> BenchSpec:
        """``"focusnetpp:lite@onnxruntime"`` -> ``BenchSpec("focusnetpp", "lite", {}, "onnxruntime")``."""
        text = text.strip()
        backend = "torch"
        head, at, tail = text.rpartition("@")
        if at and "]" not in tail:
            text, backend = head.strip(), tail.strip()
        if not text:
            raise FocusNetError(f"{option}: empty model name; write {SPEC_SYNTAX}[@BACKEND], e.g. focusnetpp:paper")
        if backend not in BACKENDS:
            raise FocusNetError(
                f"{option}: unknown backend {backend!r} in {text!r}; choose one of: {', '.join(BACKENDS)}"
            )
        spec = ModelSpec.parse(text, option)
        return cls(spec.model, spec.preset, spec.kwargs, backend)


def parse_model_spec(text: str) -> BenchSpec:
    """One benchmark spec; a ``@backend`` suffix picks the inference backend.

    Example:
        >>> parse_model_spec("unet").label, parse_model_spec("focusnetpp:lite@onnxruntime").backend
        ('unet', 'onnxruntime')
    """
    return BenchSpec.parse(text)


def parse_model_specs(text: str) -> list[BenchSpec]:
    """Comma-separated model specs, e.g. ``"focusnetpp:paper,focusnetpp:lite[norm=instance],unet"``."""
    specs = [parse_model_spec(part) for part in split_model_specs(text)]
    if not specs:
        raise FocusNetError("--models: no models given; e.g. --models focusnetpp:paper,unet")
    return specs


def normalise_spec(spec: Any) -> BenchSpec:
    """A spec given as text, a :class:`~focusnet.models.spec.ModelSpec`, ``(name, preset)`` or
    ``(name, preset, backend)`` as a :class:`BenchSpec`.

    Example:
        >>> normalise_spec(("unet", None)).label, normalise_spec("unet@onnxruntime").label
        ('unet', 'unet@onnxruntime')
    """
    if isinstance(spec, str):
        return parse_model_spec(spec)
    if isinstance(spec, BenchSpec):
        return spec
    if isinstance(spec, ModelSpec):
        return BenchSpec(spec.model, spec.preset, spec.kwargs)
    spec = tuple(spec)
    if len(spec) in (2, 3):
        backend = str(spec[2]) if len(spec) == 3 else "torch"
        if backend not in BACKENDS:
            raise FocusNetError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        return BenchSpec(str(spec[0]), spec[1], {}, backend)
    raise FocusNetError(
        f"model spec must be text, a ModelSpec, (name, preset) or (name, preset, backend), got {spec!r}"
    )


def spec_label(name: str, preset: str | None = None, backend: str = "torch") -> str:
    """Row label of a model without extra arguments: ``name[:preset][@backend]``.

    Example:
        >>> spec_label("focusnetpp", "paper"), spec_label("unet"), spec_label("unet", None, "onnxruntime")
        ('focusnetpp:paper', 'unet', 'unet@onnxruntime')
    """
    return BenchSpec(name, preset, {}, backend).label


def check_inputs(
    specs: list[BenchSpec],
    size: int,
    batch_size: int,
    precision: str,
    device: str,
    repeats: int,
    warmup: int,
) -> None:
    """Raise :class:`~focusnet.errors.FocusNetError` for a setting or model a run cannot take.

    Example:
        >>> check_inputs([BenchSpec("unet")], 32, 2, "32-true", "cpu", repeats=1, warmup=0)
        >>> check_inputs([BenchSpec("unet", "paper")], 32, 2, "32-true", "cpu", repeats=1, warmup=0)
        Traceback (most recent call last):
        focusnet.errors.FocusNetError: model 'unet' has no presets; write just 'unet'
    """
    PRECISIONS.normalize(precision)
    if size < 1 or batch_size < 1:
        raise FocusNetError(f"size and batch size must be positive, got size={size}, batch size={batch_size}")
    if repeats < 1 or warmup < 0:
        raise FocusNetError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FocusNetError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
    elif device != "cpu":
        raise FocusNetError(f"unsupported device {device!r}; use cpu or cuda[:N]")
    models = list_models()
    for spec in specs:
        name, preset = spec.model, spec.preset
        if name == MONAI_BASICUNET:
            if preset or spec.kwargs:
                raise FocusNetError(f"{spec.label}: MONAI's BasicUNet is benchmarked as is; write just {name!r}")
            continue
        if name not in models:
            raise FocusNetError(
                f"unknown model {name!r}; choose one of: {', '.join(models)} (`focusnet models` lists them)"
            )
        presets = list_presets(name)
        if preset is not None and preset not in presets:
            if presets:
                raise FocusNetError(
                    f"unknown preset {preset!r} for model {name!r}; choose one of: {', '.join(presets)}"
                )
            raise FocusNetError(f"model {name!r} has no presets; write just {name!r}")
        if "in_channels" in spec.kwargs:
            raise FocusNetError(f"{spec.label}: set the image channels with --in-channels, not in the spec")
        check_arguments(spec, spec.label)
