"""What a benchmark run measures: model specs (``name[:preset][@backend]``), their row labels, and
the check of a run's inputs before any worker starts.

Example:
    >>> parse_model_specs("focusnetpp:paper, unet")
    [('focusnetpp', 'paper', 'torch'), ('unet', None, 'torch')]
"""
from __future__ import annotations

from typing import Any

import torch

from focusnet.errors import FocusNetError
from focusnet.models import list_models, list_presets
from focusnet.vocab import BACKENDS, BENCHMARK_PRECISIONS

__all__ = [
    "MONAI_BASICUNET",
    "PHASES",
    "PRECISIONS",
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

ModelSpec = tuple  # (name, preset | None) or (name, preset | None, backend)


def parse_model_spec(text: str) -> tuple[str, str | None, str]:
    """``"focusnetpp:paper"`` -> ``("focusnetpp", "paper", "torch")``; a ``@backend`` suffix picks
    the inference backend.

    Example:
        >>> parse_model_spec("unet"), parse_model_spec("focusnetpp:lite@onnxruntime")
        (('unet', None, 'torch'), ('focusnetpp', 'lite', 'onnxruntime'))
    """
    text = text.strip()
    backend = "torch"
    if "@" in text:
        text, backend = (s.strip() for s in text.rsplit("@", 1))
    name, _, preset = text.partition(":")
    name, preset = name.strip(), preset.strip()
    if not name:
        raise FocusNetError(f"empty model name in {text!r}; write NAME or NAME:PRESET, e.g. focusnetpp:paper")
    if backend not in BACKENDS:
        raise FocusNetError(f"unknown backend {backend!r} in {text!r}; choose one of: {', '.join(BACKENDS)}")
    return name, (preset or None), backend


def parse_model_specs(text: str) -> list[tuple[str, str | None, str]]:
    """Comma-separated model specs, e.g. ``"focusnetpp:paper,focusnetpp:official,unet"``."""
    specs = [parse_model_spec(part) for part in text.split(",") if part.strip()]
    if not specs:
        raise FocusNetError("no models given; e.g. --models focusnetpp:paper,unet")
    return specs


def normalise_spec(spec: Any) -> tuple[str, str | None, str]:
    """A spec given as ``"name:preset"``, ``(name, preset)`` or ``(name, preset, backend)`` as a triple.

    Example:
        >>> normalise_spec(("unet", None)), normalise_spec("unet@onnxruntime")
        (('unet', None, 'torch'), ('unet', None, 'onnxruntime'))
    """
    if isinstance(spec, str):
        return parse_model_spec(spec)
    spec = tuple(spec)
    if len(spec) == 2:
        return str(spec[0]), spec[1], "torch"
    if len(spec) == 3:
        if spec[2] not in BACKENDS:
            raise FocusNetError(f"unknown backend {spec[2]!r}; choose one of: {', '.join(BACKENDS)}")
        return str(spec[0]), spec[1], str(spec[2])
    raise FocusNetError(f"model spec must be (name, preset) or (name, preset, backend), got {spec!r}")


def spec_label(name: str, preset: str | None = None, backend: str = "torch") -> str:
    """Row label: ``name[:preset][@backend]`` (``@torch`` is left out).

    Example:
        >>> spec_label("focusnetpp", "paper"), spec_label("unet"), spec_label("unet", None, "onnxruntime")
        ('focusnetpp:paper', 'unet', 'unet@onnxruntime')
    """
    label = name + (f":{preset}" if preset else "")
    return label + (f"@{backend}" if backend != "torch" else "")


def check_inputs(
    specs: list[tuple[str, str | None, str]],
    size: int,
    batch_size: int,
    precision: str,
    device: str,
    repeats: int,
    warmup: int,
) -> None:
    """Raise :class:`~focusnet.errors.FocusNetError` for a setting or model a run cannot take.

    Example:
        >>> check_inputs([("unet", None, "torch")], 32, 2, "32-true", "cpu", repeats=1, warmup=0)
        >>> check_inputs([("unet", "paper", "torch")], 32, 2, "32-true", "cpu", repeats=1, warmup=0)
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
    for name, preset, _backend in specs:
        if name == MONAI_BASICUNET:
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

