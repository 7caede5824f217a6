"""U-Net baseline, as in the FocusNet authors' Keras ``models.unet`` (spec §4.2).

Paper: O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015.

This is the 32-base "U-Net" of the FocusNet++ tables (Kaul et al., ISBI 2021): 7,760,645
parameters, 13.72 GMACs at 3x256x256. Departures from the paper:

* 'same' padding everywhere, so the output has the input's size (the paper used 'valid'
  convolutions, crops and a 572x572 input);
* base width 32 instead of 64, ReLU, He-normal initialisation, dropout 0.5 on the 256- and
  512-wide levels (the dropped 256-level tensor is both the skip and the pool input);
* the decoder up-samples by nearest-neighbour x2 followed by Conv2x2 + ReLU ("up-convolution");
  the 2x2 'same' conv pads one row/column at the bottom/right, as TensorFlow does;
* the head is Conv3x3(2) + ReLU then Conv1x1, as in the authors' code.

Departures from the authors' Keras code: the forward returns logits (no final sigmoid); the final
1x1 conv keeps Keras' default glorot-uniform initialiser. The 2-channel ReLU before the head is
kept (``head_channels``); it can die and leave a constant output, which is a property of the
original.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.models.layers import check_input_size, keras_init_
from focusnet.models.registry import register_model

__all__ = ["UNet", "build"]


class _DoubleConv(nn.Sequential):
    """Conv3x3-ReLU twice, He-normal."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            keras_init_(nn.Conv2d(in_channels, out_channels, 3, padding=1), "he_normal"),
            nn.ReLU(inplace=True),
            keras_init_(nn.Conv2d(out_channels, out_channels, 3, padding=1), "he_normal"),
            nn.ReLU(inplace=True),
        )


class _UpConv(nn.Module):
    """UpSampling2D(2, nearest) then Conv2x2 'same' (TF pads bottom/right) + ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = keras_init_(nn.Conv2d(in_channels, out_channels, 2), "he_normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.conv(F.pad(x, (0, 1, 0, 1))))


class UNet(nn.Module):
    """U-Net with the authors' Keras layout (see module docstring).

    Args:
        in_channels: input image channels.
        num_classes: output channels (logits).
        base_width: filters of the first level; levels use 1, 2, 4, 8, 16 times it.
        dropout: dropout after the two deepest levels (0.5 in the authors' code).
        head_channels: width of the Conv3x3 + ReLU before the final Conv1x1 (2 in the code).

    Example:
        >>> net = UNet(base_width=4).eval()
        >>> net(torch.randn(1, 3, 32, 48)).shape
        torch.Size([1, 1, 32, 48])
    """

    stride = 16

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        base_width: int = 32,
        dropout: float = 0.5,
        head_channels: int = 2,
    ) -> None:
        super().__init__()
        w = [base_width * m for m in (1, 2, 4, 8, 16)]
        self.encoder = nn.ModuleList(
            [_DoubleConv(c_in, c_out) for c_in, c_out in zip([in_channels, *w[:-1]], w)]
        )
        self.drop = nn.Dropout(dropout)
        self.ups = nn.ModuleList([_UpConv(w[i + 1], w[i]) for i in reversed(range(4))])
        self.decoder = nn.ModuleList([_DoubleConv(2 * w[i], w[i]) for i in reversed(range(4))])
        self.head = keras_init_(nn.Conv2d(w[0], head_channels, 3, padding=1), "he_normal")
        self.classifier = keras_init_(nn.Conv2d(head_channels, num_classes, 1), "glorot_uniform")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H, W) for an input (B, C, H, W) with H, W divisible by 16."""
        check_input_size(x, self.stride, "unet")
        skips = []
        for level, block in enumerate(self.encoder):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            if level >= 3:  # Dropout(0.5) after the 256 and 512 levels
                x = self.drop(x)
            skips.append(x)
        skips.pop()
        for up, block in zip(self.ups, self.decoder):
            x = block(torch.cat([skips.pop(), up(x)], dim=1))
        return self.classifier(F.relu(self.head(x)))


@register_model("unet")
def build(
    in_channels: int = 3,
    num_classes: int = 1,
    base_width: int = 32,
    dropout: float = 0.5,
    head_channels: int = 2,
) -> UNet:
    """Build the U-Net baseline (7,760,645 parameters at the defaults).

    Example:
        >>> sum(p.numel() for p in build().parameters())
        7760645
    """
    return UNet(in_channels, num_classes, base_width, dropout, head_channels)
