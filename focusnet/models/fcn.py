"""FCN-8s: fully convolutional network with a VGG-16 encoder and pool3/pool4 skip fusion.

Paper: Jonathan Long, Evan Shelhamer and Trevor Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015 (journal version: Shelhamer, Long and Darrell, IEEE TPAMI
2017).

Structure as in the paper's FCN-8s:

* VGG-16 encoder: five stages of Conv3×3 (+ ReLU) with 2, 2, 3, 3, 3 convs and widths
  64, 128, 256, 512, 512 (× ``base_width / 64``), each stage ending in MaxPool 2×2;
* fc6 and fc7 as convolutions (each + ReLU + Dropout(0.5));
* scores: Conv1×1 to ``num_classes`` on fc7, pool4 and pool3; the fc7 score is upsampled ×2
  by a transposed conv and added to the pool4 score, the sum upsampled ×2 and added to the
  pool3 score, and that sum upsampled ×8 to the input size. The transposed convs have no
  bias and start as per-class bilinear interpolation (zero off the class diagonal).

Departures from the paper (it fine-tunes an ImageNet VGG-16; no pretrained weights are
available offline, so this model trains from scratch):

* ``batch_norm=True`` (default) puts BatchNorm (PyTorch defaults) after every encoder conv, as
  in VGG-16-BN; the paper's network has none, and plain VGG-16 is hard to train from scratch.
  ``batch_norm=False`` gives the paper's plain encoder (convs with biases);
* fc6/fc7 are narrower: ``fc_width=1024`` with a 3×3 fc6 kernel by default, the reduced fc6
  of DeepLab-LargeFOV (Chen et al., ICLR 2015), instead of 4096 wide with a 7×7 fc6
  (≈134M parameters, mostly fc6, for a 256² input whose pool5 is only 8×8). Both are
  parameters (``fc_width=4096, fc_kernel_size=7`` is the paper's);
* the paper pads the first conv by 100 and crops the score maps to align them; here every
  conv uses 'same' padding, the transposed convs are sized to give exactly 2× / 8× outputs
  (kernel 4, stride 2, padding 1 and kernel 16, stride 8, padding 4), and no crop is needed
  because the input height and width must be divisible by 32;
* all three transposed convs are learnable (the paper freezes the final ×8 one); all convs,
  score layers included, start He-normal (the paper zero-initialises the score layers, which
  only suits fine-tuning a pretrained encoder); forward returns logits.

At the defaults the model has 20,490,211 trainable parameters and ≈ 20.4 GMACs at 3×256×256
(20,485,987 with ``batch_norm=False``). The paper's widths (``batch_norm=False, fc_width=4096,
fc_kernel_size=7``) give 134,265,699 parameters and ≈ 27.7 GMACs.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from focusnet.errors import FocusNetError
from focusnet.models.layers import check_input_size
from focusnet.models.registry import register_model

__all__ = ["FCN8s", "bilinear_kernel", "build"]

_STRIDE = 32
_STAGE_CONVS = (2, 2, 3, 3, 3)
_STAGE_MULT = (1, 2, 4, 8, 8)


def bilinear_kernel(size: int) -> torch.Tensor:
    """2-D bilinear interpolation kernel of side ``size`` (as used to initialise FCN upsampling).

    Args:
        size: kernel side; ``2·f`` for upsampling by ``f``.

    Returns:
        A ``(size, size)`` tensor.

    Example:
        >>> bilinear_kernel(4)
        tensor([[0.0625, 0.1875, 0.1875, 0.0625],
                [0.1875, 0.5625, 0.5625, 0.1875],
                [0.1875, 0.5625, 0.5625, 0.1875],
                [0.0625, 0.1875, 0.1875, 0.0625]])
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1.0 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor
    return ramp[:, None] * ramp[None, :]


