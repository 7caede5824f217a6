"""The weights files on disk: which files a path names, their JSON config and safetensors header.

A model is saved as ``X.safetensors`` (tensors, with the config in the metadata) and ``X.json`` (the
same config, editable). :func:`resolve_weights` turns a path (either file or a run folder) into the
two files; :func:`load_model_config` reads the config they hold. Pickle checkpoints are refused here,
before anything reads them.

Example:
    >>> resolve_weights("runs/none")
    Traceback (most recent call last):
    ...
    focusnet.errors.FocusNetError: runs/none: file not found; pass a .safetensors weights file, its .json config, or a run folder (with weights/best.safetensors)
"""  # noqa: E501 - a doctest's expected output is one line
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from focusnet.engine.rundir import RunDir
from focusnet.errors import FocusNetError
from focusnet.weights.config import CONFIG_METADATA_KEY, SavedModelConfig

__all__ = ["CONFIG_SUFFIX", "WEIGHTS_SUFFIX", "load_model_config", "resolve_weights"]

WEIGHTS_SUFFIX = ".safetensors"
CONFIG_SUFFIX = ".json"

_META_FORMAT = "format"
_META_CONFIG = CONFIG_METADATA_KEY
_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".pkl", ".pickle", ".tar")
_FIX_PICKLE = "focusnet loads only safetensors weights; use the run's weights/*.safetensors"


def _split_path(path: str | Path) -> tuple[Path, Path]:
    """``(X.safetensors, X.json)`` for ``X``, ``X.safetensors`` or ``X.json``."""
    path = Path(path)
    name = path.name
    for suffix in (WEIGHTS_SUFFIX, CONFIG_SUFFIX):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    stem = path.with_name(name)
    return stem.with_name(name + WEIGHTS_SUFFIX), stem.with_name(name + CONFIG_SUFFIX)


def _pretty_json(value: Any, indent: int = 0) -> str:
    """``json.dumps(indent=2)``, but lists of plain values stay on one line (``"widths": [8, 16, 32]``)."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {_pretty_json(v, indent + 2)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [f"{inner}{_pretty_json(v, indent + 2)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, allow_nan=False)


def _looks_like_pickle(path: Path) -> bool:
    """A torch zip archive or a raw pickle (PROTO opcode ``0x80`` then protocol 2-5), and not a
    safetensors file: those start with their header's length (8 bytes, little-endian) then ``{``,
    and that length's first byte is ``0x80`` for one header size in 256."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= path.stat().st_size - 8:
        return False
    return head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))


def _pickle_error(path: Path) -> FocusNetError:
    hint = ""
    for folder in (path.parent, path.parent.parent):
        candidate = RunDir(folder).best_weights
        if candidate.is_file():
            hint = f" (here: {candidate})"
            break
    return FocusNetError(f"{path}: is a PyTorch pickle checkpoint; {_FIX_PICKLE}{hint}")


