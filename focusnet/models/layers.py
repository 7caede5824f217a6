"""Layers and conventions the models share: Keras-compatible defaults and initialisers, the Keras
``l2`` kernel regulariser, squeeze-and-excitation, the input-size check and Wide U-Net's unit.

The authors' code of most models in this package is Keras (implementation spec §2.2 and §4); these
are the pieces that port its conventions to PyTorch, used by FocusNet, FocusNet++ and the U-Net
family (unet, attention_unet, wide_unet, unetpp, bcdunet, r2unet, fcn).

Example:
    >>> batch_norm(32).eps, KERAS_LEAKY_SLOPE
    (0.001, 0.3)
"""
from __future__ import annotations

from typing import Literal, TypeVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.errors import FocusNetError

__all__ = [
    "KERAS_BN_EPS",
    "KERAS_BN_MOMENTUM",
    "KERAS_LEAKY_SLOPE",
    "KerasInit",
    "L2Conv2d",
    "SqueezeExcite",
    "StandardUnit",
    "batch_norm",
    "check_input_size",
    "keras_init_",
    "l2_penalty",
    "set_batch_norm_momentum",
]

# Keras defaults used by the authors' code (spec §2.2 rows 16-17).
KERAS_BN_MOMENTUM = 0.01  # PyTorch momentum = 1 - Keras momentum (0.99)
KERAS_BN_EPS = 1e-3
KERAS_LEAKY_SLOPE = 0.3


def batch_norm(channels: int, momentum: float = KERAS_BN_MOMENTUM, eps: float = KERAS_BN_EPS) -> nn.BatchNorm2d:
    """``BatchNorm2d`` with the Keras defaults (momentum 0.99 in Keras terms, eps 1e-3).

    Example:
        >>> batch_norm(32).eps
        0.001
    """
    return nn.BatchNorm2d(channels, momentum=momentum, eps=eps)


NORMS = ("batch", "instance")
"""Normalisation layers a FocusNet++ can be built with (``norm=``): BatchNorm or per-image InstanceNorm."""

PaddingMode = Literal["zeros", "reflect", "replicate"]
PADDING_MODES: tuple[PaddingMode, ...] = ("zeros", "reflect", "replicate")
"""How a FocusNet++'s spatial convolutions (stem and 3x3 trunks) pad the image border (``padding_mode=``):
``nn.Conv2d``'s modes; ``"zeros"`` is the paper's (Keras ``'same'``)."""

HeadUpsample = Literal["nearest", "bilinear"]
HEAD_UPSAMPLES: tuple[HeadUpsample, ...] = ("nearest", "bilinear")
"""How a FocusNet++'s coarse per-scale maps reach the output size before the fusion (``head_upsample=``):
``"nearest"`` is the paper's (pixel repetition); ``"bilinear"`` interpolates (``align_corners=False``)."""

SkipMerge = Literal["after_stage", "after_first"]
SKIP_MERGES: tuple[SkipMerge, ...] = ("after_stage", "after_first")
"""Where a FocusNet++ decoder stage adds its encoder skip (``skip_merge=``): ``"after_stage"`` is the
paper's (after all of the stage's blocks); ``"after_first"`` after the stage's first block, so that its
further blocks (``dec_blocks`` > 1) refine the merged features with their 3x3 convolutions."""


def norm_layer(
    kind: str, channels: int, momentum: float = KERAS_BN_MOMENTUM, eps: float = KERAS_BN_EPS
) -> nn.Module:
    """A normalisation layer from :data:`NORMS`: ``"batch"`` is :func:`batch_norm`; ``"instance"`` an
    ``InstanceNorm2d`` with a learned affine map and no running statistics (``momentum`` unused), as
    MONAI's BasicUNet uses: the statistics of each image, in training and in evaluation alike.

    Example:
        >>> type(norm_layer("instance", 8)).__name__, type(norm_layer("batch", 8)).__name__
        ('InstanceNorm2d', 'BatchNorm2d')
    """
    if kind == "batch":
        return batch_norm(channels, momentum, eps)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, eps=eps, affine=True)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {kind!r}")