def _upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Bias-free transposed conv that maps H to exactly ``factor``·H, bilinear-initialised."""
    size = 2 * factor
    layer = nn.ConvTranspose2d(channels, channels, size, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        kernel = bilinear_kernel(size)
        for c in range(channels):
            layer.weight[c, c] = kernel
    return layer


class FCN8s(nn.Module):
    """FCN-8s with a VGG-16 encoder trained from scratch (see the module docstring).

    Args:
        in_channels: image channels.
        num_classes: output channels (logits).
        base_width: width of the first VGG stage (64 in VGG-16); stages use 1, 2, 4, 8, 8 × this.
        fc_width: channels of fc6 and fc7 (4096 in the paper).
        fc_kernel_size: odd kernel of fc6 (7 in the paper).
        batch_norm: BatchNorm after every encoder conv (VGG-16-BN style; not in the paper).
        dropout: dropout after fc6 and fc7.

    Example:
        >>> model = FCN8s(base_width=8, fc_width=32)
        >>> model(torch.randn(1, 3, 64, 96)).shape
        torch.Size([1, 1, 64, 96])
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        base_width: int = 64,
        fc_width: int = 1024,
        fc_kernel_size: int = 3,
        batch_norm: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if base_width < 1 or fc_width < 1:
            raise FocusNetError(f"fcn: base_width and fc_width must be positive, got {base_width}, {fc_width}")
        if fc_kernel_size < 1 or fc_kernel_size % 2 == 0:
            raise FocusNetError(f"fcn: fc_kernel_size must be odd, got {fc_kernel_size}")
        widths = [base_width * m for m in _STAGE_MULT]
        stages: list[nn.Sequential] = []
        c_in = in_channels
        for width, n_convs in zip(widths, _STAGE_CONVS):
            layers: list[nn.Module] = []
            for _ in range(n_convs):
                layers.append(nn.Conv2d(c_in, width, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                c_in = width
            layers.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Sequential(
            nn.Conv2d(widths[4], fc_width, fc_kernel_size, padding=fc_kernel_size // 2),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(fc_width, fc_width, 1),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.score_fr = nn.Conv2d(fc_width, num_classes, 1)
        self.score_pool4 = nn.Conv2d(widths[3], num_classes, 1)
        self.score_pool3 = nn.Conv2d(widths[2], num_classes, 1)
        self.reset_parameters()
        # Created after reset_parameters so they keep their bilinear initialisation.
        self.upscore2 = _upsampler(num_classes, 2)
        self.upscore_pool4 = _upsampler(num_classes, 2)
        self.upscore8 = _upsampler(num_classes, 8)

    def reset_parameters(self) -> None:
        """He-normal convs with zero biases; BN to identity (upsamplers are not touched)."""
        for module in self.modules():
            if type(module) is nn.Conv2d:
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes, H, W)`` for images ``(B, in_channels, H, W)``."""
        check_input_size(x, _STRIDE, "fcn")
        pools: list[torch.Tensor] = []
        for stage in self.stages:
            x = stage(x)
            pools.append(x)
        score = self.upscore2(self.score_fr(self.fc(pools[4])))  # H/16
        score = self.upscore_pool4(score + self.score_pool4(pools[3]))  # H/8
        return self.upscore8(score + self.score_pool3(pools[2]))  # H


@register_model("fcn")
def build(
    in_channels: int = 3,
    num_classes: int = 1,
    base_width: int = 64,
    fc_width: int = 1024,
    fc_kernel_size: int = 3,
    batch_norm: bool = True,
    dropout: float = 0.5,
) -> FCN8s:
    """FCN-8s (VGG-16 encoder, from scratch; 20,490,211 parameters at the defaults).

    Args:
        in_channels: image channels.
        num_classes: output channels (logits).
        base_width: first VGG stage width (64).
        fc_width: fc6/fc7 width (1024 here; 4096 in the paper).
        fc_kernel_size: fc6 kernel (3 here; 7 in the paper).
        batch_norm: BatchNorm in the encoder (a departure from the paper, on by default).
        dropout: dropout after fc6 and fc7 (0.5).

    Returns:
        The model; its forward returns logits. Inputs must have H and W divisible by 32.

    Example:
        >>> from focusnet.models import create_model
        >>> model = create_model("fcn")
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        20490211
    """
    return FCN8s(
        in_channels=in_channels,
        num_classes=num_classes,
        base_width=base_width,
        fc_width=fc_width,
        fc_kernel_size=fc_kernel_size,
        batch_norm=batch_norm,
        dropout=dropout,
    )
