"""Config files and ``KEY=VALUE`` overrides as plain values: reading a YAML or JSON file, parsing an
override, and the conversions between YAML/JSON values and the types the config declares.

Example:
    >>> parse_override("epochs=10")
    (['epochs'], 10)
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from focusnet.data.paths import ENV_VAR, data_root
from focusnet.engine.config_fields import config_error

__all__ = ["as_plain", "as_tuples", "expand_path", "parse_override", "read_config_file", "yaml_float"]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON config file (FocusNetError naming the file when unreadable).

    Example:
        >>> read_config_file("configs/isic2018_focusnetpp.yaml")["model"]  # doctest: +SKIP
        'focusnetpp'
    """
    path = Path(path)
    if not path.is_file():
        raise config_error(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is the file's fault
        raise config_error(f"{path}: cannot parse the config ({str(exc).splitlines()[0]})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise config_error(f"{path}: expected a mapping of keys to values; got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"data.source=x"`` -> (``["data", "source"]``, ``"x"``); the value is read as YAML.

    Example:
        >>> parse_override("data.source=x"), parse_override("widths=[8, 8]")
        ((['data', 'source'], 'x'), (['widths'], [8, 8]))
    """
    if "=" not in item:
        raise config_error(f"override {item!r}: expected KEY=VALUE, e.g. epochs=10 or data.source=/path")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(p.strip() for p in parts):
        raise config_error(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return [p.strip() for p in parts], value


_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def yaml_float(value: Any) -> Any:
    """``"1e-4"`` (a string to YAML 1.1) as the float it means; anything else unchanged.

    Example:
        >>> yaml_float("1e-4"), yaml_float("adam")
        (0.0001, 'adam')
    """
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        return float(value)
    return value


def as_tuples(value: Any) -> Any:
    """Lists (nested too) as tuples, so that a config read back from JSON compares equal.

    Example:
        >>> as_tuples([8, [1, 2]])
        (8, (1, 2))
    """
    if isinstance(value, list | tuple):
        return tuple(as_tuples(v) for v in value)
    return value


def as_plain(value: Any) -> Any:
    """Tuples as lists, keys as strings, paths as text: a JSON/YAML-safe value.

    Example:
        >>> as_plain({"widths": (8, 8), 1: Path("a")})
        {'widths': [8, 8], '1': 'a'}
    """
    if isinstance(value, tuple | list):
        return [as_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): as_plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def expand_path(value: str) -> str:
    """``~`` and ``$VARS`` expanded; ``$FOCUSNET_DATA`` defaults to :func:`focusnet.data.paths.data_root`.

    Example:
        >>> expand_path("${FOCUSNET_DATA}/isic2018").endswith("/isic2018")
        True
    """
    value = re.sub(rf"\$\{{{ENV_VAR}\}}|\${ENV_VAR}(?![A-Za-z0-9_])", str(data_root()).replace("\\", "\\\\"), value)
    return os.path.expanduser(os.path.expandvars(value))
