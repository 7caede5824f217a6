"""The operations the fast and fused executions of ResGANet / FocusNet++ are made of.

Each computes what its layer-by-layer counterpart computes, from the same parameters:

* :func:`conv1x1_cl`: a 1x1 convolution as one matrix product on the NHWC view (CPU; a cuDNN
  convolution on CUDA), with an optional activation applied in place;
* :func:`conv_act`: a stride-1 convolution plus activation (one oneDNN kernel in fp32 CPU inference);
* :func:`conv_train`: a convolution whose backward takes the bias gradient as a plain sum;
* :func:`bn_affine`, ``_fold``: eval-mode BatchNorm as a per-channel affine map, folded into the
  convolution before it;
* ``_conv_bn_lrelu``: Conv-BN-LeakyReLU with folding (inference) or the native BN + LeakyReLU
  kernel (CPU training).

Which kernel an operation uses for its arguments (oneDNN fused, matrix product, cuDNN, native C) is
decided inside the operation; which *execution* of a block runs is decided once per call by
:func:`~focusnet.models.resganet.execution.choose_strategy`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.kernels import bn_leaky_relu, normalize_keeping_layout
from focusnet.models.resganet.execution import foldable_bn as _foldable_bn
from focusnet.models.resganet.execution import use_fused_inference

__all__ = ["bn_affine", "conv1x1_cl", "conv_act", "conv_train", "pad_border"]


def _act_attr(act: str | None, slope: float) -> tuple[str, list[float]]:
    if act is None:
        return "none", []
    if act == "leaky_relu":
        return "leaky_relu", [slope]
    return act, []  # "sigmoid"


def _apply_act(y: torch.Tensor, act: str | None, slope: float) -> torch.Tensor:
    if act == "leaky_relu":
        return F.leaky_relu(y, slope, inplace=True)
    if act == "sigmoid":
        return torch.sigmoid_(y)
    return y


def pad_border(x: torch.Tensor, padding: int, padding_mode: str) -> tuple[torch.Tensor, int]:
    """``(x, padding)`` for a zero-padded convolution; for another ``nn.Conv2d`` padding mode, ``x``
    padded by that mode and 0 (what ``nn.Conv2d`` does before its convolution).

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> y, p = pad_border(x, 1, "replicate"); tuple(y.shape), p
        ((1, 1, 4, 4), 0)
    """
    if padding_mode == "zeros" or padding == 0:
        return x, padding
    return F.pad(x, (padding,) * 4, mode=padding_mode), 0


def conv_act(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int, groups: int,
    act: str | None = None, slope: float = 0.0, padding_mode: str = "zeros",
) -> torch.Tensor:
    """``act(conv2d(x, weight, bias))`` (stride 1, the border padded by ``padding_mode``); one fused
    oneDNN kernel in fp32 CPU inference.

    Example:
        >>> x = torch.randn(1, 4, 6, 6).contiguous(memory_format=torch.channels_last)
        >>> w, b = torch.randn(4, 2, 3, 3), torch.randn(4)
        >>> ref = F.leaky_relu(F.conv2d(x, w, b, padding=1, groups=2), 0.3)
        >>> with torch.no_grad():
        ...     bool(torch.allclose(conv_act(x, w, b, 1, 2, "leaky_relu", 0.3), ref, atol=1e-5))
        True
    """
    x, padding = pad_border(x, padding, padding_mode)
    if use_fused_inference(x):
        attr, scalars = _act_attr(act, slope)
        p = [padding, padding]
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, p, [1, 1], [1, 1], groups, attr, scalars, "")
    return _apply_act(F.conv2d(x, weight, bias, 1, padding, 1, groups), act, slope)  # conv's grad needs no output


class _ConvBiasSum(torch.autograd.Function):
    """``conv2d(x, weight, bias)`` (stride 1, zero padding) whose backward takes the bias gradient
    as a plain sum of the output gradient over batch and pixels.

    oneDNN computes all three gradients in one call when asked for the bias too; for FocusNet++'s
    full-resolution ``groups=4`` 3x3 convolutions (8 channels per group, channels_last) that call
    is ~20 ms slower than the input and weight gradients alone plus a 3 ms sum. Same maths.
    """

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int, groups: int
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.groups = padding, groups
        return F.conv2d(x, weight, bias, 1, padding, 1, groups)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = None
        if need_x or need_w:
            p = [ctx.padding, ctx.padding]
            grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], p, [1, 1], False, [0, 0], ctx.groups, [need_x, need_w, False]
            )
        grad_b = grad.sum(dim=(0, 2, 3)) if need_b else None
        return grad_x, grad_w, grad_b, None, None


def conv_train(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a stride-1 convolution; on fp32 CPU tensors under autograd with a trainable
    bias, through :class:`_ConvBiasSum` (faster backward, same maths; a border mode other than
    zeros is padded first, as ``nn.Conv2d`` does).

    Example:
        >>> conv = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        >>> x = torch.randn(2, 8, 6, 6, requires_grad=True)
        >>> bool(torch.allclose(conv_train(x, conv), conv(x)))
        True
    """
    b = conv.bias
    if (
        b is not None
        and b.requires_grad
        and torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and conv.weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and isinstance(conv.padding, tuple)
        and len(set(conv.padding)) == 1
    ):
        x, padding = pad_border(x, conv.padding[0], conv.padding_mode)
        return _ConvBiasSum.apply(x, conv.weight, b, padding, conv.groups)
    return conv(x)


