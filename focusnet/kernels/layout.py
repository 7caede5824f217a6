"""Normalisations of the fast path run with PyTorch's operators, in the input's memory layout
(:func:`focusnet.kernels.normalize_keeping_layout` runs the native kernel where it applies, else this).

Example:
    >>> import torch
    >>> x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    >>> normalize_with_torch(torch.nn.BatchNorm2d(3), x).is_contiguous(memory_format=torch.channels_last)
    True
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["normalize_with_torch"]


def normalize_with_torch(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` in ``x``'s memory layout: an ``InstanceNorm2d`` returns NCHW memory for a
    ``channels_last`` input, which would send every later convolution of the fast path down its
    NCHW kernels (under bf16 autocast, where the per-image kernel does not apply, a ``lite``
    training step took 1.5x as long as in fp32). In CPU inference an InstanceNorm without running
    statistics runs as BatchNorm on each image instead, which needs no layout conversion.

    Example:
        >>> x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
        >>> y = normalize_with_torch(torch.nn.InstanceNorm2d(3, affine=True), x)
        >>> y.is_contiguous(memory_format=torch.channels_last)
        True
    """
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if (
        channels_last
        and not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and type(norm) is nn.InstanceNorm2d
        and not norm.track_running_stats
        and not norm._forward_hooks
        and not norm._forward_pre_hooks
    ):
        # CPU inference: one image of a channels_last batch is one contiguous block whose batch
        # statistics are its instance statistics, so BatchNorm on each image, with no layout
        # conversion (2x faster for `lite`; under autograd the per-image backward passes cost more
        # than the conversions: 8% under bf16 at batch 8)
        images = [x[i : i + 1] for i in range(x.shape[0])]
        w, b, eps = norm.weight, norm.bias, norm.eps
        return torch.cat([F.batch_norm(image, None, None, w, b, True, 0.0, eps) for image in images])
    y = norm(x)
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y
