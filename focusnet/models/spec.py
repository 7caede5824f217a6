"""Model specs: the one text form that names a model to build, ``NAME[:PRESET][[KEY=VALUE;...]]``.

``focusnet compare --models`` reads it as is; ``focusnet benchmark --models`` reads it with an
optional ``@BACKEND`` suffix (:mod:`focusnet.bench.specs`). Values are read as YAML, so
``focusnetpp:lite[norm=instance;enc_blocks=[1,1,1,2,2]]`` builds
``create_model("focusnetpp", preset="lite", norm="instance", enc_blocks=[1, 1, 1, 2, 2])``.

Example:
    >>> spec = ModelSpec.parse("focusnetpp:lite[norm=instance]")
    >>> spec.model, spec.preset, dict(spec.kwargs), spec.text
    ('focusnetpp', 'lite', {'norm': 'instance'}, 'focusnetpp:lite[norm=instance]')
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from focusnet.errors import FocusNetError
from focusnet.models.registry import ENSEMBLE_KWARG, list_models, model_signature

__all__ = ["SPEC_SYNTAX", "ModelSpec", "accepted_kwargs", "check_arguments", "spec_with_preset", "split_model_specs"]

#: How a model spec is written, for messages and ``--help``.
SPEC_SYNTAX = "NAME[:PRESET][[KEY=VALUE;...]]"

_SPEC = re.compile(r"\s*([A-Za-z0-9_]+)\s*(?::\s*([A-Za-z0-9_]+))?\s*(?:\[(.*)\])?\s*", re.DOTALL)


@dataclass(frozen=True)
class ModelSpec:
    """A model to build: registered name, preset and extra constructor arguments.

    Example:
        >>> ModelSpec("focusnetpp", "lite").name, ModelSpec("unet", None, {"base_width": 8}).name
        ('focusnetpp-lite', 'unet-base_width8')
        >>> ModelSpec("unet", None, {"base_width": 8}).text
        'unet[base_width=8]'
    """

    model: str
    preset: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:  # kwargs is a mapping: hash the text form instead
        return hash((type(self).__name__, self.text))

    @property
    def name(self) -> str:
        """Run name: ``model[-preset][-key value ...]`` (file-name safe)."""
        parts = [self.model] + ([self.preset] if self.preset else [])
        parts += [f"{k}{v}" for k, v in sorted(self.kwargs.items())]
        return re.sub(r"[^A-Za-z0-9_.-]+", "", "-".join(str(p) for p in parts)) or self.model

    @property
    def text(self) -> str:
        """The spec written back, keys sorted: ``ModelSpec.parse(spec.text) == spec``."""
        out = self.model + (f":{self.preset}" if self.preset else "")
        if self.kwargs:
            out += "[" + ";".join(f"{k}={_value_text(v)}" for k, v in sorted(self.kwargs.items())) + "]"
        return out

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``create_model(spec.model, **spec.create_kwargs())``."""
        return {**({"preset": self.preset} if self.preset else {}), **self.kwargs}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "preset": self.preset, "kwargs": dict(self.kwargs)}

    @classmethod
    def parse(cls, text: str, option: str = "--models") -> ModelSpec:
        """One spec from its text; ``option`` names the setting in error messages.

        Example:
            >>> ModelSpec.parse("unet[base_width=4; dropout=0]").kwargs
            {'base_width': 4, 'dropout': 0}
        """
        m = _SPEC.fullmatch(text)
        if not m:
            raise FocusNetError(
                f"{option}: cannot read {text.strip()!r}; write {SPEC_SYNTAX}, e.g. focusnetpp:lite[norm=instance]"
            )
        kwargs: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in _split_top(m.group(3) or "", ";"))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip().isidentifier():
                raise FocusNetError(f"{option}: {item!r} in {text.strip()!r} is not KEY=VALUE")
            try:
                kwargs[key.strip()] = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                raise FocusNetError(f"{option}: cannot read the value of {item!r} as YAML ({exc})") from None
        return cls(m.group(1), m.group(2), kwargs)


def spec_with_preset(text: str, preset: str | None, option: str = "MODEL") -> ModelSpec:
    """A command's ``MODEL`` argument and its ``--preset`` option as one spec (the two must agree).

    Example:
        >>> spec_with_preset("focusnetpp", "lite").text, spec_with_preset("focusnetpp:lite[norm=instance]", None).text
        ('focusnetpp:lite', 'focusnetpp:lite[norm=instance]')
    """
    spec = ModelSpec.parse(text, option)
    if preset is not None and spec.preset is not None and spec.preset != preset:
        raise FocusNetError(f"{text.strip()}: names preset {spec.preset!r} but --preset is {preset!r}; give one")
    spec = replace(spec, preset=spec.preset or preset)
    if spec.model in list_models():  # an unknown name is create_model's message
        check_arguments(spec)
    return spec


def split_model_specs(text: str) -> list[str]:
    """Comma-separated specs, split on the commas outside brackets.

    Example:
        >>> split_model_specs("unet, focusnetpp:lite[enc_blocks=[1,1,1,2,2]]")
        ['unet', ' focusnetpp:lite[enc_blocks=[1,1,1,2,2]]']
    """
    return [p for p in _split_top(text, ",") if p.strip()]


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


def check_arguments(spec: ModelSpec, label: str | None = None) -> None:
    """Raise :class:`~focusnet.errors.FocusNetError` naming the arguments ``spec.model`` takes when the
    spec gives one it does not take (``label``: how the message names the spec; default its text).

    Example:
        >>> try:
        ...     check_arguments(ModelSpec("unet", None, {"widht": 4}))
        ... except FocusNetError as error:
        ...     print(str(error).split(";")[0])
        unet[widht=4]: model 'unet' takes no argument widht
    """
    accepted = accepted_kwargs(spec.model)
    unknown = sorted(set(spec.kwargs) - accepted) if accepted is not None else []
    if unknown:
        raise FocusNetError(
            f"{label or spec.text}: model {spec.model!r} takes no argument {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(accepted or ()))}"
        )


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets and quotes. As in YAML, a quote opens a quoted value only
    where a value starts (after ``=``, ``;``, ``,`` or an opening bracket, spaces allowed); inside a
    plain value (``name=it's``) it is a character like any other."""
    out, depth, cur, quote, value_start = [], 0, "", "", True
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'" and value_start:
            quote = ch
        else:
            depth += ch in "[{"
            depth -= ch in "]}"
        if not ch.isspace():
            value_start = ch in "=;,[{"
        if ch == sep and depth == 0 and not quote:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def _value_text(value: Any) -> str:
    """A value as spec text that YAML reads back to the same value."""
    if isinstance(value, str) and yaml.safe_load(value) == value and not set(value) & set(";[]{},"):
        return value
    return json.dumps(value, separators=(",", ":"))  # YAML reads JSON
