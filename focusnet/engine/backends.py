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

from focusnet.engine.onnx_file import OnnxPredictor
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


def _onnx_runner(predictor: OnnxPredictor) -> Callable[[np.ndarray], np.ndarray]:
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


def _exported(model_or_path: Any, backend: str | None, onnx_path: str | Path | None, config: SavedModelConfig | None,
              ) -> tuple[Callable[[np.ndarray], np.ndarray], SavedModelConfig, str]:
    """An ``.onnx`` file given as the model: it runs in onnxruntime with the config it carries."""
    path = Path(model_or_path)
    if backend == "torch":
        raise FocusNetError(
            f"{path}: is an exported ONNX model, which the torch backend cannot run; leave out --backend (an .onnx "
            "MODEL runs in onnxruntime), or pass the .safetensors weights or run folder as MODEL"
        )
    if onnx_path is not None and Path(onnx_path) != path:
        raise FocusNetError(
            f"{path}: MODEL is already an ONNX file; leave out --onnx {onnx_path}, or pass the run folder or "
            ".safetensors weights as MODEL to take the config from them"
        )
    predictor = OnnxPredictor(path)  # refuses a missing or invalid file by name
    cfg = config if config is not None else predictor.config
    if cfg is None:
        raise FocusNetError(
            f"{path}: carries no focusnet config (it was exported from a model name, or by an older focusnet); "
            "export it again from the run folder (focusnet export RUN_DIR --out FILE.onnx), or pass the run folder "
            "or .safetensors weights as MODEL and this file with --onnx"
        )
    return _onnx_runner(predictor), cfg, f"{path} (onnxruntime)"


def resolve_model(model_or_path: Any, backend: str | None, onnx_path: str | Path | None, device: Any,
                  config: SavedModelConfig | None) -> tuple[Callable[[np.ndarray], np.ndarray], SavedModelConfig, str]:
    """``(run(x) -> probabilities, SavedModelConfig, description)`` of a model for ``backend``.

    Args:
        model_or_path: weights, their ``.json``, a run folder, an exported ``.onnx`` file that
            carries its config (:mod:`focusnet.engine.onnx_file`), or a model in memory.
        backend: a :data:`~focusnet.vocab.BACKENDS` value, or None: ``onnxruntime`` for an ``.onnx``
            model or with ``onnx_path``, else ``torch``.
        onnx_path: the exported model, for ``onnxruntime`` (``model_or_path`` then gives the config).
        device: the torch device (default: the CPU, or the in-memory model's device).
        config: the config of an in-memory model without ``focusnet_config`` (or one that replaces
            an ONNX file's).

    Example:
        >>> run, cfg, source = resolve_model("runs/focusnetpp-lite", None, None, None, None)  # doctest: +SKIP
    """
    if backend is not None and backend not in BACKENDS:
        raise FocusNetError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if not isinstance(model_or_path, nn.Module) and Path(model_or_path).suffix.lower() == ".onnx":
        return _exported(model_or_path, backend, onnx_path, config)
    if backend is None:
        backend = "torch" if onnx_path is None else "onnxruntime"
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
        cfg = config if config is not None else load_model_config(path)
        source = str(path)
    if backend == "onnxruntime":
        if onnx_path is None:
            raise FocusNetError("backend onnxruntime needs the exported model: pass --onnx FILE (onnx_path=...)")
        return _onnx_runner(OnnxPredictor(onnx_path)), cfg, f"{source} via {onnx_path}"
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
