"""The closed sets of names a user types, each defined once: mask rules, data formats, precisions, devices.

A :class:`Vocabulary` is a tuple of the canonical spellings (so ``value in MASK_RULES`` and
``", ".join(MASK_RULES)`` work) plus deprecated spellings that still work with a
:class:`FutureWarning` naming the new one. argparse ``choices``, the config validator
(:mod:`focusnet.engine.config`) and the generated reference docs read these tuples; nothing else
restates them. This module imports nothing from ``focusnet`` but :mod:`focusnet.errors`, so every
layer may use it.

One precision and one device vocabulary serve ``focusnet train`` (configs), ``benchmark`` and
``compare``: Lightning's ``32-true``/``bf16-mixed``/``16-mixed`` and torch's device types
``cpu``/``cuda``/``mps`` (plus ``auto``). The older ``fp32``, ``bf16`` and ``32`` (precision) and
``gpu`` (device) are accepted with a warning.

Example:
    >>> PRECISIONS
    ('32-true', 'bf16-mixed', '16-mixed')
    >>> PRECISIONS.normalize("bf16-mixed")
    'bf16-mixed'
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     PRECISIONS.normalize("fp32"), str(caught[0].message)
    ('32-true', "precision 'fp32' is deprecated; write '32-true' (the same setting)")
    >>> MASK_RULES.normalize("otsu")
    Traceback (most recent call last):
    ...
    focusnet.errors.FocusNetError: unknown mask rule 'otsu'; choose one of: binary, nonzero, half
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from focusnet.errors import FocusNetError

__all__ = [
    "BACKENDS",
    "BENCHMARK_PRECISIONS",
    "CUDA_GRAPHS",
    "DEVICES",
    "FORMATS",
    "MASK_RULES",
    "PRECISIONS",
    "Vocabulary",
    "show",
    "uses_cuda",
]


def show(value: Any) -> str:
    """How a value is written in messages, choices and docs: YAML's ``true``/``false`` for booleans.

    Example:
        >>> show(True), show("warn"), show(3)
        ('true', 'warn', '3')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Vocabulary(tuple):
    """The canonical spellings of one kind of name, in the order messages list them.

    Args:
        name: what a value is, for messages (``"mask rule"``: "unknown mask rule 'x'").
        values: the canonical spellings.
        aliases: deprecated spelling -> canonical spelling; accepted with a :class:`FutureWarning`.

    Example:
        >>> colours = Vocabulary("colour", ("red", "green"), aliases={"rouge": "red"})
        >>> colours, "red" in colours, colours.listing()
        (('red', 'green'), True, 'red, green')
    """

    name: str
    aliases: Mapping[Any, Any]

    def __new__(cls, name: str, values: Iterable[Any], aliases: Mapping[Any, Any] | None = None) -> Vocabulary:
        self = super().__new__(cls, tuple(values))
        self.name = name
        self.aliases = dict(aliases or {})
        for old, new in self.aliases.items():
            if not self._is_value(new):
                raise ValueError(f"{name}: alias {old!r} points to {new!r}, which is not a value")
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickle/copy: rebuild with the same arguments
        return (self.name, tuple(self), self.aliases)

    def _is_value(self, value: Any) -> bool:
        # strict types: True is not the channel count 1, 1 is not deterministic=true
        return any(value == v and type(value) is type(v) for v in self)

    def listing(self) -> str:
        """The values as messages and docs list them: ``"a, b, c"``."""
        return ", ".join(map(show, self))

    def normalize(self, value: Any, *, key: str | None = None, see: str | None = None, stacklevel: int = 2) -> Any:
        """The canonical spelling of ``value``; a deprecated spelling warns, an unknown one raises.

        Args:
            value: what the user wrote.
            key: the config key or flag it came from; the error then reads
                ``"KEY: invalid value 'x'; choose one of: ..."`` instead of ``"unknown NAME 'x'; ..."``.
            see: documentation page the error names (see :class:`~focusnet.errors.FocusNetError`).
            stacklevel: of the warning, counted from the caller.

        Raises:
            FocusNetError: ``value`` is neither a value nor a deprecated spelling.

        Example:
            >>> DEVICES.normalize("tpu", key="accelerator")
            Traceback (most recent call last):
            ...
            focusnet.errors.FocusNetError: accelerator: invalid value 'tpu'; choose one of: cpu, cuda, mps, auto
        """
        if self._is_value(value):
            return value
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value in self.aliases:
            new = self.aliases[value]
            warnings.warn(
                f"{key or self.name} {value!r} is deprecated; write {new!r} (the same setting)",
                FutureWarning,
                stacklevel=stacklevel + 1,
            )
            return new
        head = f"{key}: invalid value {value!r}" if key else f"unknown {self.name} {value!r}"
        raise FocusNetError(f"{head}; choose one of: {self.listing()}", see=see)

    def subset(self, *values: Any) -> Vocabulary:
        """The same vocabulary narrowed to ``values`` (with the aliases that point to them).

        Example:
            >>> PRECISIONS.subset("32-true", "bf16-mixed").aliases
            {'32': '32-true', 32: '32-true', 'fp32': '32-true', 'bf16': 'bf16-mixed'}
        """
        return Vocabulary(self.name, values, {k: v for k, v in self.aliases.items() if v in values})

    def argparse_type(self, flag: str) -> Any:
        """A ``type=`` for argparse: a deprecated spelling becomes the canonical one (with the warning),
        so ``choices=vocabulary`` accepts every old command line."""

        def convert(text: str) -> str:
            if text in self.aliases:
                return self.normalize(text, key=flag, stacklevel=3)
            return text

        convert.__name__ = self.name.replace(" ", "_")  # argparse names the type in its errors
        return convert


