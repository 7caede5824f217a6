"""Native CPU kernels of FocusNet++'s training step, built on first use with the system C compiler.

One kernel so far: training-mode BatchNorm + LeakyReLU forward and backward on ``channels_last``
float32 activations (``bn_leaky_relu.c``). PyTorch runs BatchNorm and LeakyReLU as separate memory
passes, and each backward writes a full-size intermediate; at FocusNet++'s full resolution those
passes are memory-bound, so one fused pass each way is faster. The maths is PyTorch's (batch
statistics with the biased variance for normalising, the unbiased one for the running variance),
in float32 with double-precision sums; the tests compare it with ``nn.BatchNorm2d`` + LeakyReLU.

The C source is plain C (OpenMP, sharing torch's libgomp; no Python or torch headers) and compiles
in about a second with ``cc -O3 -march=native -fopenmp``; the shared library is cached under ``$XDG_CACHE_HOME/focusnet/kernels``
(``~/.cache/...``) keyed by the source hash, the machine and the compiler. Without a C compiler,
or with ``FOCUSNET_NATIVE_KERNELS=0``, :func:`bn_leaky_relu_available` is ``False`` and the models
use PyTorch's own operators (same maths).

Example:
    >>> import torch
    >>> from focusnet.kernels import bn_leaky_relu, bn_leaky_relu_available
    >>> bn = torch.nn.BatchNorm2d(4)
    >>> x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    >>> y = bn_leaky_relu(x, bn, 0.3)  # falls back to PyTorch where the kernel is unavailable
    >>> y.shape
    torch.Size([2, 4, 8, 8])
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.runtime import env_flag

__all__ = ["ENV_VAR", "bn_leaky_relu", "bn_leaky_relu_available", "native_library"]

ENV_VAR = "FOCUSNET_NATIVE_KERNELS"
_SOURCE = Path(__file__).with_name("bn_leaky_relu.c")
_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-fopenmp", "-std=c99"]
_LIB: ctypes.CDLL | None = None
_TRIED = False
_ERROR: str | None = None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "focusnet" / "kernels"


def _compile(source: Path, target: Path, compiler: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        command = [compiler, *_FLAGS, str(source), "-o", tmp, "-lm"]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
        except subprocess.CalledProcessError:  # no OpenMP here: the same kernel, single-threaded
            command.remove("-fopenmp")
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
        os.replace(tmp, target)  # atomic: concurrent processes never load a half-written file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def native_library() -> ctypes.CDLL | None:
    """The compiled kernel library (built and cached on first call), or ``None`` if unavailable.

    Example:
        >>> lib = native_library()
        >>> lib is None or hasattr(lib, "fn_bn_lrelu_forward")
        True
    """
    global _LIB, _TRIED, _ERROR
    if not env_flag(ENV_VAR):
        return None
    if _TRIED:
        return _LIB
    _TRIED = True
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not _SOURCE.is_file():
        _ERROR = "no C compiler (cc/gcc) found" if compiler is None else f"missing {_SOURCE}"
        return None
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(
        source + " ".join([compiler, *_FLAGS, platform.machine(), platform.node()]).encode()
    ).hexdigest()[:16]
    target = _cache_dir() / f"bn_leaky_relu-{key}.so"
    try:
        if not target.is_file():
            _compile(_SOURCE, target, compiler)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        _ERROR = f"could not build {_SOURCE.name}: {detail.strip()[:300]}"
        return None
    p, i64, f32, f64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_double, ctypes.c_int
    lib.fn_bn_lrelu_forward.argtypes = [p, p, i64, i64, p, p, f64, f32, p, p, p, i32]
    lib.fn_bn_lrelu_backward.argtypes = [p, p, p, i64, i64, p, p, p, p, f32, p, p, i32]
    lib.fn_bn_lrelu_forward.restype = lib.fn_bn_lrelu_backward.restype = i32
    _LIB = lib
    return _LIB


def bn_leaky_relu_available() -> bool:
    """Whether the fused BatchNorm + LeakyReLU kernel can run here (compiling it if needed).

    Example:
        >>> isinstance(bn_leaky_relu_available(), bool)
        True
    """
    return native_library() is not None


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class _BNLeakyReLU(torch.autograd.Function):
    """``leaky_relu(batch_norm(x, batch statistics))``; returns ``(y, mean, biased var)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, slope: float):  # type: ignore[override]
        lib = native_library()
        assert lib is not None
        n, c, h, w = x.shape
        y = torch.empty_like(x, memory_format=torch.channels_last)
        mean, var, invstd = (torch.empty(c, dtype=torch.float32) for _ in range(3))
        status = lib.fn_bn_lrelu_forward(
            _ptr(x), _ptr(y), n * h * w, c, _ptr(weight), _ptr(bias), float(eps), float(slope),
            _ptr(mean), _ptr(var), _ptr(invstd), torch.get_num_threads(),
        )
        if status != 0:  # pragma: no cover - allocation failure in C
            raise MemoryError("fn_bn_lrelu_forward failed")
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.slope = float(slope)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor, _gm: torch.Tensor, _gv: torch.Tensor):  # type: ignore[override]
        lib = native_library()
        x, weight, bias, mean, invstd = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        n, c, h, w = x.shape
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
        need_w, need_b = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        grad_w = torch.empty(c, dtype=torch.float32) if need_w else None
        grad_b = torch.empty(c, dtype=torch.float32) if need_b else None
        status = lib.fn_bn_lrelu_backward(
            _ptr(grad), _ptr(x), _ptr(grad_x), n * h * w, c, _ptr(mean), _ptr(invstd), _ptr(weight), _ptr(bias),
            ctx.slope, _ptr(grad_w), _ptr(grad_b), torch.get_num_threads(),
        )
        if status != 0:  # pragma: no cover
            raise MemoryError("fn_bn_lrelu_backward failed")
        return grad_x, grad_w, grad_b, None, None


