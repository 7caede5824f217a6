"""Which execution of ResGANet / FocusNet++ runs: the switch, and the rule, in one place.

Three strategies compute the same function from the same parameters (see the package docstring):

* ``"plain"``: layer by layer, as written (also what tracing, scripting, ONNX export and FLOP
  counting on the ``meta`` device record);
* ``"fast"``: ``channels_last``, 1x1 convolutions as matrix products (cuDNN convolutions on CUDA),
  eval-mode BatchNorm folded, native CPU training kernels;
* ``"fused"``: fp32 CPU inference through oneDNN's fused convolution / product + activation kernels,
  with the block's linear maps regrouped.

:func:`choose_strategy` picks one per call of a model or block; the blocks below a FocusNet++ run
the strategy the model chose. The switch is a context variable (:func:`fast_path`), whose default
comes from ``FOCUSNET_FAST_PATH`` (read by :mod:`focusnet.runtime`): nothing flips a module global.

Example:
    >>> with fast_path(False):
    ...     fast_path_enabled()
    False
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Literal, TypeGuard

import torch
import torch.nn as nn

from focusnet.runtime import fast_path_default

__all__ = [
    "Strategy",
    "choose_strategy",
    "fast_path",
    "fast_path_enabled",
    "fused_cpu_ops_available",
    "set_fast_path",
    "use_fast_path",
    "use_fused_inference",
]

Strategy = Literal["plain", "fast", "fused"]

_FAST_PATH: ContextVar[bool] = ContextVar("focusnet_fast_path", default=fast_path_default())  # noqa: B039 - a bool, not mutable
_FAST_DEVICES = ("cpu", "cuda")


def set_fast_path(enabled: bool) -> bool:
    """Switch the fast path on or off in the current context; returns the old setting.

    Prefer the :func:`fast_path` context manager, which restores the setting.

    Example:
        >>> old = set_fast_path(False); _ = set_fast_path(old)
    """
    old = _FAST_PATH.get()
    _FAST_PATH.set(bool(enabled))
    return old


def fast_path_enabled() -> bool:
    """Whether the fast execution path is switched on (it still only runs where :func:`use_fast_path`)."""
    return _FAST_PATH.get()


@contextlib.contextmanager
def fast_path(enabled: bool = True) -> Iterator[None]:
    """Context manager: run ResGANet / FocusNet++ with the fast path on (or off) inside the block.

    Example:
        >>> with fast_path(False):
        ...     fast_path_enabled()
        False
    """
    token = _FAST_PATH.set(bool(enabled))
    try:
        yield
    finally:
        _FAST_PATH.reset(token)


def use_fast_path(x: torch.Tensor) -> bool:
    """True when the fast path applies to input ``x``: switched on, a CPU or CUDA tensor, and not
    under ``torch.jit`` tracing or scripting or ONNX export (those record the plain graph)."""
    if torch.jit.is_scripting():
        return False
    return (
        _FAST_PATH.get()
        and x.device.type in _FAST_DEVICES
        and not torch.jit.is_tracing()
        and not torch.onnx.is_in_onnx_export()
    )


def _probe_fused_cpu_ops() -> bool:
    """Whether this PyTorch has oneDNN's fused convolution / linear + activation operators."""
    try:
        return bool(torch.backends.mkldnn.is_available()) and all(
            hasattr(torch.ops.mkldnn, op) for op in ("_linear_pointwise", "_convolution_pointwise")
        )
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


_FUSED_CPU_OPS = _probe_fused_cpu_ops()


def fused_cpu_ops_available() -> bool:
    """Whether this PyTorch build has the oneDNN fused operators the ``fused`` strategy uses."""
    return _FUSED_CPU_OPS


def use_fused_inference(x: torch.Tensor) -> bool:
    """True when inference may use oneDNN's fused kernels (convolution or matrix product with its
    bias and activation in one pass): fast path on, fp32 CPU tensor, no autograd, no autocast.

    Example:
        >>> with torch.no_grad():
        ...     isinstance(use_fused_inference(torch.zeros(1)), bool)
        True
    """
    return (
        _FUSED_CPU_OPS
        and not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and use_fast_path(x)
    )


# every normalisation layer torch has: the fast path calls one that is not a BatchNorm2d as a module;
# the fused inference folds every normalisation, so it needs them all to be foldable BatchNorm2d
NORMALISATIONS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def modules_fast_ok(module: nn.Module) -> bool:
    """True when every submodule is a stock layer the fast path understands and none is hooked
    (the fast path reads parameters directly, so hooks and custom layers would be bypassed)."""
    for m in module.modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return False
        if isinstance(m, nn.Conv2d) and type(m) is not nn.Conv2d:  # the executions pad by m.padding_mode
            return False
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and type(m) is not nn.BatchNorm2d:
            return False
    return True


def foldable_bn(bn: nn.Module) -> TypeGuard[nn.BatchNorm2d]:
    """Whether ``bn`` can be folded into the convolution before it: an eval-mode, unhooked
    ``BatchNorm2d`` with running statistics, and no autograd (with gradients the BatchNorm
    parameters' gradients through folded weights would be summed in another, cancellation-prone order)."""
    return (
        not torch.is_grad_enabled()
        and type(bn) is nn.BatchNorm2d
        and not bn.training
        and bn.track_running_stats
        and bn.running_mean is not None
        and not bn._forward_hooks
        and not bn._forward_pre_hooks
    )


def choose_strategy(module: nn.Module, x: torch.Tensor) -> Strategy:
    """The execution of ``module`` (a ResGANet block or a whole FocusNet++) for input ``x``.

    ``plain`` unless the fast path applies to ``x`` and to every submodule; ``fused`` for fp32 CPU
    inference where every normalisation is a BatchNorm that folds; ``fast`` otherwise.

    Example:
        >>> block = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
        >>> choose_strategy(block, torch.zeros(1, 3, 4, 4))
        'fast'
        >>> with fast_path(False):
        ...     choose_strategy(block, torch.zeros(1, 3, 4, 4))
        'plain'
    """
    if not (use_fast_path(x) and modules_fast_ok(module)):
        return "plain"
    if use_fused_inference(x) and all(foldable_bn(m) for m in module.modules() if isinstance(m, NORMALISATIONS)):
        return "fused"
    return "fast"
