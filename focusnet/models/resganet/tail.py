"""The end of a ResGANet block, ``leaky_relu(se(bn(y)) + skip)``, written once.

Two implementations sit behind :func:`block_tail`:

* PyTorch's operators (:func:`tail_torch`), which every execution can take: the plain path (also
  traced and exported), the fast path where the native kernel does not apply (eval mode, CUDA,
  bf16, small tensors), and the fused path with its BatchNorm already folded (``bn=None``);
* the native C kernel of :mod:`focusnet.kernels` (one pass each way for the normalisation, SE, the
  residual sum and the activation), for a training-mode BatchNorm (or an affine InstanceNorm, with
  each image's statistics) on large fp32 ``channels_last`` CPU tensors.

Example:
    >>> bn = torch.nn.BatchNorm2d(4).eval()
    >>> y, skip = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    >>> torch.allclose(block_tail(y, skip, bn, None, 0.3), F.leaky_relu(bn(y) + skip, 0.3))
    True
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.kernels import normalize_keeping_layout, residual_tail, residual_tail_applies
from focusnet.models.layers import SqueezeExcite

__all__ = ["block_tail", "tail_torch"]


def _channel_mean(y: torch.Tensor) -> torch.Tensor:
    """Per-channel mean over the pixels, ``(N, C)``: a sum divided afterwards, whose backward is a
    broadcast view (``mean``'s materialises a full-size tensor divided by H*W)."""
    return y.sum(dim=(2, 3)) / (y.shape[2] * y.shape[3])


def tail_torch(
    y: torch.Tensor, skip: torch.Tensor, bn: nn.Module | None, se: nn.Module | None, slope: float,
    inplace: bool = False, layerwise: bool = False, squeeze_before_norm: bool = False,
) -> torch.Tensor:
    """``leaky_relu(se(bn(y)) + skip, slope)`` with PyTorch's operators.

    Args:
        y: the output of the block's last 1x1 convolution.
        skip: the block's shortcut (same shape).
        bn: the block's output BatchNorm, or ``None`` when it is already folded into ``y``.
        se: a :class:`~focusnet.models.layers.SqueezeExcite`, another module, or ``None``.
        slope: LeakyReLU slope.
        inplace: overwrite ``y`` (only where autograd does not need it: inference).
        layerwise: call ``se`` as a module (the plain path: its hooks fire, a trace records its
            layers); otherwise squeeze-and-excitation runs from its weights, summing then dividing.
        squeeze_before_norm: a :class:`~focusnet.models.layers.SqueezeExcite` pools ``y`` rather
            than ``bn(y)`` (``bn`` must not be folded into ``y``).
    """
    if squeeze_before_norm and bn is None and isinstance(se, SqueezeExcite):
        raise ValueError("squeeze_before_norm: the normalisation must not be folded into y (its input is pooled)")
    pooled = _channel_mean(y) if squeeze_before_norm and isinstance(se, SqueezeExcite) else None
    if bn is not None:
        y = bn(y) if layerwise else normalize_keeping_layout(bn, y)
    if isinstance(se, SqueezeExcite) and not layerwise:
        pooled = _channel_mean(y) if pooled is None else pooled
        s = torch.sigmoid(se.expand(F.relu(se.reduce(pooled))))[:, :, None, None]
        y = y.mul_(s) if inplace else y * s
    elif isinstance(se, SqueezeExcite):
        y = se(y, pooled)
    elif se is not None and not isinstance(se, nn.Identity):
        y = se(y)
    out = y.add_(skip) if inplace else y + skip
    return F.leaky_relu(out, slope, inplace=True)  # out is this function's own tensor


def block_tail(
    y: torch.Tensor, skip: torch.Tensor, bn: nn.Module | None, se: nn.Module | None, slope: float,
    inplace: bool = False, squeeze_before_norm: bool = False,
) -> torch.Tensor:
    """The block's tail through the native kernel where it applies, else :func:`tail_torch`.

    The kernel applies to a training-mode ``BatchNorm2d`` (its running statistics are updated as
    BatchNorm does) or an affine ``InstanceNorm2d`` without running statistics; a
    :class:`~focusnet.models.layers.SqueezeExcite` or no SE; and fp32
    ``channels_last`` CPU tensors of at least :data:`focusnet.kernels.TAIL_MIN_ELEMENTS` elements.
    """
    plain_se = se is None or isinstance(se, (SqueezeExcite, nn.Identity))
    se_weights = (se.reduce.weight, se.expand.weight) if isinstance(se, SqueezeExcite) else None
    if bn is not None and plain_se and residual_tail_applies(y, skip, bn, se_weights):
        return residual_tail(y, skip, bn, slope, se_weights, squeeze_before_norm)
    return tail_torch(y, skip, bn, se, slope, inplace, squeeze_before_norm=squeeze_before_norm)