def resolve_weights(path: str | Path) -> tuple[Path, Path | None]:
    """``(weights file, JSON config or None)`` for a ``.safetensors`` file, its ``.json`` or a run folder.

    Raises:
        FocusNetError: the path does not exist, is a pickle checkpoint or an ONNX model, or a folder
            without ``weights/best.safetensors``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        run = RunDir(path)
        for candidate in (run.best_weights, path / run.best_weights.name):
            if candidate.is_file():
                return resolve_weights(candidate)
        note = run.interrupted_note()
        if note is not None and run.file(RunDir.BEST_CKPT).is_file():
            raise FocusNetError(
                f"{note}, or keep it as it is with `focusnet train --resume {path} epochs=N` (N: the epochs finished), "
                "which writes the weights of its best epoch so far"
            )
        candidates = list(path.glob("*.safetensors")) + list(path.glob("weights/*.safetensors"))
        found = sorted(p.relative_to(path).as_posix() for p in candidates)
        if found:
            hint = f"; found {', '.join(found[:4])}: pass one of them"
        else:
            hint = "; pass a .safetensors file or a run folder"
        raise FocusNetError(f"{path}: no {RunDir.BEST_WEIGHTS} in this folder{hint}")
    if not path.exists():
        raise FocusNetError(
            f"{path}: file not found; pass a .safetensors weights file, its .json config, or a run folder "
            "(with weights/best.safetensors)"
        )
    suffix = path.suffix.lower()
    if suffix in _PICKLE_SUFFIXES:
        raise _pickle_error(path)
    if suffix == ".onnx":
        raise FocusNetError(
            f"{path}: is an exported ONNX model, which PyTorch cannot load; run it with focusnet predict "
            "(backend onnxruntime) or focusnet.engine.onnx_file.OnnxPredictor, or pass the .safetensors weights "
            "(or run folder)"
        )
    if suffix == CONFIG_SUFFIX:
        data = _read_json(path)
        name = data.get("weights") if isinstance(data, dict) and isinstance(data.get("weights"), str) else None
        candidates = [_split_path(path)[0]] + ([path.with_name(Path(name).name)] if name else [])
        weights = next((c for c in candidates if c.is_file()), None)
        if weights is None:
            raise FocusNetError(
                f"{path}: its weights file {candidates[0]} is missing; put the .safetensors beside the .json"
            )
        return weights, path
    if _looks_like_pickle(path):
        raise _pickle_error(path)
    config = _split_path(path)[1] if suffix == WEIGHTS_SUFFIX else None
    return path, config if config is not None and config.is_file() else None


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FocusNetError(f"{path}: cannot read the model config ({exc}); check the file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FocusNetError(
            f"{path}: invalid JSON in the model config (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix it, or delete it to use the copy inside the .safetensors file"
        ) from None


def _read_header(path: Path) -> tuple[dict[str, str], list[str]]:
    """Metadata and tensor names of a safetensors file (checks the file is complete)."""
    from safetensors import safe_open

    fix = "re-save or re-download it"
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        first = fh.read(1) if n > 0 else b""
    if size < 8:
        raise FocusNetError(f"{path}: truncated or empty safetensors file ({size} bytes); {fix}")
    if n <= 0 or first != b"{":
        raise FocusNetError(f"{path}: not a safetensors file; focusnet loads weights saved by focusnet (X.safetensors)")
    if 8 + n > size:
        raise FocusNetError(f"{path}: truncated safetensors file ({size} bytes, its header alone needs {8 + n}); {fix}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return dict(fh.metadata() or {}), list(fh.keys())
    except Exception as exc:  # safetensors raises its own error type for bad headers/sizes
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FocusNetError(f"{path}: not a valid safetensors file or truncated ({msg}); {fix}") from None


def _embedded_config(path: Path, metadata: dict[str, str]) -> SavedModelConfig | None:
    text = metadata.get(_META_CONFIG)
    if text is None:
        return None
    return SavedModelConfig.from_json(text, f"{path} (embedded config)", "re-save the weights")


def _load_config(weights: Path, config: Path | None, metadata: dict[str, str]) -> tuple[SavedModelConfig, str]:
    if config is not None:
        return SavedModelConfig.from_dict(_read_json(config), config), str(config)
    embedded = _embedded_config(weights, metadata)
    if embedded is None:
        json_path = _split_path(weights)[1]
        raise FocusNetError(
            f"{weights}: no model config: {json_path.name} is missing beside it and the file holds none; "
            "put the .json saved with it beside it (focusnet.weights.save_weights writes both)"
        )
    return embedded, f"{weights} (embedded config)"


def load_model_config(path: str | Path) -> SavedModelConfig:
    """The :class:`SavedModelConfig` of a weights file, its ``.json`` or a run folder (no model is built)."""
    weights, config = resolve_weights(path)
    metadata, _ = _read_header(weights)
    return _load_config(weights, config, metadata)[0]
