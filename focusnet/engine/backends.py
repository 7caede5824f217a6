"""The backends ``focusnet predict`` runs a model through: PyTorch, or an exported model in onnxruntime.

A backend is a function from a float32 batch ``(B, C, H, W)`` to sigmoid probabilities of the same
layout; :func:`resolve_model` makes it, with the model's :class:`~focusnet.weights.SavedModelConfig`.

Example:
    >>> resolve_model("runs/demo", "tensorrt", None, None, None)
    Traceback (most recent call last):
    ...
    focusnet.errors.FocusNetError: unknown backend 'tensorrt'; choose one of: torch, onnxruntime
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from focusnet.errors import FocusNetError
from focusnet.vocab import BACKENDS
from focusnet.weights import SavedModelConfig, load_model, load_model_config

__all__ = ["resolve_model", "with_tta"]


def _torch_runner(model: nn.Module, device: Any) -> Callable[[np.ndarray], np.ndarray]:
    model.eval()
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(x).to(device=device, dtype=dtype))
            return torch.sigmoid(logits.float()).cpu().numpy()

    return run


def _onnx_runner(onnx_path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    try:
        from focusnet.engine.export import OnnxPredictor  # needs onnxruntime, an optional extra
    except ImportError as exc:  # onnxruntime missing, or an old focusnet
        raise FocusNetError(f"backend onnxruntime is unavailable ({exc}); pip install 'focusnet[onnx]'") from None
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FocusNetError(f"{onnx_path}: ONNX file not found; export one with `focusnet export` or fix the path")
    predictor = OnnxPredictor(onnx_path)

    def run(x: np.ndarray) -> np.ndarray:
        logits = np.asarray(predictor(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float32)
        return 1.0 / (1.0 + np.exp(-logits))

    return run


def with_tta(run: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """``run`` with test-time augmentation: the mean sigmoid probability over the identity, a
    horizontal and a vertical flip (each flipped back before averaging).

    Example:
        >>> with_tta(lambda x: x)(np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)).tolist()
        [[[[0.0, 1.0], [2.0, 3.0]]]]
    """
    def tta(x: np.ndarray) -> np.ndarray:
        total = run(x)
        total = total + run(np.ascontiguousarray(x[..., ::-1]))[..., ::-1]
        total = total + run(np.ascontiguousarray(x[..., ::-1, :]))[..., ::-1, :]
        return total / np.float32(3.0)

    return tta


def resolve_model(model_or_path: Any, backend: str, onnx_path: str | Path | None, device: Any,
                  config: SavedModelConfig | None) -> tuple[Callable[[np.ndarray], np.ndarray], SavedModelConfig, str]:
    """``(run(x) -> probabilities, SavedModelConfig, description)`` of a model for ``backend``.

    Args:
        model_or_path: weights, their ``.json``, a run folder, or a model in memory.
        backend: a :data:`~focusnet.vocab.BACKENDS` value.
        onnx_path: the exported model, for ``onnxruntime`` (``model_or_path`` then gives the config).
        device: the torch device (default: the CPU, or the in-memory model's device).
        config: the config of an in-memory model without ``focusnet_config``.

    Example:
        >>> run, cfg, source = resolve_model("runs/focusnetpp-lite", "torch", None, None, None)  # doctest: +SKIP
    """
    if backend not in BACKENDS:
        raise FocusNetError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if isinstance(model_or_path, nn.Module):
        cfg = config if config is not None else getattr(model_or_path, "focusnet_config", None)
        if cfg is None:
            raise FocusNetError(
                "the model carries no config (preprocessing, threshold); load it with focusnet.load_model "
                "or pass config=SavedModelConfig(...)"
            )
        source = f"{cfg.describe()} (in memory)"
    else:
        path = Path(model_or_path)
        if backend == "onnxruntime" and onnx_path is None and path.suffix.lower() == ".onnx":
            raise FocusNetError(
                f"{path}: an ONNX file holds no preprocessing config; pass the .safetensors weights (or run folder) "
                "as MODEL and this file with --onnx"
            )
        cfg = config if config is not None else load_model_config(path)
        source = str(path)
    if backend == "onnxruntime":
        if onnx_path is None:
            raise FocusNetError("backend onnxruntime needs the exported model: pass --onnx FILE (onnx_path=...)")
        return _onnx_runner(onnx_path), cfg, f"{source} via {onnx_path}"
    if isinstance(model_or_path, nn.Module):
        model = model_or_path
        if device is not None:
            model = model.to(device)
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else "cpu"
    else:
        device = device or "cpu"
        model = load_model(model_or_path, device=device)
    return _torch_runner(model, device), cfg, source
