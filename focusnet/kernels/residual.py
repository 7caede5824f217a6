"""The end of a ResGANet block, ``leaky_relu(se(bn(y)) + skip)``, through the native kernel
(``residual_tail.c``; :mod:`focusnet.kernels`).

Example:
    >>> y = torch.randn(1, 4, 2, 2)
    >>> residual_tail_applies(y, y, torch.nn.BatchNorm2d(4).eval())
    False
"""
from __future__ import annotations

from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.kernels.build import _ptr, native_library
from focusnet.kernels.norm_act import _instance_kernel_applies, _kernel_applies, _update_running_stats

__all__ = ["TAIL_MIN_ELEMENTS", "residual_tail", "residual_tail_applies"]


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
