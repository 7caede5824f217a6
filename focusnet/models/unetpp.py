"""UNet++ baseline, as in the FocusNet authors' Keras ``models.Nest_Net`` (spec §4.6).

Paper: Z. Zhou, M. M. Rahman Siddiquee, N. Tajbakhsh, J. Liang, "UNet++: A Nested U-Net
Architecture for Medical Image Segmentation", DLMIA (MICCAI workshop) 2018.

Nodes X(i, j) (depth i, column j) at widths 32, 64, 128, 256, 512. X(i, 0) is a
``standard_unit`` (Conv3x3-ELU-Dropout(0.5), twice; He-normal; ``l2(1e-4)``) on the max-pooled
X(i-1, 0); X(i, j>0) is a ``standard_unit`` on ``concat[ConvTranspose2x2/2(X(i+1, j-1)),
X(i, 0), ..., X(i, j-1)]``. Conv1x1 heads (``l2(1e-4)``) sit on X(0, 1..4). Without deep
supervision only the X(0, 4) head exists: 9,042,177 parameters, 29.79 GMACs at 3x256x256; deep
supervision adds three heads (9,042,276 at one class).

Departures from the authors' Keras code:

* the forward returns logits (no final sigmoid); Keras ``l2`` regularisers are exposed as
  :meth:`UNetPlusPlus.l2_penalty`, to be added to the loss (transposed convs are not regularised);
* deep supervision. The code returns the four sigmoid outputs as four Keras outputs, each trained
  with the loss (Keras sums the four losses). Here :meth:`UNetPlusPlus.forward_all` returns the
  list of head logits ``[X(0,1), ..., X(0,4)]`` for the training loop to apply the loss to each and
  average; :meth:`UNetPlusPlus.forward` always returns one tensor: the X(0, 4) logits, or, with
  ``deep_supervision=True``, the mean of the four heads' logits (the paper's "accurate mode",
  averaged before the sigmoid), in train and eval mode alike.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.models.layers import L2Conv2d, StandardUnit, check_input_size, keras_init_, l2_penalty
from focusnet.models.registry import register_model

__all__ = ["UNetPlusPlus", "build"]

_DEPTH = 5


class UNetPlusPlus(nn.Module):
    """UNet++ / Nested U-Net (see module docstring).

    Args:
        in_channels: input image channels.
        num_classes: output channels (logits) of each head.
        base_width: filters of depth 0; depths use 1, 2, 4, 8, 16 times it.
        deep_supervision: build the heads on X(0, 1..3) too (see :meth:`forward_all`).
        dropout: dropout rate after every 3x3 convolution (code: 0.5).
        l2: Keras ``l2`` coefficient of the 3x3 and head kernels (code: 1e-4).

    Example:
        >>> net = UNetPlusPlus(base_width=4, deep_supervision=True).eval()
        >>> [t.shape[1] for t in net.forward_all(torch.randn(1, 3, 32, 32))]
        [1, 1, 1, 1]
    """

    stride = 16

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        base_width: int = 32,
        deep_supervision: bool = False,
        dropout: float = 0.5,
        l2: float = 1e-4,
    ) -> None:
        super().__init__()
        w = [base_width * m for m in (1, 2, 4, 8, 16)]
        self.deep_supervision = deep_supervision
        self.nodes = nn.ModuleDict()
        self.ups = nn.ModuleDict()
        for i in range(_DEPTH):
            self.nodes[f"x{i}_0"] = StandardUnit(w[i - 1] if i else in_channels, w[i], dropout, l2)
        for j in range(1, _DEPTH):
            for i in range(_DEPTH - j):
                self.ups[f"up{i}_{j}"] = keras_init_(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2), "glorot_uniform")
                self.nodes[f"x{i}_{j}"] = StandardUnit((j + 1) * w[i], w[i], dropout, l2)
        n_heads = _DEPTH - 1 if deep_supervision else 1
        self.heads = nn.ModuleList(
            [keras_init_(L2Conv2d(w[0], num_classes, 1, l2=l2), "he_normal") for _ in range(n_heads)]
        )

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every head: ``[X(0,1), X(0,2), X(0,3), X(0,4)]`` with deep supervision, else ``[X(0,4)]``.

        Example:
            >>> len(UNetPlusPlus(base_width=4).eval().forward_all(torch.randn(1, 3, 16, 16)))
            1
        """
        check_input_size(x, self.stride, "unetpp")
        cols: list[list[torch.Tensor]] = [[] for _ in range(_DEPTH)]  # cols[i][j] = X(i, j)
        for i in range(_DEPTH):
            x = self.nodes[f"x{i}_0"](F.max_pool2d(x, 2) if i else x)
            cols[i].append(x)
        for j in range(1, _DEPTH):
            for i in range(_DEPTH - j):
                up = self.ups[f"up{i}_{j}"](cols[i + 1][j - 1])
                cols[i].append(self.nodes[f"x{i}_{j}"](torch.cat([up, *cols[i]], dim=1)))
        top = cols[0][1:] if self.deep_supervision else cols[0][-1:]
        return [head(t) for head, t in zip(self.heads, top)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H, W): X(0, 4)'s head, or the mean of all heads with deep supervision."""
        outs = self.forward_all(x)
        if len(outs) == 1:
            return outs[0]
        return torch.stack(outs).mean(dim=0)

    def l2_penalty(self) -> torch.Tensor:
        """Keras-style L2 penalty ``sum(l2 * ||kernel||^2)`` to add to the training loss.

        Example:
            >>> float(UNetPlusPlus(base_width=4, l2=0.0).l2_penalty())
            0.0
        """
        return l2_penalty(self)


@register_model("unetpp")
def build(
    in_channels: int = 3,
    num_classes: int = 1,
    base_width: int = 32,
    deep_supervision: bool = False,
    dropout: float = 0.5,
    l2: float = 1e-4,
) -> UNetPlusPlus:
    """Build the UNet++ baseline (9,042,177 parameters at the defaults).

    Example:
        >>> sum(p.numel() for p in build().parameters())
        9042177
    """
    return UNetPlusPlus(in_channels, num_classes, base_width, deep_supervision, dropout, l2)