def _dense_1x1(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """``(C_out, C_in / groups, 1, 1)`` conv weight -> dense ``(C_out, C_in)`` (block-diagonal)."""
    w = weight.flatten(1)
    if groups == 1:
        return w
    return torch.block_diag(*w.chunk(groups, dim=0))


def _weight_grad(grad: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """``grad^T @ x2``, ``(C_out, C_in)``, a product over M = N*H*W pixels with a tiny output.

    BLAS parallelises over the output only, so with several threads the pixels are split into
    chunks (one batched product, then a sum); the narrow side goes first (``x2^T @ grad`` when
    ``C_in < C_out``), which is ~10x faster for C_in = 4 than the other orientation."""
    m = x2.shape[0]
    chunks = 4 if torch.get_num_threads() > 1 and m % 4 == 0 and m >= 65536 else 1
    if chunks > 1:
        g = grad.reshape(chunks, m // chunks, grad.shape[1])
        x = x2.reshape(chunks, m // chunks, x2.shape[1])
        return torch.bmm(g.transpose(1, 2), x).sum(0)
    if x2.shape[1] < grad.shape[1]:
        return x2.t().mm(grad).t()
    return grad.t().mm(x2)


class _MatmulBias(torch.autograd.Function):
    """``x2 @ weight^T + bias`` with the backward of :func:`_weight_grad` (once differentiable)."""

    @staticmethod
    def forward(ctx, x2: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x2, weight)
        ctx.has_bias = bias is not None
        return torch.addmm(bias, x2, weight.t()) if bias is not None else torch.mm(x2, weight.t())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x2, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = grad.mm(weight) if need_x else None
        grad_w = _weight_grad(grad, x2) if need_w else None
        grad_b = grad.sum(0) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b


def _cudnn_1x1(x: torch.Tensor) -> bool:
    """Whether :func:`conv1x1_cl` runs a 1x1 convolution (cuDNN, on CUDA) rather than a matrix product."""
    return x.device.type == "cuda"


def conv1x1_cl(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    sigmoid: bool = False,
    leaky_slope: float | None = None,
) -> torch.Tensor:
    """A 1x1 convolution with a dense ``(C_out, C_in)`` weight as one matrix product on the NHWC view
    (on CUDA: cuDNN's 1x1 convolution in ``channels_last``).

    Returns an NCHW-shaped tensor in ``channels_last`` memory (a view of the ``(N, H, W, C_out)``
    product). Exact up to float rounding. ``sigmoid=True`` (or ``leaky_slope=s``: LeakyReLU) applies
    the activation in place to the product itself (not to a view of it, which autograd would have
    to copy back); in fp32 CPU inference product, bias and activation are one oneDNN kernel.

    Example:
        >>> x = torch.randn(2, 8, 5, 5).contiguous(memory_format=torch.channels_last)
        >>> conv = nn.Conv2d(8, 4, 1)
        >>> bool(torch.allclose(conv1x1_cl(x, conv.weight.flatten(1), conv.bias), conv(x), atol=1e-6))
        True
    """
    n, c, h, w = x.shape
    act = "sigmoid" if sigmoid else None if leaky_slope is None else "leaky_relu"
    slope = 0.0 if leaky_slope is None else float(leaky_slope)
    if _cudnn_1x1(x):
        # cuDNN's 1x1 convolution on the channels_last tensor: a GEMM with TF32 where PyTorch lets
        # convolutions use it (the plain path's numerics), and a split-K weight gradient; cuBLAS
        # picks a 32x32-tile kernel without split-K for grad^T @ x over N*H*W pixels (issue 19:
        # 58 of 83 ms of FocusNet++'s fp32 step on an H200)
        y = F.conv2d(x.contiguous(memory_format=torch.channels_last), weight[:, :, None, None], bias)
        return _apply_act(y, act, slope)
    x2 = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    if use_fused_inference(x):
        attr, scalars = _act_attr(act, slope)
        y = torch.ops.mkldnn._linear_pointwise(x2, weight, bias, attr, scalars, "")
    elif (
        torch.is_grad_enabled()
        and (weight.requires_grad or (bias is not None and bias.requires_grad))
        and not torch.is_autocast_enabled(x.device.type)
    ):
        y = _apply_act(_MatmulBias.apply(x2, weight, bias), act, slope)
    else:
        y = torch.addmm(bias, x2, weight.t()) if bias is not None else torch.mm(x2, weight.t())
        y = _apply_act(y, act, slope)
    return y.view(n, h, w, weight.shape[0]).permute(0, 3, 1, 2)


def bn_affine(bn: nn.BatchNorm2d, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``y = x * scale + shift`` (computed in ``dtype``, default the buffers')."""
    def cast(t: torch.Tensor) -> torch.Tensor:
        return t if dtype is None else t.to(dtype)

    if bn.running_var is None or bn.running_mean is None:
        raise ValueError("bn_affine needs a BatchNorm with running statistics")
    scale = torch.rsqrt(cast(bn.running_var) + bn.eps)
    if bn.weight is not None:
        scale = scale * cast(bn.weight)
    shift = -cast(bn.running_mean) * scale
    if bn.bias is not None:
        shift = shift + cast(bn.bias)
    return scale, shift


def _fold(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.Module):
    """``(weight, bias, bn_left)`` of a conv followed by ``bn``: folded when ``bn`` is an eval-mode
    BatchNorm, absorbed when it is an Identity (already folded by export), else returned to apply."""
    if isinstance(bn, nn.Identity):
        return weight, bias, None
    if not _foldable_bn(bn):
        return weight, bias, bn
    scale, shift = bn_affine(bn)
    w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    b = shift if bias is None else bias * scale + shift
    return w, b, None


def _conv_bn(x: torch.Tensor, conv: nn.Conv2d, bn: nn.Module, dense: torch.Tensor | None = None) -> torch.Tensor:
    """``bn(conv(x))`` with folding where possible; ``dense`` replaces the 1x1 weight (grouped -> dense)."""
    if dense is not None:
        w, b, rest = _fold(dense, conv.bias, bn)
        y = conv1x1_cl(x, w, b)
    else:
        w, b, rest = _fold(conv.weight, conv.bias, bn)
        y = conv._conv_forward(x, w, b)  # nn.Conv2d's own call: its padding mode too
    return y if rest is None else normalize_keeping_layout(rest, y)


def _upsample2x_cl(t: torch.Tensor) -> torch.Tensor:
    """Nearest 2x upsampling, kept in ``channels_last``."""
    return F.interpolate(t, scale_factor=2.0, mode="nearest").contiguous(memory_format=torch.channels_last)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    """The convolution's bias, or zeros where it has none (for folding and composing)."""
    return conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.weight.shape[0])


def _conv_bn_lrelu(
    x: torch.Tensor, conv: nn.Conv2d, bn: nn.Module, slope: float, dense: torch.Tensor | None = None
) -> torch.Tensor:
    """``leaky_relu(bn(conv(x)))``: BN folded and the activation fused in inference, the fused
    BN + LeakyReLU kernel in CPU training; ``dense`` replaces a 1x1 weight (grouped -> dense)."""
    w, b, rest = _fold(dense if dense is not None else conv.weight, conv.bias, bn)
    if dense is not None:
        if rest is None:
            return conv1x1_cl(x, w, b, leaky_slope=slope)
        return bn_leaky_relu(conv1x1_cl(x, w, b), rest, slope)
    padding = conv.padding  # a tuple of ints, or 'same' / 'valid'
    if rest is None and conv.stride == (1, 1) and conv.dilation == (1, 1) and not isinstance(padding, str):
        if len(set(padding)) == 1:
            return conv_act(x, w, b, padding[0], conv.groups, "leaky_relu", slope, conv.padding_mode)
    if rest is not None:  # BN not folded (training): the convolution keeps its own weights
        return bn_leaky_relu(conv_train(x, conv), rest, slope)
    return F.leaky_relu(conv._conv_forward(x, w, b), slope, inplace=True)  # _conv_forward: the padding mode
