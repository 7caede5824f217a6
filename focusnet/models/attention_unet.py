"""Attention U-Net baseline, as in the FocusNet authors' Keras ``models.attn_unet`` (spec §4.4).

Paper: O. Oktay, J. Schlemper, L. Le Folgoc, M. Lee, M. Heinrich, K. Misawa, K. Mori,
S. McDonagh, N. Y. Hammerla, B. Kainz, B. Glocker, D. Rueckert, "Attention U-Net: Learning Where
to Look for the Pancreas", MIDL 2018.

The authors' code (a Keras port, compared against in Kaul et al., ISBI 2021) differs from the
paper: the decoder has *no* 3x3 convolutions, only a ReLU'd Conv2DTranspose 3x3/2 per level
concatenated with the gated skip; the gate's theta is a 2x2 stride-2 conv on the skip, its phi a
1x1 conv on a gating signal (Conv1x1-BN-ReLU) that a 3x3 'same' Conv2DTranspose brings to theta's
size; the attention map is up-sampled by nearest-neighbour x2 and the gated skip goes through
Conv1x1 + BN. Encoder blocks are (Conv3x3-BN-ReLU) x2, glorot-normal.

Where this port departs from the authors' code:

* ``authors_gate_quirk=False`` (default): the third gate (on the 64-wide skip) takes its gating
  signal from ``up2``, like the other gates and the paper. The authors' code computes it from
  ``up1`` (H/8) and so up-samples phi by a stride-2 transposed conv; ``authors_gate_quirk=True``
  reproduces that (8,898,308 parameters, Table 2's 8.91M counting BN statistics; 7.88 GMACs at
  3x256x256); the default has 8,684,548 parameters and 8.03 GMACs.
* TF 'same' ``Conv2DTranspose(k=3, s=2)`` is ``ConvTranspose2d(k=3, s=2, p=0)`` cropped to the first
  2H x 2W (TF drops the last row and column).
* The forward returns logits (no final sigmoid); BN uses Keras' momentum 0.99 and eps 1e-3 by default
  (``bn_momentum`` sets the PyTorch-convention momentum; 0.1 trains better in short budgets).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.models.layers import KERAS_BN_MOMENTUM, batch_norm, check_input_size, keras_init_, set_batch_norm_momentum
from focusnet.models.registry import register_model

__all__ = ["AttentionGate", "AttentionUNet", "TFSameConvTranspose2d", "build"]


class TFSameConvTranspose2d(nn.ConvTranspose2d):
    """``Conv2DTranspose(padding='same')`` of TensorFlow: output size = input size x stride.

    TF pads the equivalent forward conv by ``max(k - s, 0)`` in total, the smaller half before.
    The symmetric part becomes ``padding``; the extra row/column at the end is cropped.

    Example:
        >>> up = TFSameConvTranspose2d(4, 4, 3, stride=2)
        >>> up(torch.randn(1, 4, 5, 7)).shape
        torch.Size([1, 4, 10, 14])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        total = max(kernel_size - stride, 0)
        before = total // 2
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=before)
        self.crop_end = total - 2 * before  # 0 or 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = super().forward(x)
        if self.crop_end:
            y = y[:, :, : -self.crop_end, : -self.crop_end]
        return y


class _ConvBNReLU2(nn.Sequential):
    """``UnetConv2D``: (Conv3x3 glorot-normal - BN - ReLU) x2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            keras_init_(nn.Conv2d(in_channels, out_channels, 3, padding=1), "glorot_normal"),
            batch_norm(out_channels),
            nn.ReLU(inplace=True),
            keras_init_(nn.Conv2d(out_channels, out_channels, 3, padding=1), "glorot_normal"),
            batch_norm(out_channels),
            nn.ReLU(inplace=True),
        )


class _GatingSignal(nn.Sequential):
    """``UnetGatingSignal``: Conv1x1 (same width) - BN - ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            keras_init_(nn.Conv2d(channels, channels, 1), "glorot_normal"),
            batch_norm(channels),
            nn.ReLU(inplace=True),
        )


