"""The model config saved with a model's weights: what rebuilds the model and prepares its inputs.

Example:
    >>> cfg = SavedModelConfig("focusnetpp", {"preset": "lite", "in_channels": 3, "num_classes": 1},
    ...                        {"size": 256, "channels": 3, "normalization": "minmax"})
    >>> cfg.validate().describe(), cfg.size
    ("focusnetpp(preset='lite', in_channels=3, num_classes=1)", (256, 256))
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focusnet.data.preprocess import NORMALIZATIONS
from focusnet.errors import FocusNetError

__all__ = ["CONFIG_METADATA_KEY", "FORMAT", "FORMAT_VERSION", "SavedModelConfig"]

FORMAT = "focusnet.weights"
FORMAT_VERSION = 1
CONFIG_METADATA_KEY = "focusnet_config"
"""The metadata entry that holds the config as JSON, in a ``.safetensors`` file and in an exported ``.onnx`` file."""


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples (model constructors take tuples of widths)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass
class SavedModelConfig:
    """What a weights file needs to be rebuilt and used: the model and how its inputs were prepared.

    Attributes:
        model: registered model name (``focusnet models``).
        kwargs: keyword arguments of ``create_model`` (always holds ``in_channels`` and
            ``num_classes``; ``preset`` for models that have presets).
        preprocessing: ``{"size": S or [H, W], "channels": 1 or 3, "normalization": "minmax"|"unit"}``.
        threshold: probability above which a pixel is foreground.
        focusnet_version: version that wrote the file.
        created: UTC time the file was written (ISO 8601).
        extra: anything else the writer recorded (epoch, metric, run id, ...).
        format, format_version: the file format tag.
    """

    model: str
    kwargs: dict[str, Any]
    preprocessing: dict[str, Any]
    threshold: float = 0.5
    focusnet_version: str = ""
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    # ------------------------------------------------------------------ convenient views
    @property
    def preset(self) -> str | None:
        return self.kwargs.get("preset")

    @property
    def in_channels(self) -> int:
        return int(self.kwargs.get("in_channels", 3))

    @property
    def num_classes(self) -> int:
        return int(self.kwargs.get("num_classes", 1))

    @property
    def size(self) -> tuple[int, int]:
        """Model input ``(height, width)``."""
        s = self.preprocessing["size"]
        return (int(s[0]), int(s[1])) if isinstance(s, (list, tuple)) else (int(s), int(s))

    @property
    def channels(self) -> int:
        return int(self.preprocessing["channels"])

    @property
    def normalization(self) -> str:
        return str(self.preprocessing["normalization"])

    def describe(self) -> str:
        """``name(key=value, ...)``, e.g. ``focusnetpp(preset='lite', in_channels=3, num_classes=1)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.model}({args})"

    def model_args(self) -> dict[str, Any]:
        """``create_model`` keyword arguments (JSON lists turned back into tuples)."""
        return {k: _tuples(v) for k, v in self.kwargs.items()}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        order = ["format", "format_version", "model", "kwargs", "preprocessing", "threshold",
                 "focusnet_version", "created", "extra"]
        return _jsonable({k: d[k] for k in order})

    @classmethod
    def from_json(cls, text: str, source: str | Path, fix: str) -> SavedModelConfig:
        """Parse and validate the JSON text of a config kept inside another file (a weights file's
        or an ONNX file's metadata); every problem is a :class:`FocusNetError` naming ``source``,
        and broken JSON also says ``fix``.

        Example:
            >>> SavedModelConfig.from_json("{", "m.onnx", "export it again")
            Traceback (most recent call last):
            ...
            focusnet.errors.FocusNetError: m.onnx: the config it holds is not valid JSON (Expecting property name enclosed in double quotes); export it again
        """  # noqa: E501 - a doctest's expected output is one line
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FocusNetError(f"{source}: the config it holds is not valid JSON ({exc.msg}); {fix}") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: Any, source: str | Path) -> SavedModelConfig:
        """Validate a parsed config; every problem is a :class:`FocusNetError` naming ``source``."""
        fix = "re-save the weights with focusnet.weights.save_weights"
        if not isinstance(data, dict):
            raise FocusNetError(f"{source}: model config must be a JSON object, got {type(data).__name__}; {fix}")
        if data.get("format") != FORMAT:
            raise FocusNetError(
                f"{source}: not a focusnet model config (format {data.get('format')!r}, expected {FORMAT!r}); {fix}"
            )
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise FocusNetError(
                f"{source}: unsupported format_version {version!r} (this focusnet reads 1..{FORMAT_VERSION}); "
                "upgrade focusnet"
            )
        for key, typ in (("model", str), ("kwargs", dict), ("preprocessing", dict)):
            if not isinstance(data.get(key), typ):
                raise FocusNetError(f"{source}: '{key}' is missing or not a {typ.__name__}; {fix}")
        extra = data.get("extra") or {}
        if not isinstance(extra, dict):
            raise FocusNetError(f"{source}: 'extra' must be an object; {fix}")
        cfg = cls(
            model=data["model"],
            kwargs=dict(data["kwargs"]),
            preprocessing=dict(data["preprocessing"]),
            threshold=data.get("threshold", 0.5),
            focusnet_version=str(data.get("focusnet_version", "")),
            created=str(data.get("created", "")),
            extra=extra,
            format=FORMAT,
            format_version=version,
        )
        cfg.validate(source)
        return cfg

    def validate(self, source: str | Path = "model config") -> SavedModelConfig:
        p = self.preprocessing
        size = p.get("size")
        sides = size if isinstance(size, (list, tuple)) else [size]
        if len(sides) not in (1, 2) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sides
        ):
            raise FocusNetError(
                f"{source}: preprocessing.size must be an integer >= 1 or [height, width]; got {size!r}"
            )
        if p.get("channels") not in (1, 3) or isinstance(p.get("channels"), bool):
            raise FocusNetError(f"{source}: preprocessing.channels must be 1 or 3; got {p.get('channels')!r}")
        if p.get("normalization") not in NORMALIZATIONS:
            raise FocusNetError(
                f"{source}: preprocessing.normalization must be one of {', '.join(NORMALIZATIONS)}; "
                f"got {p.get('normalization')!r}"
            )
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0.0 < t < 1.0:
            raise FocusNetError(f"{source}: threshold must be a number in (0, 1); got {t!r}")
        self.threshold = float(t)
        for key in ("in_channels", "num_classes"):
            v = self.kwargs.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise FocusNetError(f"{source}: kwargs.{key} must be an integer >= 1; got {v!r}")
        if self.in_channels != self.channels:
            raise FocusNetError(
                f"{source}: the model takes {self.in_channels} input channel(s) but preprocessing.channels is "
                f"{self.channels}; make them agree"
            )
        return self
