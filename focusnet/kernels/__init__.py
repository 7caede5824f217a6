"""Native CPU kernels of FocusNet++'s training step, built on first use with the system C compiler.

Two kernels, forward and backward, on ``channels_last`` float32 activations in training:

* :func:`bn_leaky_relu` (``bn_leaky_relu.c``): training-mode BatchNorm + LeakyReLU, and InstanceNorm +
  LeakyReLU (each image by its own statistics, every image in one call; in inference too, where
  :func:`normalize_keeping_layout` also runs it, with slope 1, for a plain InstanceNorm);
* :func:`residual_tail` (``residual_tail.c``): the end of a ResGANet block,
  ``leaky_relu(se(bn(y)) + skip)``: BatchNorm, squeeze-and-excitation, residual sum and
  activation. One pass collects per-image, per-channel sums (BatchNorm's batch statistics and
  SE's pooling both follow from them); the small per-image coefficients are computed, and
  differentiated, by PyTorch in float64; one more pass writes the output (backward: two passes).

PyTorch runs each of those operations as a separate memory pass, and each backward writes a
full-size intermediate; at FocusNet++'s full resolution those passes are memory-bound, so fused
passes are faster (tail: about 2x). The maths is PyTorch's (batch statistics with the biased
variance for normalising, the unbiased one for the running variance), in float32 with
double-precision totals (the BatchNorm kernel adds float sums of 32-row blocks to them); the tests
compare both with float64 PyTorch references.

The C source is plain C (OpenMP, sharing torch's libgomp; no Python or torch headers) and compiles
in about a second with ``cc -O3 -march=native -fopenmp`` (``$FOCUSNET_KERNEL_MARCH`` replaces
``native``, for example ``x86-64-v3`` to build for CPUs without AVX-512); the shared library is
cached under ``$XDG_CACHE_HOME/focusnet/kernels`` (``~/.cache/...``) keyed by the source hash, the
machine and the compiler. Without a C compiler, or with ``FOCUSNET_NATIVE_KERNELS=0``,
:func:`bn_leaky_relu_available` is ``False`` and the models use PyTorch's own operators (same maths).

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
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.kernels.layout import normalize_with_torch
from focusnet.runtime import KERNEL_MARCH_ENV_VAR, NATIVE_KERNELS_ENV_VAR, kernel_march, native_kernels_enabled

__all__ = [
    "ENV_VAR", "MARCH_ENV_VAR", "TAIL_MIN_ELEMENTS", "kernel_march", "bn_leaky_relu", "bn_leaky_relu_available",
    "native_library", "normalize_keeping_layout", "residual_tail",
    "residual_tail_applies",
]

ENV_VAR = NATIVE_KERNELS_ENV_VAR
_SOURCES = (Path(__file__).with_name("bn_leaky_relu.c"), Path(__file__).with_name("residual_tail.c"))
MARCH_ENV_VAR = KERNEL_MARCH_ENV_VAR
# -fno-trapping-math: the kernels' LeakyReLU selects (z > 0 ? z : z * slope) are if-converted only
# when the compiler may evaluate both sides; without it GCC leaves every such loop scalar unless
# AVX-512 masking saves it, so on AVX2 (and ARM) CPUs the normalise and backward passes ran 3-4x
# slower. The kernels never read floating-point exception flags; NaN and infinity propagate as before.
_FLAGS = ["-O3", "-fno-trapping-math", "-shared", "-fPIC", "-fopenmp", "-std=c99"]
_LIB: ctypes.CDLL | None = None
_TRIED = False
_ERROR: str | None = None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "focusnet" / "kernels"


def _flags() -> list[str]:
    return [*_FLAGS, f"-march={kernel_march()}"]


def _compile(sources: tuple[Path, ...], target: Path, compiler: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        command = [compiler, *_flags(), *map(str, sources), "-o", tmp, "-lm"]
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
    if not native_kernels_enabled():
        return None
    if _TRIED:
        return _LIB
    _TRIED = True
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    missing = [src for src in _SOURCES if not src.is_file()]
    if compiler is None or missing:
        _ERROR = "no C compiler (cc/gcc) found" if compiler is None else f"missing {missing[0]}"
        return None
    source = b"".join(src.read_bytes() for src in _SOURCES)
    key = hashlib.sha256(
        source + " ".join([compiler, *_flags(), platform.machine(), platform.node()]).encode()
    ).hexdigest()[:16]
    target = _cache_dir() / f"focusnet_kernels-{key}.so"
    try:
        if not target.is_file():
            _compile(_SOURCES, target, compiler)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        _ERROR = f"could not build {', '.join(src.name for src in _SOURCES)}: {detail.strip()[:300]}"
        return None
    p, i64, f32, f64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_double, ctypes.c_int
    signatures = {
        "fn_bn_lrelu_forward": [p, p, i64, i64, p, p, f64, f32, p, p, p, i32],
        "fn_bn_lrelu_backward": [p, p, p, i64, i64, p, p, p, p, f32, p, p, i32],
        "fn_in_lrelu_forward": [p, p, i64, i64, i64, p, p, f64, f32, p, p, p, i32],
        "fn_in_lrelu_backward": [p, p, p, i64, i64, i64, p, p, p, p, f32, p, p, i32],
        "fn_nc_sums": [p, i64, i64, i64, p, p, p, i32],
        "fn_tail_forward": [p, p, p, p, p, i64, i64, i64, f32, i32],
        "fn_tail_grad_sums": [p, p, p, p, i64, i64, i64, f32, p, p, i32],
        "fn_tail_backward": [p, p, p, p, p, p, p, p, p, i64, i64, i64, f32, i32],
    }
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, i32
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


def _bn_lrelu_forward(
    x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, slope: float,
    mean: torch.Tensor, var: torch.Tensor, invstd: torch.Tensor,
) -> None:
    """The native forward over every pixel of ``x`` (``channels_last``): ``y``, and the statistics."""
    lib = native_library()
    assert lib is not None
    c = x.shape[1]
    status = lib.fn_bn_lrelu_forward(
        _ptr(x), _ptr(y), x.numel() // c, c, _ptr(weight), _ptr(bias), float(eps), float(slope),
        _ptr(mean), _ptr(var), _ptr(invstd), torch.get_num_threads(),
    )
    if status != 0:  # pragma: no cover - allocation failure in C
        raise MemoryError("fn_bn_lrelu_forward failed")


def _bn_lrelu_backward(
    grad: torch.Tensor, x: torch.Tensor, grad_x: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor,
    weight: torch.Tensor, bias: torch.Tensor, slope: float, grad_w: torch.Tensor | None, grad_b: torch.Tensor | None,
) -> None:
    """The native backward of :func:`_bn_lrelu_forward` over every pixel of ``x``."""
    lib = native_library()
    assert lib is not None  # loaded by the forward
    c = x.shape[1]
    status = lib.fn_bn_lrelu_backward(
        _ptr(grad), _ptr(x), _ptr(grad_x), x.numel() // c, c, _ptr(mean), _ptr(invstd), _ptr(weight), _ptr(bias),
        slope, _ptr(grad_w), _ptr(grad_b), torch.get_num_threads(),
    )
    if status != 0:  # pragma: no cover
        raise MemoryError("fn_bn_lrelu_backward failed")


class _BNLeakyReLU(torch.autograd.Function):
    """``leaky_relu(batch_norm(x, batch statistics))``; returns ``(y, mean, biased var)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, slope: float):
        c = x.shape[1]
        y = torch.empty_like(x, memory_format=torch.channels_last)
        mean, var, invstd = (torch.empty(c, dtype=torch.float32) for _ in range(3))
        _bn_lrelu_forward(x, y, weight, bias, eps, slope, mean, var, invstd)
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.slope = float(slope)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor, _gm: torch.Tensor, _gv: torch.Tensor):
        x, weight, bias, mean, invstd = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        c = x.shape[1]
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
        grad_w = torch.empty(c, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        grad_b = torch.empty(c, dtype=torch.float32) if ctx.needs_input_grad[2] else None
        _bn_lrelu_backward(grad, x, grad_x, mean, invstd, weight, bias, ctx.slope, grad_w, grad_b)
        return grad_x, grad_w, grad_b, None, None


def _in_lrelu_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, slope: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, mean, invstd)``: the native kernel on every image of ``x`` (``channels_last``) in one call,
    each image normalised by its own statistics (``mean`` and ``invstd`` are ``(N, C)``)."""
    lib = native_library()
    assert lib is not None
    n, c, h, w = x.shape
    y = torch.empty_like(x, memory_format=torch.channels_last)
    mean, var, invstd = (torch.empty(n, c, dtype=torch.float32) for _ in range(3))
    status = lib.fn_in_lrelu_forward(
        _ptr(x), _ptr(y), n, h * w, c, _ptr(weight), _ptr(bias), float(eps), float(slope),
        _ptr(mean), _ptr(var), _ptr(invstd), torch.get_num_threads(),
    )
    if status != 0:  # pragma: no cover - allocation failure in C
        raise MemoryError("fn_in_lrelu_forward failed")
    return y, mean, invstd


class _INLeakyReLU(torch.autograd.Function):
    """``leaky_relu(instance_norm(x))``: the BatchNorm kernel run on each image alone (an image of a
    ``channels_last`` batch is one contiguous block, and its BatchNorm statistics are its instance
    statistics), all images in one native call; the affine parameters' gradients are summed over the images."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, slope: float):
        y, mean, invstd = _in_lrelu_forward(x, weight, bias, eps, slope)
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.slope = float(slope)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight, bias, mean, invstd = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        n, c, h, w = x.shape
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
        grad_w, grad_b = torch.empty(n, c, dtype=torch.float32), torch.empty(n, c, dtype=torch.float32)
        lib = native_library()
        assert lib is not None  # loaded by the forward
        status = lib.fn_in_lrelu_backward(
            _ptr(grad), _ptr(x), _ptr(grad_x), n, h * w, c, _ptr(mean), _ptr(invstd), _ptr(weight), _ptr(bias),
            ctx.slope, _ptr(grad_w), _ptr(grad_b), torch.get_num_threads(),
        )
        if status != 0:  # pragma: no cover
            raise MemoryError("fn_in_lrelu_backward failed")
        return grad_x, grad_w.sum(0), grad_b.sum(0), None, None


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