class AttentionGate(nn.Module):
    """Additive attention gate of the authors' ``AttnGatingBlock``.

    Args:
        x_channels: channels of the skip ``x`` (H x W).
        g_channels: channels of the gating signal ``g``.
        inter_channels: width of theta / phi.
        g_stride: (H/2) / size(g): 1 when g is at half the skip's resolution, 2 at a quarter.

    Example:
        >>> gate = AttentionGate(8, 16, 8)
        >>> gate(torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(self, x_channels: int, g_channels: int, inter_channels: int, g_stride: int = 1) -> None:
        super().__init__()
        self.theta = keras_init_(nn.Conv2d(x_channels, inter_channels, 2, stride=2), "glorot_uniform")
        self.phi = keras_init_(nn.Conv2d(g_channels, inter_channels, 1), "glorot_uniform")
        self.phi_up = keras_init_(
            TFSameConvTranspose2d(inter_channels, inter_channels, 3, stride=g_stride), "glorot_uniform"
        )
        self.psi = keras_init_(nn.Conv2d(inter_channels, 1, 1), "glorot_uniform")
        self.out = keras_init_(nn.Conv2d(x_channels, x_channels, 1), "glorot_uniform")
        self.bn = batch_norm(x_channels)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.theta(x) + self.phi_up(self.phi(g)))
        alpha = torch.sigmoid(self.psi(a))
        alpha = F.interpolate(alpha, scale_factor=2.0, mode="nearest")
        return self.bn(self.out(alpha * x))


class _Up(nn.Module):
    """ReLU(Conv2DTranspose 3x3/2 'same', glorot-normal)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = keras_init_(TFSameConvTranspose2d(in_channels, out_channels, 3, stride=2), "glorot_normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class AttentionUNet(nn.Module):
    """Attention U-Net with the authors' Keras layout (see module docstring).

    Args:
        in_channels: input image channels.
        num_classes: output channels (logits).
        base_width: filters of the first level; levels use 1, 2, 4, 8, 16 times it.
        authors_gate_quirk: gate the third skip from ``up1`` (authors' code) instead of ``up2``.
        bn_momentum: BatchNorm running-statistics momentum, PyTorch convention (default Keras' 0.01;
            0.1 for short CPU budgets, see ``benchmarks/RESULTS.md``).

    Example:
        >>> net = AttentionUNet(base_width=4).eval()
        >>> net(torch.randn(1, 3, 32, 48)).shape
        torch.Size([1, 1, 32, 48])
    """

    stride = 16

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        base_width: int = 32,
        authors_gate_quirk: bool = False,
        bn_momentum: float = KERAS_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        w = [base_width * m for m in (1, 2, 4, 8, 16)]
        self.authors_gate_quirk = authors_gate_quirk
        self.encoder = nn.ModuleList(
            [_ConvBNReLU2(c_in, c_out) for c_in, c_out in zip([in_channels, *w[:-1]], w)]
        )
        # decoder level k produces up_k = cat[up(prev), gated skip] with 2 * w[4 - k] channels
        self.gating1 = _GatingSignal(w[4])
        self.gate1 = AttentionGate(w[3], w[4], w[3])
        self.up1 = _Up(w[4], w[3])
        self.gating2 = _GatingSignal(2 * w[3])
        self.gate2 = AttentionGate(w[2], 2 * w[3], w[2])
        self.up2 = _Up(2 * w[3], w[2])
        g3_channels = 2 * w[3] if authors_gate_quirk else 2 * w[2]
        self.gating3 = _GatingSignal(g3_channels)
        self.gate3 = AttentionGate(w[1], g3_channels, w[1], g_stride=2 if authors_gate_quirk else 1)
        self.up3 = _Up(2 * w[2], w[1])
        self.up4 = _Up(2 * w[1], w[0])
        self.classifier = keras_init_(nn.Conv2d(2 * w[0], num_classes, 1), "glorot_normal")
        set_batch_norm_momentum(self, bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H, W) for an input (B, C, H, W) with H, W divisible by 16."""
        check_input_size(x, self.stride, "attention_unet")
        feats = []
        for level, block in enumerate(self.encoder):
            x = block(F.max_pool2d(x, 2) if level else x)
            feats.append(x)
        c1, c2, c3, c4, center = feats
        u1 = torch.cat([self.up1(center), self.gate1(c4, self.gating1(center))], dim=1)
        u2 = torch.cat([self.up2(u1), self.gate2(c3, self.gating2(u1))], dim=1)
        g3 = self.gating3(u1 if self.authors_gate_quirk else u2)
        u3 = torch.cat([self.up3(u2), self.gate3(c2, g3)], dim=1)
        u4 = torch.cat([self.up4(u3), c1], dim=1)
        return self.classifier(u4)


@register_model("attention_unet")
def build(
    in_channels: int = 3,
    num_classes: int = 1,
    base_width: int = 32,
    authors_gate_quirk: bool = False,
    bn_momentum: float = KERAS_BN_MOMENTUM,
) -> AttentionUNet:
    """Build the Attention U-Net baseline (8,898,308 parameters with ``authors_gate_quirk=True``).

    Example:
        >>> sum(p.numel() for p in build(authors_gate_quirk=True).parameters())
        8898308
    """
    return AttentionUNet(in_channels, num_classes, base_width, authors_gate_quirk, bn_momentum)
