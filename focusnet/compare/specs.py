"""The models of a comparison: ``--models`` text to :class:`ModelSpec` s, and what each constructor takes.

Example:
    >>> [s.name for s in parse_model_specs(DEFAULT_MODELS)]
    ['focusnetpp', 'unet', 'attention_unet']
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from focusnet.errors import FocusNetError
from focusnet.models.registry import ENSEMBLE_KWARG, model_signature

__all__ = ["DEFAULT_MODELS", "ModelSpec", "accepted_kwargs", "parse_model_specs"]

DEFAULT_MODELS = "focusnetpp,unet,attention_unet"


@dataclass(frozen=True)
class ModelSpec:
    """One model of a comparison: registered name, preset and extra constructor arguments.

    Example:
        >>> ModelSpec("focusnetpp", "lite").name, ModelSpec("unet", None, {"base_width": 8}).name
        ('focusnetpp-lite', 'unet-base_width8')
    """

    model: str
    preset: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Run name: ``model[-preset][-key value ...]`` (file-name safe)."""
        parts = [self.model] + ([self.preset] if self.preset else [])
        parts += [f"{k}{v}" for k, v in sorted(self.kwargs.items())]
        return re.sub(r"[^A-Za-z0-9_.-]+", "", "-".join(str(p) for p in parts)) or self.model

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "preset": self.preset, "kwargs": dict(self.kwargs)}


def parse_model_specs(text: str) -> list[ModelSpec]:
    """``"focusnetpp,focusnetpp:official,unet[base_width=8;dropout=0]"`` -> model specs.

    ``NAME[:PRESET][[KEY=VALUE;...]]``, comma-separated; values are read as YAML.

    Example:
        >>> [s.name for s in parse_model_specs("focusnetpp:lite, unet[base_width=4]")]
        ['focusnetpp-lite', 'unet-base_width4']
    """
    specs: list[ModelSpec] = []
    for part in _split_top(text):
        m = re.fullmatch(r"\s*([A-Za-z0-9_]+)\s*(?::\s*([A-Za-z0-9_]+))?\s*(?:\[(.*)\])?\s*", part)
        if not m:
            raise FocusNetError(
                f"--models: cannot read {part.strip()!r}; write NAME, NAME:PRESET or NAME[KEY=VALUE;...]"
            )
        kwargs: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in (m.group(3) or "").split(";"))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip().isidentifier():
                raise FocusNetError(f"--models: {item!r} in {part.strip()!r} is not KEY=VALUE")
            kwargs[key.strip()] = yaml.safe_load(value)
        specs.append(ModelSpec(m.group(1), m.group(2), kwargs))
    if not specs:
        raise FocusNetError(f"--models: no models given; e.g. --models {DEFAULT_MODELS}")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FocusNetError(f"--models: {', '.join(dupes)} given twice")
    return specs


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [p for p in out if p.strip()]


def accepted_kwargs(model: str) -> set[str] | None:
    """Keyword arguments ``create_model`` accepts for ``model``: its constructor's, and ``ensemble`` (None: any).

    Example:
        >>> sorted(accepted_kwargs("unet"))
        ['base_width', 'dropout', 'ensemble', 'head_channels', 'in_channels', 'num_classes']
    """
    sig = model_signature(model)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return set(sig.parameters) | {ENSEMBLE_KWARG}
