"""A model to its weights files and back: :func:`save_weights` and :func:`load_model`.

Example:
    >>> model = load_model("runs/focusnetpp-lite")  # doctest: +SKIP
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

import focusnet
from focusnet.atomic import atomic_write
from focusnet.errors import FocusNetError
from focusnet.models import create_model, list_presets
from focusnet.weights.compat import (
    _build_meta,
    _constructor_default,
    _has_meta_tensors,
    _mismatch,
    _state_tensors,
    _unwrap,
)
from focusnet.weights.config import FORMAT, SavedModelConfig, _jsonable
from focusnet.weights.files import (
    _META_CONFIG,
    _META_FORMAT,
    _embedded_config,
    _load_config,
    _pretty_json,
    _read_header,
    _split_path,
    resolve_weights,
)

__all__ = ["load_model", "save_weights"]


def save_weights(
    model: nn.Module,
    path_stem_or_file: str | Path,
    model_name: str,
    model_kwargs: dict[str, Any],
    preprocessing: dict[str, Any],
    threshold: float = 0.5,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``X.safetensors`` (state dict + config in the metadata) and ``X.json`` (the config).

    Args:
        model: the trained model (``torch.compile`` / ``DataParallel`` wrappers are unwrapped).
        path_stem_or_file: ``X``, ``X.safetensors`` or ``X.json``; the folder is created.
        model_name: registry name, e.g. ``"focusnetpp"``.
        model_kwargs: the ``create_model`` keyword arguments the model was built with. The model's
            default ``preset``, ``in_channels`` and ``num_classes`` are filled in when absent.
        preprocessing: ``{"size": ..., "channels": ..., "normalization": ...}`` of training.
        threshold: probability threshold of the masks.
        extra: JSON-serialisable notes (epoch, val metric, ...), stored under ``"extra"``.

    Returns:
        The ``.safetensors`` path.

    Raises:
        FocusNetError: a bad config, or ``model_kwargs`` that do not rebuild ``model`` (its keys or
            shapes differ), so a file that could never be loaded is never written.
    """
    from safetensors.torch import save as st_save

    weights_path, config_path = _split_path(path_stem_or_file)
    kwargs = dict(model_kwargs or {})
    presets = list_presets(model_name)  # FocusNetError for an unknown model
    if presets and kwargs.get("preset") is None:
        kwargs["preset"] = presets[0]
    channels = int(preprocessing.get("channels", 3))
    kwargs.setdefault("in_channels", _constructor_default(model_name, "in_channels", channels))
    kwargs.setdefault("num_classes", _constructor_default(model_name, "num_classes", 1))
    ordered: dict[str, Any] = {k: kwargs.pop(k) for k in ("preset", "in_channels", "num_classes") if k in kwargs}
    ordered.update(kwargs)
    cfg = SavedModelConfig(
        model=model_name,
        kwargs=_jsonable(ordered),
        preprocessing=_jsonable(dict(preprocessing)),
        threshold=threshold,
        focusnet_version=focusnet.__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        extra=_jsonable(dict(extra or {})),
    )
    cfg.validate(weights_path)
    config_dict = cfg.to_dict()
    try:
        json.dumps(config_dict, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FocusNetError(
            f"{config_path}: config is not JSON-serialisable ({exc}); pass plain values in extra/kwargs"
        ) from None

    tensors = _state_tensors(_unwrap(model))
    problem = _mismatch(_build_meta(cfg).state_dict(), tensors, got_label="model", expected_label="config")
    if problem:
        raise FocusNetError(
            f"{weights_path}: the model does not match the config's {cfg.describe()} ({problem}); "
            "pass the model_name and model_kwargs it was built with"
        )
    blob = st_save(tensors, metadata={_META_FORMAT: FORMAT, _META_CONFIG: json.dumps(config_dict)})
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = dict(config_dict, weights=weights_path.name)
    atomic_write(weights_path, blob)
    atomic_write(config_path, (_pretty_json(sidecar) + "\n").encode())
    return weights_path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved model with its weights, in eval mode, without unpickling anything.

    Args:
        path: ``X.safetensors``, ``X.json``, or a run folder (``<run>/weights/best.safetensors``).
        device: where to put the model.

    Returns:
        The model in eval mode, with its :class:`SavedModelConfig` as ``model.focusnet_config``.
        Floating-point weights are loaded as float32.

    Raises:
        FocusNetError: missing file, pickle checkpoint, not a safetensors file or truncated, missing
            or invalid config, or weights that do not fit the config's model (the first differing keys
            and both model descriptions are named).

    Example:
        >>> model = load_model("runs/focusnetpp-lite")  # doctest: +SKIP
        >>> probs = torch.sigmoid(model(x))  # doctest: +SKIP
    """
    from safetensors.torch import load_file

    weights, config_path = resolve_weights(path)
    metadata, _ = _read_header(weights)
    cfg, cfg_source = _load_config(weights, config_path, metadata)
    try:
        model = _build_meta(cfg)
    except FocusNetError as exc:
        raise FocusNetError(f"{cfg_source}: {exc}") from None
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FocusNetError(f"{weights}: cannot read the tensors ({msg}); re-save or re-download it") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    problem = _mismatch(model.state_dict(), state)
    if problem:
        embedded = _embedded_config(weights, metadata) if config_path is not None else None
        if config_path is None:
            fix = "the file's own config does not describe its tensors; re-save the weights"
        elif embedded is None:
            fix = "the file holds no config of its own; use the .json saved with these weights"
        elif embedded.describe() != cfg.describe():
            fix = (
                f"the weights were saved for {embedded.describe()}; use the .json saved with them "
                f"(or delete {config_path.name} to use the copy inside the weights file)"
            )
        else:
            fix = "the .json agrees with the config inside the weights file, so the tensors were changed; re-save them"
        raise FocusNetError(
            f"{weights}: weights do not fit the config's model {cfg.describe()} (from {cfg_source}): {problem}; {fix}"
        )
    model.load_state_dict(state, strict=True, assign=True)
    if _has_meta_tensors(model):  # a model keeping tensors outside its state dict: build it for real
        model = create_model(cfg.model, **cfg.model_args())
        model.load_state_dict(state, strict=True)
    model = model.to(device).eval()
    setattr(model, "focusnet_config", cfg)  # noqa: B010 - an attribute nn.Module does not declare
    return model