def _instance_kernel_applies(x: torch.Tensor, norm: nn.Module) -> bool:
    return (
        type(norm) is nn.InstanceNorm2d
        and norm.affine
        and not norm.track_running_stats
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and norm.weight.dtype == torch.float32
        and x.dim() == 4
        and x.shape[2] * x.shape[3] > 1
        and x.is_contiguous(memory_format=torch.channels_last)
        and not torch.is_autocast_enabled("cpu")
        and not norm._forward_hooks
        and not norm._forward_pre_hooks
        and native_library() is not None
    )


def bn_leaky_relu(x: torch.Tensor, bn: nn.Module, slope: float) -> torch.Tensor:
    """``F.leaky_relu(bn(x), slope)``, fused into one native kernel for a training-mode
    ``BatchNorm2d`` on a ``channels_last`` float32 CPU tensor (running statistics updated as
    ``nn.BatchNorm2d`` does) and, with autograd, for an affine ``InstanceNorm2d`` without running
    statistics (the same kernel on each image); anything else runs ``bn`` and ``F.leaky_relu`` as usual.

    Example:
        >>> import torch
        >>> bn = torch.nn.BatchNorm2d(3)
        >>> bn_leaky_relu(torch.randn(2, 3, 4, 4), bn, 0.1).shape
        torch.Size([2, 3, 4, 4])
    """
    if _instance_kernel_applies(x, bn):
        norm = cast(nn.InstanceNorm2d, bn)
        if not torch.is_grad_enabled():
            return _in_lrelu_forward(x, norm.weight, norm.bias, norm.eps, slope)[0]
        return _INLeakyReLU.apply(x, norm.weight, norm.bias, norm.eps, slope)
    if not _kernel_applies(x, bn):
        y = normalize_with_torch(bn, x)
        return F.leaky_relu(y, slope, inplace=y is not x)
    bn = cast(nn.BatchNorm2d, bn)  # a training-mode BatchNorm2d: _kernel_applies checked
    y, mean, var = _BNLeakyReLU.apply(x, bn.weight, bn.bias, bn.eps, slope)
    _update_running_stats(bn, mean, var, x.shape[0] * x.shape[2] * x.shape[3])
    return y


