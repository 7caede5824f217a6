"""Wide U-Net baseline, as in the FocusNet authors' Keras ``models.wU_Net`` (spec §4.5).

Paper: Z. Zhou, M. M. Rahman Siddiquee, N. Tajbakhsh, J. Liang, "UNet++: A Nested U-Net
Architecture for Medical Image Segmentation", DLMIA (MICCAI workshop) 2018, where "wide U-Net" is
the control whose parameter count matches UNet++.

Layout: ``standard_unit`` (Conv3x3-ELU-Dropout(0.5), twice; He-normal; ``l2(1e-4)`` kernel
regularisers) at widths 35, 70, 140, 280, 560 with 2x2 max pooling; decoder levels
``ConvTranspose2x2/2 -> concat[up, skip] -> standard_unit``; a Conv1x1 head (also ``l2(1e-4)``).
9,282,876 parameters, 14.43 GMACs at 3x256x256.

Departures from the authors' Keras code:

* the forward returns logits (no final sigmoid);
* Keras adds the ``l2`` regularisers to the loss by itself; PyTorch does not. Add
  :meth:`WideUNet.l2_penalty` to the training loss (or use SGD ``weight_decay = 2 * l2`` on the
  regularised kernels only). Transposed convs and biases are not regularised, as in the code;
* dropout is kept at 0.5 after every convolution, as in the code (``dropout`` changes it).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.models.layers import L2Conv2d, StandardUnit, check_input_size, keras_init_, l2_penalty
from focusnet.models.registry import register_model

__all__ = ["WideUNet", "build"]


class WideUNet(nn.Module):
    """Wide U-Net (see module docstring).

    Args:
        in_channels: input image channels.
        num_classes: output channels (logits).
        base_width: filters of the first level; levels use 1, 2, 4, 8, 16 times it (code: 35).
        dropout: dropout rate after every 3x3 convolution (code: 0.5).
        l2: Keras ``l2`` coefficient of the 3x3 and head kernels (code: 1e-4); see :meth:`l2_penalty`.

    Example:
        >>> net = WideUNet(base_width=4).eval()
        >>> net(torch.randn(1, 3, 32, 48)).shape
        torch.Size([1, 1, 32, 48])
    """

    stride = 16

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        base_width: int = 35,
        dropout: float = 0.5,
        l2: float = 1e-4,
    ) -> None:
        super().__init__()
        w = [base_width * m for m in (1, 2, 4, 8, 16)]
        self.encoder = nn.ModuleList(
            [StandardUnit(c_in, c_out, dropout, l2) for c_in, c_out in zip([in_channels, *w[:-1]], w)]
        )
        self.ups = nn.ModuleList(
            [keras_init_(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2), "glorot_uniform") for i in reversed(range(4))]
        )
        self.decoder = nn.ModuleList([StandardUnit(2 * w[i], w[i], dropout, l2) for i in reversed(range(4))])
        self.classifier = keras_init_(L2Conv2d(w[0], num_classes, 1, l2=l2), "he_normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H, W) for an input (B, C, H, W) with H, W divisible by 16."""
        check_input_size(x, self.stride, "wide_unet")
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(F.max_pool2d(x, 2) if level else x)
            skips.append(x)
        skips.pop()
        for up, block in zip(self.ups, self.decoder):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.classifier(x)

    def l2_penalty(self) -> torch.Tensor:
        """Keras-style L2 penalty ``sum(l2 * ||kernel||^2)`` to add to the training loss.

        Example:
            >>> float(WideUNet(base_width=4, l2=0.0).l2_penalty())
            0.0
        """
        return l2_penalty(self)


@register_model("wide_unet")
def build(
    in_channels: int = 3,
    num_classes: int = 1,
    base_width: int = 35,
    dropout: float = 0.5,
    l2: float = 1e-4,
) -> WideUNet:
    """Build the Wide U-Net baseline (9,282,876 parameters at the defaults).

    Example:
        >>> sum(p.numel() for p in build().parameters())
        9282876
    """
    return WideUNet(in_channels, num_classes, base_width, dropout, l2)
