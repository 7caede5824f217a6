"""The models of a comparison: ``--models`` text to :class:`~focusnet.models.spec.ModelSpec` s.

The spec grammar (``NAME[:PRESET][[KEY=VALUE;...]]``) is :mod:`focusnet.models.spec`'s, shared with
``focusnet benchmark``; this module adds the comparison's rules (at least one model, no run name twice).

Example:
    >>> [s.name for s in parse_model_specs(DEFAULT_MODELS)]
    ['focusnetpp', 'unet', 'attention_unet']
"""
from __future__ import annotations

from focusnet.errors import FocusNetError
from focusnet.models.spec import ModelSpec, accepted_kwargs, split_model_specs

__all__ = ["DEFAULT_MODELS", "ModelSpec", "accepted_kwargs", "parse_model_specs"]

DEFAULT_MODELS = "focusnetpp,unet,attention_unet"


def parse_model_specs(text: str) -> list[ModelSpec]:
    """``"focusnetpp,focusnetpp:official,unet[base_width=8;dropout=0]"`` -> model specs.

    ``NAME[:PRESET][[KEY=VALUE;...]]``, comma-separated; values are read as YAML.

    Example:
        >>> [s.name for s in parse_model_specs("focusnetpp:lite, unet[base_width=4]")]
        ['focusnetpp-lite', 'unet-base_width4']
    """
    specs = [ModelSpec.parse(part) for part in split_model_specs(text)]
    if not specs:
        raise FocusNetError(f"--models: no models given; e.g. --models {DEFAULT_MODELS}")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FocusNetError(f"--models: {', '.join(dupes)} given twice")
    return specs