def normalize_keeping_layout(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` in ``x``'s memory layout (:func:`~focusnet.kernels.layout.normalize_with_torch`); in
    inference an affine ``InstanceNorm2d`` without running statistics on a ``channels_last`` float32
    CPU tensor runs the native kernel on all images in one call (with LeakyReLU slope 1, the identity)
    instead of a BatchNorm per image: ~N times fewer operators, each a wait of the OpenMP threads.

    Example:
        >>> x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
        >>> with torch.no_grad():
        ...     y = normalize_keeping_layout(nn.InstanceNorm2d(3, affine=True), x)
        >>> y.is_contiguous(memory_format=torch.channels_last)
        True
    """
    if not torch.is_grad_enabled() and _instance_kernel_applies(x, norm):
        n = cast(nn.InstanceNorm2d, norm)
        return _in_lrelu_forward(x, n.weight, n.bias, n.eps, 1.0)[0]
    return normalize_with_torch(norm, x)


def _update_running_stats(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
    """``nn.BatchNorm2d``'s running-statistics update from the batch mean and biased variance."""
    momentum = bn.momentum
    # _kernel_applies checked these (track_running_stats, a momentum)
    assert bn.num_batches_tracked is not None and bn.running_mean is not None and bn.running_var is not None
    assert momentum is not None
    with torch.no_grad():
        bn.num_batches_tracked.add_(1)
        bn.running_mean.mul_(1.0 - momentum).add_(mean, alpha=momentum)
        bn.running_var.mul_(1.0 - momentum).add_(var * (count / (count - 1)), alpha=momentum)


# ------------------------------------------------------------------ BatchNorm + SE + residual tail
def _tail_coefficients(
    s1: torch.Tensor, s2: torch.Tensor, centre: torch.Tensor, hw: int, gamma: torch.Tensor,
    beta: torch.Tensor, eps: float, se: tuple[torch.Tensor, torch.Tensor] | None, per_image: bool = False,
    squeeze_before_norm: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image, per-channel ``A``, ``B`` with ``se(norm(y)) = y * A + B``, plus the mean and biased
    variance, from ``s1 = sum(y - centre)`` and ``s2 = sum((y - centre)^2)`` per image and channel
    (float64; differentiable in ``s1``, ``s2``, ``gamma``, ``beta`` and the SE weights). The statistics
    are the batch's (BatchNorm, ``(C,)``) or, with ``per_image``, each image's (InstanceNorm, ``(N, C)``).
    ``squeeze_before_norm``: SE pools ``y`` itself rather than ``norm(y)``."""
    n = s1.shape[0]
    if per_image:
        d_mean = s1 / hw
        var = (s2 / hw - d_mean * d_mean).clamp_min(0.0)
    else:
        d_mean = s1.sum(0) / (n * hw)
        var = (s2.sum(0) / (n * hw) - d_mean * d_mean).clamp_min(0.0)
    mean = centre + d_mean
    scale = gamma * torch.rsqrt(var + eps)
    shift = beta - mean * scale
    if se is None:
        return scale.expand(n, -1), shift.expand(n, -1), mean, var
    w_reduce, w_expand = se
    pooled = centre + s1 / hw  # per-image mean of y
    if not squeeze_before_norm:
        pooled = scale * pooled + shift  # per-image mean of norm(y)
    s = torch.sigmoid(F.relu(pooled @ w_reduce.t()) @ w_expand.t())
    return scale * s, shift * s, mean, var


class _ResidualTail(torch.autograd.Function):
    """``leaky_relu(se(norm(y)) + skip)`` with batch statistics (or, ``per_image``, each image's);
    returns ``(out, mean, biased var)``."""

    @staticmethod
    def forward(ctx, y, skip, gamma, beta, w_reduce, w_expand, eps: float, slope: float, per_image: bool,
                squeeze_before_norm: bool = False):
        lib = native_library()
        assert lib is not None
        n, c, h, w = y.shape
        threads = torch.get_num_threads()
        centre = y[0, :, 0, 0].contiguous()
        s1, s2 = (torch.empty(n, c, dtype=torch.float64) for _ in range(2))
        if lib.fn_nc_sums(_ptr(y), n, h * w, c, _ptr(centre), _ptr(s1), _ptr(s2), threads) != 0:
            raise MemoryError("fn_nc_sums failed")  # pragma: no cover
        se = None if w_reduce is None else (w_reduce.double(), w_expand.double())
        a, b, mean, var = _tail_coefficients(
            s1, s2, centre.double(), h * w, gamma.double(), beta.double(), eps, se, per_image, squeeze_before_norm
        )
        if per_image:  # the backward's reference point per channel: the batch mean
            mean, var = mean.mean(0), var.mean(0)
        a32, b32 = a.float().contiguous(), b.float().contiguous()
        out = torch.empty_like(y, memory_format=torch.channels_last)
        lib.fn_tail_forward(_ptr(y), _ptr(skip), _ptr(a32), _ptr(b32), _ptr(out), n, h * w, c, float(slope), threads)
        ctx.save_for_backward(y, out, gamma, beta, w_reduce, w_expand, s1, s2, centre, a32, mean)
        ctx.eps, ctx.slope, ctx.per_image, ctx.before = float(eps), float(slope), per_image, squeeze_before_norm
        ctx.mark_non_differentiable(mean, var)
        return out, mean.float(), var.float()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor, _gm: torch.Tensor, _gv: torch.Tensor):
        lib = native_library()
        assert lib is not None  # loaded by forward
        y, out, gamma, beta, w_reduce, w_expand, s1, s2, centre, a32, mean = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        n, c, h, w = y.shape
        threads = torch.get_num_threads()
        g_a, g_b = (torch.empty(n, c, dtype=torch.float64) for _ in range(2))
        status = lib.fn_tail_grad_sums(
            _ptr(grad), _ptr(out), _ptr(y), _ptr(centre), n, h * w, c, ctx.slope, _ptr(g_a), _ptr(g_b), threads
        )
        if status != 0:
            raise MemoryError("fn_tail_grad_sums failed")  # pragma: no cover
        g_a += centre.double() * g_b  # sum g * y from sum g * (y - centre)
        # the per-image coefficients are a small float64 graph: differentiate it with autograd
        with torch.enable_grad():
            leaves = [t.detach().double().requires_grad_() for t in (s1, s2, gamma, beta)]
            se = None
            if w_reduce is not None:
                se = (w_reduce.detach().double().requires_grad_(), w_expand.detach().double().requires_grad_())
                leaves += list(se)
            a, b, _, _ = _tail_coefficients(
                leaves[0], leaves[1], centre.double(), h * w, leaves[2], leaves[3], ctx.eps, se, ctx.per_image,
                ctx.before,
            )
            grads = torch.autograd.grad((a, b), leaves, (g_a, g_b), allow_unused=True)
        g1, g2 = (torch.zeros_like(s1) if g is None else g for g in grads[:2])
        # d/dy of the sums: g1 + 2 (y - centre) g2, rewritten around the batch mean (no cancellation)
        k0 = (g1 + 2.0 * (mean - centre.double()) * g2).float().contiguous()
        k1 = (2.0 * g2).float().contiguous()
        mean32 = mean.float().contiguous()
        grad_y = torch.empty_like(y, memory_format=torch.channels_last)
        grad_skip = torch.empty_like(y, memory_format=torch.channels_last) if ctx.needs_input_grad[1] else None
        lib.fn_tail_backward(
            _ptr(grad), _ptr(out), _ptr(y), _ptr(a32), _ptr(k0), _ptr(k1), _ptr(mean32), _ptr(grad_y),
            _ptr(grad_skip), n, h * w, c, ctx.slope, threads,
        )
        param_grads = [None if g is None else g.float() for g in grads[2:]]
        g_gamma, g_beta = param_grads[:2]
        g_wr, g_we = param_grads[2:] if w_reduce is not None else (None, None)
        return grad_y, grad_skip, g_gamma, g_beta, g_wr, g_we, None, None, None, None


TAIL_MIN_ELEMENTS = 1 << 16
"""Smaller tensors take PyTorch's operators: the kernel's per-call float64 coefficient graph costs
about 1 ms, more than it saves below this size (``benchmarks/bench_kernels.py``)."""


def residual_tail_applies(
    y: torch.Tensor, skip: torch.Tensor, bn: nn.Module, se: tuple[torch.Tensor, torch.Tensor] | None = None
) -> bool:
    """Whether :func:`residual_tail` runs the native kernel for these arguments (training-mode
    ``BatchNorm2d`` or an affine ``InstanceNorm2d`` without running statistics;
    float32 ``channels_last`` CPU tensors of one shape with at least :data:`TAIL_MIN_ELEMENTS`
    elements; kernel available).

    Example:
        >>> y = torch.randn(1, 4, 2, 2)
        >>> residual_tail_applies(y, y, torch.nn.BatchNorm2d(4).eval())
        False
    """
    return (
        y.numel() >= TAIL_MIN_ELEMENTS
        and (_kernel_applies(y, bn) or _instance_kernel_applies(y, bn))
        and skip.shape == y.shape
        and skip.dtype == torch.float32
        and skip.is_contiguous(memory_format=torch.channels_last)
        and (se is None or all(t.dtype == torch.float32 for t in se))
    )


def residual_tail(
    y: torch.Tensor, skip: torch.Tensor, bn: nn.Module, slope: float,
    se: tuple[torch.Tensor, torch.Tensor] | None = None, squeeze_before_norm: bool = False,
) -> torch.Tensor:
    """``leaky_relu(se(bn(y)) + skip, slope)``, the end of a residual block, in one native kernel
    each way (a BatchNorm's running statistics updated as ``bn`` does; an InstanceNorm ``bn``
    normalises each image by its own statistics). Only where :func:`residual_tail_applies`;
    :func:`focusnet.models.resganet.tail.block_tail` chooses between this and PyTorch's operators.

    ``se`` is ``(w_reduce, w_expand)``, the two bias-free linear weights of squeeze-and-excitation
    (``s = sigmoid(w_expand @ relu(w_reduce @ mean_hw(z)))``, ``z * s``), or ``None``; with
    ``squeeze_before_norm`` it pools ``y`` instead of ``z = bn(y)``.

    Raises:
        ValueError: the kernel does not apply to these arguments.

    Example:
        >>> bn = torch.nn.BatchNorm2d(4)
        >>> y = torch.randn(2, 4, 128, 128).contiguous(memory_format=torch.channels_last)
        >>> not residual_tail_applies(y, y, bn) or residual_tail(y, torch.zeros_like(y), bn, 0.3).shape == y.shape
        True
    """
    if not residual_tail_applies(y, skip, bn, se):
        raise ValueError(
            "residual_tail: the native kernel does not apply to these arguments (it needs a training-mode "
            "BatchNorm2d or affine InstanceNorm2d and large float32 channels_last CPU tensors); use "
            "focusnet.models.resganet.tail.block_tail, which falls back to PyTorch's operators"
        )
    w_reduce, w_expand = se if se is not None else (None, None)
    if isinstance(bn, nn.InstanceNorm2d):  # affine, no running statistics: residual_tail_applies checked
        return _ResidualTail.apply(y, skip, bn.weight, bn.bias, w_reduce, w_expand, bn.eps, slope, True,
                                  squeeze_before_norm)[0]
    bn = cast(nn.BatchNorm2d, bn)  # a training-mode BatchNorm2d: residual_tail_applies checked
    out, mean, var = _ResidualTail.apply(y, skip, bn.weight, bn.bias, w_reduce, w_expand, bn.eps, slope, False,
                                        squeeze_before_norm)
    _update_running_stats(bn, mean, var, y.shape[0] * y.shape[2] * y.shape[3])
    return out
