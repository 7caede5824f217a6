"""BCDU-Net (D3): U-Net with a densely connected bottleneck and bi-directional ConvLSTM skips.

Paper: Reza Azad, Maryam Asadi-Aghbolaghi, Mahmood Fathy and Sergio Escalera,
"Bi-Directional ConvLSTM U-Net with Densley Connected Convolutions", ICCV Workshops
(VRMI) 2019, arXiv:1909.00166.

This is the ``BCDU_net_D3`` network of the authors' Keras code (``rezazad68/BCDU-Net``,
``Skin Lesion Segmentation/models.py``), which is the BCDU-Net row of FocusNet++'s Table 2
(20,659,973 trainable parameters; ≈74.3 GMACs at 3×256×256). Architecture (widths for the
default ``base_width=64``):

* encoder: [Conv3×3 + ReLU] ×2 at 64 and 128 channels, each followed by MaxPool 2×2;
  [Conv3×3 + ReLU] ×2 at 256, whose Dropout(0.5) output is the skip while the pool reads the
  tensor *before* dropout;
* densely connected bottleneck at H/8, all Conv3×3(512) + ReLU: D1 = 2 convs → Dropout;
  D2 = 2 convs on D1 → Dropout; D3 = 2 convs on cat[D2, D1] → Dropout;
* three decoder levels: ConvTranspose 2×2/2 (256/128/64) → BN → ReLU; the pair
  [skip, upsampled] taken as a length-2 sequence through a ConvLSTM (128/64/32 filters,
  3×3, ``go_backwards=True``, last state only); two Conv3×3 + ReLU (256/128/64);
* head: Conv3×3(2) + ReLU → Conv1×1(``num_classes``).

Departures from the authors' code:

* the head returns logits; the authors' final sigmoid belongs to the loss / post-processing;
* the second-to-last conv has ``max(2, num_classes)`` channels (2 in the code, which is
  binary-only);
* channels-first layout; the Keras ``Reshape`` + ``concatenate(axis=1)`` that builds the
  length-2 sequence is a plain Python pair here;
* ``base_width`` scales every width (the code's is 64); ``dropout`` is configurable;
* the ConvLSTM keeps Keras 2.2's ``hard_sigmoid`` recurrent activation (see
  :mod:`focusnet.models._recurrent`); its first step skips the recurrent convolution of the
  all-zero initial state, which is exact and saves compute.

The input height and width must be divisible by 8 (three poolings).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from focusnet.errors import FocusNetError
from focusnet.models._recurrent import ConvLSTM2d
from focusnet.models.layers import batch_norm, check_input_size, keras_init_
from focusnet.models.registry import register_model

__all__ = ["BCDUNet", "build"]

_STRIDE = 8


def _conv_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(*_conv_relu(in_channels, out_channels), *_conv_relu(out_channels, out_channels))


class _DecoderLevel(nn.Module):
    """ConvT 2×2/2 → BN → ReLU; ConvLSTM over (skip, up) backwards; two Conv3×3 + ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, lstm_channels: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose2d(in_channels, skip_channels, 2, stride=2),
            batch_norm(skip_channels),
            nn.ReLU(inplace=True),
        )
        self.lstm = ConvLSTM2d(skip_channels, lstm_channels, 3, go_backwards=True, kernel_init="he_normal")
        self.convs = _double_conv(lstm_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        return self.convs(self.lstm((skip, up)))


class BCDUNet(nn.Module):
    """BCDU-Net D3 (see the module docstring).

    Args:
        in_channels: image channels.
        num_classes: output channels (logits).
        base_width: width of the first level; levels use 1, 2, 4, 8 × this.
        dropout: dropout probability of the 256-level skip and the three dense blocks.

    Example:
        >>> model = BCDUNet(base_width=8)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 1, 64, 64])
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1, base_width: int = 64, dropout: float = 0.5) -> None:
        super().__init__()
        if base_width < 2 or base_width % 2:
            raise FocusNetError(f"bcdunet: base_width must be an even number >= 2, got {base_width}")
        w1, w2, w3, w4 = (base_width * m for m in (1, 2, 4, 8))
        self.enc1 = _double_conv(in_channels, w1)
        self.enc2 = _double_conv(w1, w2)
        self.enc3 = _double_conv(w2, w3)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(dropout)
        self.dense1 = _double_conv(w3, w4)
        self.dense2 = _double_conv(w4, w4)
        self.dense3 = _double_conv(2 * w4, w4)
        self.dec3 = _DecoderLevel(w4, w3, w3, w3 // 2)
        self.dec2 = _DecoderLevel(w3, w2, w2, w2 // 2)
        self.dec1 = _DecoderLevel(w2, w1, w1, w1 // 2)
        mid = max(2, num_classes)
        self.head = nn.Sequential(*_conv_relu(w1, mid), nn.Conv2d(mid, num_classes, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras ``he_normal`` kernels and zero biases (the ConvLSTMs keep their own init)."""
        in_lstm = {id(m) for lstm in self.modules() if isinstance(lstm, ConvLSTM2d) for m in lstm.modules()}
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and id(module) not in in_lstm:
                keras_init_(module, "he_normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes, H, W)`` for images ``(B, in_channels, H, W)``."""
        check_input_size(x, _STRIDE, "bcdunet")
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d1 = self.drop(self.dense1(self.pool(e3)))
        d2 = self.drop(self.dense2(d1))
        d3 = self.drop(self.dense3(torch.cat([d2, d1], dim=1)))
        y = self.dec3(d3, self.drop(e3))
        y = self.dec2(y, e2)
        y = self.dec1(y, e1)
        return self.head(y)


@register_model("bcdunet")
def build(in_channels: int = 3, num_classes: int = 1, base_width: int = 64, dropout: float = 0.5) -> BCDUNet:
    """BCDU-Net D3 as in the authors' Keras code (20,659,973 parameters at the defaults).

    Args:
        in_channels: image channels.
        num_classes: output channels (logits).
        base_width: first-level width (64 in the paper).
        dropout: dropout probability (0.5 in the paper).

    Returns:
        The model; its forward returns logits.

    Example:
        >>> from focusnet.models import create_model
        >>> model = create_model("bcdunet")
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        20659973
    """
    return BCDUNet(in_channels=in_channels, num_classes=num_classes, base_width=base_width, dropout=dropout)