#: How mask pixel values are read: refuse non-binary masks, any value > 0, or >= half the maximum.
MASK_RULES = Vocabulary("mask rule", ("binary", "nonzero", "half"))

#: On-disk data set layouts (one reader each, :mod:`focusnet.data.readers`).
FORMATS = Vocabulary("data format", ("folder", "isic2018", "dsb2018", "nnunet"))

#: Numeric precision (Lightning's names); ``benchmark`` runs ``32-true`` and ``bf16-mixed``.
PRECISIONS = Vocabulary(
    "precision",
    ("32-true", "bf16-mixed", "16-mixed"),
    aliases={"32": "32-true", 32: "32-true", "fp32": "32-true", "bf16": "bf16-mixed"},  # 32: YAML's reading of 32
)

#: What ``focusnet benchmark`` runs: float32, and bfloat16 autocast with float32 weights.
BENCHMARK_PRECISIONS = PRECISIONS.subset("32-true", "bf16-mixed")

#: Where models run: torch's device types, plus ``auto`` (CUDA when available, else CPU).
#: A command that takes a device index accepts ``cuda:N`` too.
DEVICES = Vocabulary("device", ("cpu", "cuda", "mps", "auto"), aliases={"gpu": "cuda"})

#: Inference engines of ``focusnet predict`` and ``focusnet benchmark`` (``NAME@onnxruntime``).
BACKENDS = Vocabulary("backend", ("torch", "onnxruntime"))

#: When the model runs through CUDA graphs (focusnet.engine.cuda_graphs.graph_mode_applies).
CUDA_GRAPHS = Vocabulary("cuda_graphs setting", ("auto", "on", "off"))


def uses_cuda(device: str) -> bool:
    """Whether ``device`` (a :data:`DEVICES` value, or ``cuda:N``) runs on CUDA when it is available.

    Example:
        >>> uses_cuda("auto"), uses_cuda("cuda:1"), uses_cuda("cpu")
        (True, True, False)
    """
    return device in ("cuda", "auto", "gpu") or device.startswith("cuda:")
