"""FocusNet (v1): an attention-gated dual-branch residual network.

Paper: Chaitanya Kaul, Suresh Manandhar and Nick Pears, "FocusNet: An attention-based Fully
Convolutional Network for Medical Image Segmentation", IEEE ISBI 2019, arXiv:1902.03091.

This port follows ``models.focusnet`` of the authors' Keras repository
(``chaitanya-kaul/TheFocusNetSeries``, ``models.py``, Sep 2019), which FocusNet++ (Kaul et al.,
ISBI 2021) compares against in its Table 2: 19,063,933 trainable parameters (19,073,573 Keras
total, with BN moving statistics) and 70.03 GMACs at 3×256×256.

Structure (widths for the default ``base_width=32``):

* pre-activation ResNet basic blocks (``resnet.py``): conv a = [BN → ReLU →] Conv3×3(stride),
  conv b = BN → ReLU → Conv3×3, plus an identity shortcut or a Conv1×1(stride) projection
  (no BN) when the shape changes. "down" blocks have stride 2 and the leading pre-activation;
  "same" blocks have stride 1 and none;
* branch 1, the attention generator: Conv3×3(32, no bias) → BN → LeakyReLU(0.3), then
  down(32), same(64), down(64), same(128), down(128), same(256), Dropout(0.2), and a decoder
  of "same" blocks (256, 128, 64) over cat[skip, up(x)], with up = UpSampling ×2 → Conv2×2
  + ReLU;
* branch 2, the main network: Conv7×7(64) → BN → ReLU, then per level
  same(C) → SE → ⊙ sigmoid(branch-1 map) → SE → down(C) for C = 64, 128, 256, and
  same(512) → SE → down(512) at H/16;
* decoder: same(256/128/64) over cat[skip, up(x)] with a side output
  Conv1×1(1, sigmoid) ∘ Conv3×3(32, ReLU) ∘ Up×8/4/2 at each level, a full-resolution
  same(32) → same(16) → same(4) → Conv1×1(1, sigmoid), and a fusion head
  Conv1×1 ∘ Conv3×3(32, ReLU) over the four side outputs.

Departures from the authors' code (all documented choices, none changing the count):

* the fusion head returns **logits** (no final sigmoid). The four side outputs keep their
  sigmoid because the fusion head consumes probabilities; with ``num_classes > 1`` every
  side output and the head have ``num_classes`` channels;
* BatchNorm: the authors' ``Batch_Normalization.BatchNormalization(freeze=False)`` always runs
  with batch statistics, even at inference, in every residual block and the 7×7 stem. The
  default here is standard BatchNorm (running statistics in eval mode).
  ``authors_batchnorm=True`` reproduces the authors' behaviour (see :class:`BatchStatBatchNorm2d`);
* the Keras ``l2`` kernel regularisers (λ = 1e-4 on the residual blocks and the stem,
  5e-4 on the initial 3×3 conv) are not applied implicitly: those kernels are
  :class:`~focusnet.models.layers.L2Conv2d`, and :meth:`FocusNet.l2_penalty` (like
  :func:`focusnet.models.layers.l2_penalty`) returns their sum Σ λ·Σw² for adding to the loss;
* only the fused output is returned; the side outputs feed the fusion head and are not
  supervised separately;
* initialisers: He-normal for every conv, Glorot-uniform for the SE dense layers;
* ``base_width`` scales every width proportionally (32 reproduces the code).

The input height and width must be divisible by 16 (four stride-2 blocks).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.errors import FocusNetError
from focusnet.models.layers import (
    KERAS_BN_EPS,
    KERAS_BN_MOMENTUM,
    L2Conv2d,
    SqueezeExcite,
    check_input_size,
    keras_init_,
    l2_penalty,
)
from focusnet.models.registry import register_model

__all__ = ["BatchStatBatchNorm2d", "FocusNet", "build"]

_STRIDE = 16
_L2_BLOCKS = 1e-4
_L2_INITIAL = 5e-4


class BatchStatBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that normalises with the current batch's statistics in train *and* eval mode.

    Reproduces the FocusNet authors' ``BatchNormalization(freeze=False)``, whose ``call`` always
    passes ``training=True``: at inference each image is normalised with the statistics of
    the batch it arrives in, so outputs depend on batch composition (and a batch of one
    normalises each channel over that image alone). The running statistics are still updated
    in train mode only, as Keras updates them only when the training function runs.

    Example:
        >>> bn = BatchStatBatchNorm2d(4).eval()
        >>> y = bn(torch.randn(2, 4, 8, 8) * 5 + 3)
        >>> bool(y.mean().abs() < 1e-4)
        True
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.training and self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if update else None,
            self.running_var if update else None,
            self.weight,
            self.bias,
            training=True,
            momentum=self.momentum if self.momentum is not None else 0.0,
            eps=self.eps,
        )


def _bn(channels: int, batch_stats: bool = False) -> nn.BatchNorm2d:
    """Keras BN defaults (momentum 0.99, ε 1e-3) in PyTorch terms."""
    cls = BatchStatBatchNorm2d if batch_stats else nn.BatchNorm2d
    return cls(channels, momentum=KERAS_BN_MOMENTUM, eps=KERAS_BN_EPS)


def _l2_conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, l2: float = _L2_BLOCKS
) -> L2Conv2d:
    """He-normal, biased, 'same'-padded conv with a Keras ``l2`` kernel regulariser (``resnet.py``)."""
    conv = L2Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, l2=l2)
    return keras_init_(conv, "he_normal")


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """He-normal, biased, 'same'-padded conv without a regulariser."""
    return keras_init_(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2), "he_normal")


class _BasicBlock(nn.Module):
    """Pre-activation ResNet basic block of the authors' ``resnet.py``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, first: bool, batch_stats: bool) -> None:
        super().__init__()
        self.pre_a = (
            nn.Identity() if first else nn.Sequential(_bn(in_channels, batch_stats), nn.ReLU(inplace=True))
        )
        self.conv_a = _l2_conv(in_channels, out_channels, 3, stride)
        self.pre_b = nn.Sequential(_bn(out_channels, batch_stats), nn.ReLU(inplace=True))
        self.conv_b = _l2_conv(out_channels, out_channels, 3)
        if stride != 1 or in_channels != out_channels:  # Conv1×1 'valid' projection, no BN
            self.shortcut: nn.Module = _l2_conv(in_channels, out_channels, 1, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The in-place ReLUs act on BN outputs, never on x (which the shortcut still needs).
        y = self.conv_b(self.pre_b(self.conv_a(self.pre_a(x))))
        return self.shortcut(x) + y


def _down(in_channels: int, out_channels: int, batch_stats: bool) -> _BasicBlock:
    return _BasicBlock(in_channels, out_channels, stride=2, first=False, batch_stats=batch_stats)


def _same(in_channels: int, out_channels: int, batch_stats: bool) -> _BasicBlock:
    return _BasicBlock(in_channels, out_channels, stride=1, first=True, batch_stats=batch_stats)


class _Up(nn.Module):
    """UpSampling2D ×2 (nearest) → Conv2×2 'same' (TF pads 0 before, 1 after) → ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.conv = keras_init_(nn.Conv2d(in_channels, out_channels, 2), "he_normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.conv(self.pad(x)))


class _SideOutput(nn.Module):
    """Up×k (nearest) → Conv3×3(mid, ReLU) → Conv1×1(num_classes) → sigmoid."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.conv = _conv(in_channels, mid_channels, 3)
        self.out = _conv(mid_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=float(self.scale), mode="nearest")
        return torch.sigmoid(self.out(F.relu(self.conv(x))))


class FocusNet(nn.Module):
    """FocusNet v1 as in the authors' ``models.focusnet`` (see the module docstring).

    Args:
        in_channels: image channels.
        num_classes: output channels (logits).
        base_width: width of branch 1's first level (32 in the code); every width scales with it.
        authors_batchnorm: use batch statistics in every residual-block and stem BN, also at
            inference, as the authors' code does. Off by default.
        dropout: dropout after branch 1's bottleneck (0.2 in the code).

    Example:
        >>> model = FocusNet(base_width=8)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 1, 64, 64])
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        base_width: int = 32,
        authors_batchnorm: bool = False,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if base_width < 8 or base_width % 8:
            raise FocusNetError(f"focusnet: base_width must be a positive multiple of 8, got {base_width}")
        b = base_width
        bs = authors_batchnorm
        self.authors_batchnorm = authors_batchnorm

        # Branch 1: attention generator (the only standard-Keras BN is in this initial block).
        self.initial = nn.Sequential(
            keras_init_(L2Conv2d(in_channels, b, 3, padding=1, bias=False, l2=_L2_INITIAL), "he_normal"),
            _bn(b),
            nn.LeakyReLU(0.3, inplace=True),
        )
        self.a_down1 = _down(b, b, bs)
        self.a_same2 = _same(b, 2 * b, bs)
        self.a_down2 = _down(2 * b, 2 * b, bs)
        self.a_same3 = _same(2 * b, 4 * b, bs)
        self.a_down3 = _down(4 * b, 4 * b, bs)
        self.a_same4 = _same(4 * b, 8 * b, bs)
        self.a_drop = nn.Dropout(dropout)
        self.a_up5 = _Up(8 * b, 8 * b)
        self.a_dec5 = _same(4 * b + 8 * b, 8 * b, bs)
        self.a_up6 = _Up(8 * b, 4 * b)
        self.a_dec6 = _same(2 * b + 4 * b, 4 * b, bs)
        self.a_up7 = _Up(4 * b, 2 * b)
        self.a_dec7 = _same(b + 2 * b, 2 * b, bs)

        # Branch 2: main network.
        self.stem = nn.Sequential(_l2_conv(in_channels, 2 * b, 7), _bn(2 * b, bs), nn.ReLU(inplace=True))
        self.m_same1 = _same(2 * b, 2 * b, bs)
        self.m_se1a, self.m_se1b = SqueezeExcite(2 * b), SqueezeExcite(2 * b)
        self.m_down1 = _down(2 * b, 2 * b, bs)
        self.m_same2 = _same(2 * b, 4 * b, bs)
        self.m_se2a, self.m_se2b = SqueezeExcite(4 * b), SqueezeExcite(4 * b)
        self.m_down2 = _down(4 * b, 4 * b, bs)
        self.m_same3 = _same(4 * b, 8 * b, bs)
        self.m_se3a, self.m_se3b = SqueezeExcite(8 * b), SqueezeExcite(8 * b)
        self.m_down3 = _down(8 * b, 8 * b, bs)
        self.m_same4 = _same(8 * b, 16 * b, bs)
        self.m_se4 = SqueezeExcite(16 * b)
        self.m_down4 = _down(16 * b, 16 * b, bs)

        # Decoder with multi-scale side outputs.
        self.d_up5 = _Up(16 * b, 8 * b)
        self.d_dec5 = _same(8 * b + 8 * b, 8 * b, bs)
        self.side1 = _SideOutput(8 * b, b, num_classes, 8)
        self.d_up6 = _Up(8 * b, 4 * b)
        self.d_dec6 = _same(4 * b + 4 * b, 4 * b, bs)
        self.side2 = _SideOutput(4 * b, b, num_classes, 4)
        self.d_up7 = _Up(4 * b, 2 * b)
        self.d_dec7 = _same(2 * b + 2 * b, 2 * b, bs)
        self.side3 = _SideOutput(2 * b, b, num_classes, 2)
        self.d_up8 = _Up(2 * b, b)
        self.d_dec8 = nn.Sequential(
            _same(2 * b + b, b, bs), _same(b, b // 2, bs), _same(b // 2, b // 8, bs)
        )
        self.side4 = _conv(b // 8, num_classes, 1)
        self.fuse = nn.Sequential(_conv(4 * num_classes, b, 3), nn.ReLU(inplace=True), _conv(b, num_classes, 1))
        for module in self.modules():
            if isinstance(module, nn.Linear):  # the SE layers: Keras Dense default, Glorot-uniform
                nn.init.xavier_uniform_(module.weight)

    def l2_penalty(self) -> torch.Tensor:
        """The Keras regularisation loss Σ λ·Σw² (add it to the loss).

        The regularised kernels are :class:`~focusnet.models.layers.L2Conv2d`: the initial 3×3
        conv (λ = 5e-4), the 7×7 stem and every conv of every residual block, shortcuts
        included (λ = 1e-4). Biases are not regularised. Same as
        :func:`focusnet.models.layers.l2_penalty` on the model.

        Returns:
            A scalar tensor (differentiable).

        Example:
            >>> model = FocusNet(base_width=8)
            >>> bool(model.l2_penalty() > 0)
            True
        """
        return l2_penalty(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes, H, W)`` of the fusion head for images ``(B, C, H, W)``."""
        check_input_size(x, _STRIDE, "focusnet")
        # Branch 1.
        c1 = self.initial(x)
        c2 = self.a_same2(self.a_down1(c1))
        c3 = self.a_same3(self.a_down2(c2))
        c4 = self.a_drop(self.a_same4(self.a_down3(c3)))
        c5 = self.a_dec5(torch.cat([c3, self.a_up5(c4)], dim=1))
        c6 = self.a_dec6(torch.cat([c2, self.a_up6(c5)], dim=1))
        c7 = self.a_dec7(torch.cat([c1, self.a_up7(c6)], dim=1))
        # Branch 2, gated by branch 1.
        r = self.stem(x)
        b1 = self.m_down1(self.m_se1b(self.m_se1a(self.m_same1(r)) * torch.sigmoid(c7)))
        b2 = self.m_down2(self.m_se2b(self.m_se2a(self.m_same2(b1)) * torch.sigmoid(c6)))
        b3 = self.m_down3(self.m_se3b(self.m_se3a(self.m_same3(b2)) * torch.sigmoid(c5)))
        b4 = self.m_down4(self.m_se4(self.m_same4(b3)))
        # Decoder.
        d5 = self.d_dec5(torch.cat([b3, self.d_up5(b4)], dim=1))
        d6 = self.d_dec6(torch.cat([b2, self.d_up6(d5)], dim=1))
        d7 = self.d_dec7(torch.cat([b1, self.d_up7(d6)], dim=1))
        d8 = self.d_dec8(torch.cat([r, self.d_up8(d7)], dim=1))
        sides = [self.side1(d5), self.side2(d6), self.side3(d7), torch.sigmoid(self.side4(d8))]
        return self.fuse(torch.cat(sides, dim=1))


@register_model("focusnet")
def build(
    in_channels: int = 3,
    num_classes: int = 1,
    base_width: int = 32,
    authors_batchnorm: bool = False,
    dropout: float = 0.2,
) -> FocusNet:
    """FocusNet v1 as in the authors' Keras code (19,063,933 parameters at the defaults).

    Args:
        in_channels: image channels.
        num_classes: output channels (logits).
        base_width: branch-1 base width (32 in the code).
        authors_batchnorm: batch-statistics BN at inference, as the authors' code.
        dropout: branch-1 bottleneck dropout (0.2 in the code).

    Returns:
        The model; its forward returns logits. ``model.l2_penalty()`` gives the Keras L2 term.

    Example:
        >>> from focusnet.models import create_model
        >>> model = create_model("focusnet")
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        19063933
    """
    return FocusNet(
        in_channels=in_channels,
        num_classes=num_classes,
        base_width=base_width,
        authors_batchnorm=authors_batchnorm,
        dropout=dropout,
    )
