"""Whether a state dict fits a model, checked without building the model for real.

:func:`_build_meta` builds a saved config's model on the meta device (no memory, no initialisation),
so that its keys and shapes can be compared (:func:`_mismatch`) with the tensors of a file before
anything is loaded, and with a model's before anything is saved.

Example:
    >>> import torch
    >>> _mismatch({"w": torch.zeros(2)}, {"w": torch.zeros(3)})
    'shape mismatch w: file (3,) vs model (2,)'
"""
from __future__ import annotations

import inspect

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from focusnet.errors import FocusNetError
from focusnet.models import create_model
from focusnet.models.registry import model_signature
from focusnet.weights.config import SavedModelConfig


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` / ``DataParallel`` wrappers (so keys carry no prefix)."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def _constructor_default(name: str, key: str, fallback: int) -> int:
    """The integer default of ``key`` in the constructor of model ``name``; ``fallback`` when it has none."""
    try:
        param = model_signature(name).parameters.get(key)
    except FocusNetError:  # an unknown model: save_weights names it through list_presets first
        return fallback
    if param is None or param.default is inspect.Parameter.empty or not isinstance(param.default, int):
        return fallback
    return param.default


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (views in a state dict)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def _mismatch(
    expected: dict[str, torch.Tensor],
    got: dict[str, torch.Tensor],
    got_label: str = "file",
    expected_label: str = "model",
    limit: int = 3,
) -> str:
    """'' when the key sets and shapes agree; else a short description of the first differences."""

    def first(keys: list[str]) -> str:
        return ", ".join(keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")

    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [
        f"{k}: {got_label} {tuple(got[k].shape)} vs {expected_label} {tuple(expected[k].shape)}"
        for k in expected
        if k in got and tuple(got[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing keys {first(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {first(unexpected)}")
    if shapes:
        parts.append(f"shape mismatch {first(shapes)}")
    return "; ".join(parts)


class _SkipMetaInit(TorchFunctionMode):
    """Skip value-only in-place ops (weight initialisers, ``t[i] = v``) on meta tensors.

    They compute nothing on the meta device, but several of them (Keras-style truncated normals,
    indexed assignment) go through PyTorch's Python decompositions, whose first use in a process costs
    seconds. Shape- or flag-changing in-place ops still run.
    """

    _KEEP = frozenset({
        "resize_", "resize_as_", "set_", "as_strided_", "squeeze_", "unsqueeze_", "transpose_", "t_",
        "swapdims_", "swapaxes_", "requires_grad_", "share_memory_", "detach_", "retain_grad",
    })

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        skip = name == "__setitem__" or (name.endswith("_") and not name.endswith("__") and name not in self._KEEP)
        if skip and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return None if name == "__setitem__" else args[0]
        return func(*args, **(kwargs or {}))


def _build_meta(cfg: SavedModelConfig) -> nn.Module:
    """The config's model on the meta device (no memory, no weight initialisation)."""
    try:
        with torch.device("meta"), _SkipMetaInit():
            return create_model(cfg.model, **cfg.model_args())
    except FocusNetError:
        raise
    except Exception:  # a constructor that needs real values: build it on the CPU
        return create_model(cfg.model, **cfg.model_args())


def _has_meta_tensors(model: nn.Module) -> bool:
    for module in model.modules():
        for t in (*module.parameters(recurse=False), *module.buffers(recurse=False)):
            if t.is_meta:
                return True
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and value.is_meta:
                return True
    return False