def set_batch_norm_momentum(module: nn.Module, momentum: float) -> nn.Module:
    """Set the running-statistics momentum (PyTorch convention) of every BatchNorm in ``module``.

    For baselines built with the Keras momentum (0.01) whose recipe trains only a few hundred
    steps: the running statistics then lag the weights and evaluation-mode outputs collapse.

    Example:
        >>> net = set_batch_norm_momentum(nn.Sequential(batch_norm(4), batch_norm(4)), 0.1)
        >>> [m.momentum for m in net]
        [0.1, 0.1]
    """
    if not 0.0 < float(momentum) <= 1.0:
        raise ValueError(f"bn_momentum must be in (0, 1] (PyTorch convention); got {momentum!r}")
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = float(momentum)
    return module


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018) as in the authors' ``se.py``.

    Global average pool, bias-free FC to ``channels // ratio`` with ReLU, bias-free FC back with
    sigmoid, channel-wise rescale. The reduced width is at least 1 (for very narrow test models).
    ``pooled`` (``(N, C)``) replaces the pool of ``x`` (ResGANet's ``se_squeeze="before_norm"``).

    Example:
        >>> se = SqueezeExcite(32)
        >>> se(torch.randn(2, 32, 8, 8)).shape
        torch.Size([2, 32, 8, 8])
    """

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // ratio)
        self.reduce = nn.Linear(channels, hidden, bias=False)
        self.expand = nn.Linear(hidden, channels, bias=False)

    def forward(self, x: torch.Tensor, pooled: torch.Tensor | None = None) -> torch.Tensor:
        s = x.mean(dim=(2, 3)) if pooled is None else pooled
        s = torch.sigmoid(self.expand(F.relu(self.reduce(s))))
        return x * s[:, :, None, None]


# ---- U-Net family layers ----
# Shared by the baselines unet, attention_unet, wide_unet and unetpp (spec §4, porting conventions):
# the input-size check, Keras weight initialisers, Keras ``l2`` kernel regularisers and the
# ``standard_unit`` of Wide U-Net / UNet++.

KerasInit = Literal["he_normal", "glorot_normal", "glorot_uniform"]

# Keras >= 2.2.3 draws "normal" variance-scaling weights from a normal truncated at 2 std and
# divides the std by this factor so that the truncated draw keeps the intended variance.
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def check_input_size(x: torch.Tensor, multiple: int, model: str) -> None:
    """Raise :class:`~focusnet.errors.FocusNetError` unless H and W are multiples of ``multiple``.

    Args:
        x: input batch (B, C, H, W).
        multiple: the model's total stride (16 for four 2x2 poolings).
        model: model name for the message.

    Example:
        >>> check_input_size(torch.zeros(1, 3, 64, 96), 16, "unet")
    """
    if torch.jit.is_tracing():  # sizes are tensors while tracing; the trace is shape-specialised anyway
        return
    if x.dim() != 4:
        raise FocusNetError(f"{model}: expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % multiple or w % multiple:
        raise FocusNetError(
            f"{model}: input height and width must be divisible by {multiple}, got {h}x{w}; "
            "resize or pad the image"
        )


_Conv = TypeVar("_Conv", bound=nn.modules.conv._ConvNd)


@torch.no_grad()
def keras_init_(module: _Conv, kernel: KerasInit) -> _Conv:
    """Initialise a conv / transposed conv like a Keras layer: ``kernel`` initialiser, zero bias.

    Fans follow Keras (and PyTorch): receptive field times weight dim 1 (fan in) or dim 0 (fan out),
    which for a transposed conv is (filters, input channels) as in Keras.

    Args:
        module: an ``nn.Conv2d`` or ``nn.ConvTranspose2d``.
        kernel: ``"he_normal"``, ``"glorot_normal"`` or ``"glorot_uniform"`` (the Keras default).

    Example:
        >>> conv = keras_init_(nn.Conv2d(3, 8, 3), "he_normal")
        >>> float(conv.bias.detach().abs().sum())
        0.0
    """
    weight = module.weight
    receptive = weight[0, 0].numel()
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    if kernel == "he_normal":
        std = (2.0 / fan_in) ** 0.5 / _TRUNCATED_NORMAL_STD
        nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)
    elif kernel == "glorot_normal":
        std = (2.0 / (fan_in + fan_out)) ** 0.5 / _TRUNCATED_NORMAL_STD
        nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)
    elif kernel == "glorot_uniform":
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        nn.init.uniform_(weight, -limit, limit)
    else:
        raise ValueError(f"unknown Keras initialiser {kernel!r}")
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


class L2Conv2d(nn.Conv2d):
    """``nn.Conv2d`` carrying a Keras ``kernel_regularizer=l2(l2)`` coefficient.

    The penalty ``l2 * sum(weight**2)`` (kernel only, not the bias) is not applied by the layer;
    collect it with :func:`l2_penalty` and add it to the loss.

    Example:
        >>> conv = L2Conv2d(3, 8, 3, padding=1, l2=1e-4)
        >>> conv.l2
        0.0001
    """

    def __init__(self, *args, l2: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.l2 = float(l2)


def l2_penalty(module: nn.Module) -> torch.Tensor:
    """Sum of the Keras-style L2 kernel penalties of every :class:`L2Conv2d` inside ``module``.

    Equivalent alternative: SGD ``weight_decay = 2 * l2`` on those kernels only.

    Example:
        >>> net = nn.Sequential(L2Conv2d(1, 1, 1, bias=False, l2=0.5))
        >>> _ = nn.init.ones_(net[0].weight)
        >>> float(l2_penalty(net))
        0.5
    """
    terms = [m.l2 * m.weight.square().sum() for m in module.modules() if isinstance(m, L2Conv2d) and m.l2]
    if not terms:
        first = next(module.parameters(), None)
        return torch.zeros((), device=None if first is None else first.device)
    return torch.stack(terms).sum()


class StandardUnit(nn.Module):
    """``standard_unit`` of Wide U-Net and UNet++ (Zhou et al., DLMIA 2018).

    Conv3x3-ELU-Dropout twice; he_normal kernels with Keras ``l2`` regularisers.

    Args:
        in_channels: input channels.
        out_channels: filters of both convolutions.
        dropout: dropout rate after each convolution (the authors' code: 0.5).
        l2: L2 kernel-regulariser coefficient (the authors' code: 1e-4).

    Example:
        >>> StandardUnit(3, 8)(torch.randn(1, 3, 16, 16)).shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.5, l2: float = 1e-4) -> None:
        super().__init__()
        self.conv1 = keras_init_(L2Conv2d(in_channels, out_channels, 3, padding=1, l2=l2), "he_normal")
        self.conv2 = keras_init_(L2Conv2d(out_channels, out_channels, 3, padding=1, l2=l2), "he_normal")
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(F.elu(self.conv1(x)))
        return self.drop(F.elu(self.conv2(x)))