def _kernel_applies(x: torch.Tensor, bn: nn.Module) -> bool:
    return (
        type(bn) is nn.BatchNorm2d
        and bn.training
        and bn.affine
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.momentum is not None
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and bn.weight.dtype == torch.float32
        and x.dim() == 4
        and x.shape[0] * x.shape[2] * x.shape[3] > 1
        and x.is_contiguous(memory_format=torch.channels_last)
        and not torch.is_autocast_enabled("cpu")
        and not bn._forward_hooks
        and not bn._forward_pre_hooks
        and native_library() is not None
    )


def bn_leaky_relu(x: torch.Tensor, bn: nn.Module, slope: float) -> torch.Tensor:
    """``F.leaky_relu(bn(x), slope)``, fused into one native kernel for a training-mode
    ``BatchNorm2d`` on a ``channels_last`` float32 CPU tensor (running statistics updated as
    ``nn.BatchNorm2d`` does); anything else runs ``bn`` and ``F.leaky_relu`` as usual.

    Example:
        >>> import torch
        >>> bn = torch.nn.BatchNorm2d(3)
        >>> bn_leaky_relu(torch.randn(2, 3, 4, 4), bn, 0.1).shape
        torch.Size([2, 3, 4, 4])
    """
    if not _kernel_applies(x, bn):
        y = bn(x)
        return F.leaky_relu(y, slope, inplace=y is not x)
    y, mean, var = _BNLeakyReLU.apply(x, bn.weight, bn.bias, bn.eps, slope)
    with torch.no_grad():
        count = x.shape[0] * x.shape[2] * x.shape[3]
        bn.num_batches_tracked.add_(1)
        momentum = bn.momentum
        bn.running_mean.mul_(1.0 - momentum).add_(mean, alpha=momentum)
        bn.running_var.mul_(1.0 - momentum).add_(var * (count / (count - 1)), alpha=momentum)
    return y
