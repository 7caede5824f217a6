"""R2U-Net: U-Net built from recurrent residual convolutional units.

Paper: Md Zahangir Alom, Mahmudul Hasan, Chris Yakopcic, Tarek M. Taha and Vijayan K. Asari,
"Recurrent Residual Convolutional Neural Network based on U-Net (R2U-Net) for Medical Image
Segmentation", arXiv:1802.06955, 2018.

R2U-Net is not in the FocusNet authors' code; as the FocusNet++ spec (§4.7) recommends, this
follows the widely used public PyTorch reading of the paper (``R2U_Net`` with t = 2), at
32 base filters for comparability with the other baselines (widths 32, 64, 128, 256, 512):

* recurrent convolutional layer (RCL): one Conv3×3 → BN → ReLU applied ``t + 1`` times with
  shared weights, ``y = f(x)``, then ``y = f(x + y)`` ``t`` times;
* recurrent residual unit: Conv1×1 to the unit's width, two RCLs, residual add of the 1×1
  output (:class:`~focusnet.models._recurrent.RRCNNBlock`);
* encoder: five units separated by MaxPool 2×2;
* decoder: up-conv = UpSampling ×2 (nearest) → Conv3×3 → BN → ReLU halving the width,
  concat[skip, up], one unit; head Conv1×1 to ``num_classes``.

Departures: the public reference starts at 64 filters; here ``base_width`` defaults to 32
(the FocusNet-era U-Nets' width) and ``t`` is a parameter. BatchNorm uses
PyTorch's defaults (momentum 0.1, ε 1e-5) because the reference is a PyTorch model. Forward
returns logits. At the defaults the model has 9,778,785 trainable parameters (≈ 38.1 GMACs at
3×256×256: each RCL runs its conv three times).

The input height and width must be divisible by 16 (four poolings).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.errors import FocusNetError
from focusnet.models._recurrent import RRCNNBlock
from focusnet.models.layers import check_input_size
from focusnet.models.registry import register_model

__all__ = ["R2UNet", "build"]

_STRIDE = 16


class _UpConv(nn.Module):
    """UpSampling ×2 (nearest) → Conv3×3 → BN → ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class R2UNet(nn.Module):
    """R2U-Net (see the module docstring).

    Args:
        in_channels: image channels.
        num_classes: output channels (logits).
        base_width: first-level width; levels use 1, 2, 4, 8, 16 × this.
        t: recurrent steps per RCL (2 in the paper).

    Example:
        >>> model = R2UNet(base_width=4)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 1, 64, 64])
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1, base_width: int = 32, t: int = 2) -> None:
        super().__init__()
        if base_width < 1:
            raise FocusNetError(f"r2unet: base_width must be positive, got {base_width}")
        if t < 1:
            raise FocusNetError(f"r2unet: t must be at least 1, got {t}")
        w = [base_width * m for m in (1, 2, 4, 8, 16)]
        self.pool = nn.MaxPool2d(2)
        self.encoder = nn.ModuleList(
            [RRCNNBlock(c_in, c_out, t) for c_in, c_out in zip([in_channels, *w[:-1]], w)]
        )
        self.ups = nn.ModuleList([_UpConv(w[i + 1], w[i]) for i in reversed(range(4))])
        self.decoder = nn.ModuleList([RRCNNBlock(2 * w[i], w[i], t) for i in reversed(range(4))])
        self.head = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes, H, W)`` for images ``(B, in_channels, H, W)``."""
        check_input_size(x, _STRIDE, "r2unet")
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.ups, self.decoder):
            x = block(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


@register_model("r2unet")
def build(in_channels: int = 3, num_classes: int = 1, base_width: int = 32, t: int = 2) -> R2UNet:
    """R2U-Net with t = 2 and 32 base filters (9,778,785 parameters at the defaults).

    Args:
        in_channels: image channels.
        num_classes: output channels (logits).
        base_width: first-level width.
        t: recurrent steps per recurrent convolutional layer.

    Returns:
        The model; its forward returns logits.

    Example:
        >>> from focusnet.models import create_model
        >>> model = create_model("r2unet")
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        9778785
    """
    return R2UNet(in_channels=in_channels, num_classes=num_classes, base_width=base_width, t=t)
