"""BatchNorm or InstanceNorm followed by LeakyReLU through the native kernel (``bn_leaky_relu.c``),
with PyTorch's operators where it does not apply (:mod:`focusnet.kernels`).

Example:
    >>> bn = torch.nn.BatchNorm2d(3)
    >>> bn_leaky_relu(torch.randn(2, 3, 4, 4), bn, 0.1).shape
    torch.Size([2, 3, 4, 4])
"""
from __future__ import annotations

from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.kernels.build import _ptr, native_library
from focusnet.kernels.layout import normalize_with_torch

__all__ = ["bn_leaky_relu", "normalize_keeping_layout"]


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
