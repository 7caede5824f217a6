"""Shared building blocks: the ResGANet block of FocusNet++, squeeze-and-excitation, conv helpers.

The ResGANet block (Kaul et al., ISBI 2021, §2.1; implementation spec §1.2) is written twice:

* :class:`ResGANet` is the fast version used by the models. The two attention groups and the two
  feature groups run as *grouped* convolutions: one ``groups=4`` trunk for the four
  BN-LeakyReLU-Conv3x3 stacks, one ``groups=2`` 1x1 gate, one ``groups=2`` expansion. That is a
  handful of kernels per block instead of four Python branches of tiny convolutions.
* :class:`ResGANetReference` follows the paper's description literally, branch by branch. It is
  the readable specification; :func:`resganet_from_reference` copies its weights into a fast
  block, and the tests check both give the same output.

The only difference between them is the *order* of the channels produced by the input 1x1
convolution: the reference keeps the paper's ``[A0, F1, A2, F3]`` order (attention groups gate the
group to their right), the fast block stores ``[A0, A2, F1, F3]`` so that both attention groups
and both feature groups are contiguous. That is a relabelling of weights, not a change of maths.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

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


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018) as in the authors' ``se.py``.

    Global average pool, bias-free FC to ``channels // ratio`` with ReLU, bias-free FC back with
    sigmoid, channel-wise rescale. The reduced width is at least 1 (for very narrow test models).

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))
        s = torch.sigmoid(self.expand(F.relu(self.reduce(s))))
        return x * s[:, :, None, None]


class ResGANet(nn.Module):
    """Residual Group Attention block (fast, grouped-convolution implementation).

    Args:
        in_channels: input channels C_in.
        out_channels: output channels C_out.
        width: internal grouped width w (multiple of 4); ``d = w // 4`` channels per group.
        se: squeeze-and-excitation after the final 1x1 conv + BN (paper: yes; released code: no).
        feature_shortcut: ``"identity"`` (paper, O = x + F(x)) or ``"conv"`` (released code:
            Conv1x1-BN-LeakyReLU on the feature group's shortcut).
        project: force a Conv1x1+BN block shortcut even when C_in == C_out (default: only when
            the channel count changes).
        leaky_slope, bn_momentum, bn_eps: activation and BatchNorm settings.

    Example:
        >>> block = ResGANet(32, 64, width=64)
        >>> block(torch.randn(2, 32, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        se: bool = True,
        feature_shortcut: Literal["identity", "conv"] = "identity",
        project: bool | None = None,
        leaky_slope: float = KERAS_LEAKY_SLOPE,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        bn_eps: float = KERAS_BN_EPS,
    ) -> None:
        super().__init__()
        if width % 4 != 0 or width <= 0:
            raise ValueError(f"ResGANet width must be a positive multiple of 4, got {width}")
        if feature_shortcut not in ("identity", "conv"):
            raise ValueError(f"feature_shortcut must be 'identity' or 'conv', got {feature_shortcut!r}")
        d = width // 4
        self.group = d
        self.slope = leaky_slope

        def bn(c: int) -> nn.BatchNorm2d:
            return batch_norm(c, bn_momentum, bn_eps)

        # channels out of conv_in: [A0 | A2 | F1 | F3], each d wide
        self.conv_in = nn.Conv2d(in_channels, width, 1)
        # the four BN-LReLU-Conv3x3-BN-LReLU-Conv3x3 stacks, one group each
        self.trunk = nn.Sequential(
            bn(width),
            nn.LeakyReLU(leaky_slope),
            nn.Conv2d(width, width, 3, padding=1, groups=4),
            bn(width),
            nn.LeakyReLU(leaky_slope),
            nn.Conv2d(width, width, 3, padding=1, groups=4),
        )
        self.gate = nn.Conv2d(2 * d, 2 * d, 1, groups=2)  # attention 1x1 before the sigmoid
        if feature_shortcut == "conv":
            self.feature_shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(2 * d, 2 * d, 1, groups=2), bn(2 * d), nn.LeakyReLU(leaky_slope)
            )
        else:
            self.feature_shortcut = nn.Identity()
        self.expand = nn.Sequential(
            nn.Conv2d(2 * d, 4 * d, 1, groups=2), bn(4 * d), nn.LeakyReLU(leaky_slope)
        )
        self.conv_out = nn.Conv2d(width, out_channels, 1)
        self.bn_out = bn(out_channels)
        self.se: nn.Module = SqueezeExcite(out_channels) if se else nn.Identity()
        if project is None:
            project = in_channels != out_channels
        self.shortcut: nn.Module = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), bn(out_channels))
            if project
            else nn.Identity()
        )

    # conv_out feeds bn_out only: export.fold_batchnorm may fuse them for inference
    foldable_pairs = (("conv_out", "bn_out"),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        t = self.trunk(h)
        half = 2 * self.group
        attention = torch.sigmoid(self.gate(t[:, :half]))
        features = t[:, half:] + self.feature_shortcut(h[:, half:])
        y = self.bn_out(self.conv_out(self.expand(features * attention)))
        y = self.se(y)
        return F.leaky_relu(self.shortcut(x) + y, self.slope)


# ----------------------------------------------------------------------------------- reference
class _AttentionGroup(nn.Module):
    """Paper: two BN-LeakyReLU-Conv operations followed by a Conv-Sigmoid (d channels)."""

    def __init__(self, d: int, slope: float, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.bn1 = batch_norm(d, bn_momentum, bn_eps)
        self.conv1 = nn.Conv2d(d, d, 3, padding=1)
        self.bn2 = batch_norm(d, bn_momentum, bn_eps)
        self.conv2 = nn.Conv2d(d, d, 3, padding=1)
        self.gate = nn.Conv2d(d, d, 1)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.leaky_relu(self.bn1(x), self.slope))
        x = self.conv2(F.leaky_relu(self.bn2(x), self.slope))
        return torch.sigmoid(self.gate(x))


class _FeatureGroup(nn.Module):
    """Residual unit O = shortcut(x) + F(x), F = 2x (BN-LeakyReLU-Conv3x3)."""

    def __init__(self, d: int, conv_shortcut: bool, slope: float, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.bn1 = batch_norm(d, bn_momentum, bn_eps)
        self.conv1 = nn.Conv2d(d, d, 3, padding=1)
        self.bn2 = batch_norm(d, bn_momentum, bn_eps)
        self.conv2 = nn.Conv2d(d, d, 3, padding=1)
        self.slope = slope
        self.sc_conv = nn.Conv2d(d, d, 1) if conv_shortcut else None
        self.sc_bn = batch_norm(d, bn_momentum, bn_eps) if conv_shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv1(F.leaky_relu(self.bn1(x), self.slope))
        f = self.conv2(F.leaky_relu(self.bn2(f), self.slope))
        if self.sc_conv is not None:
            x = F.leaky_relu(self.sc_bn(self.sc_conv(x)), self.slope)
        return x + f


class _Expansion(nn.Module):
    """Conv1x1(d -> 2d) - BN - LeakyReLU on one gated group."""

    def __init__(self, d: int, slope: float, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(d, 2 * d, 1)
        self.bn = batch_norm(2 * d, bn_momentum, bn_eps)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn(self.conv(x)), self.slope)


class ResGANetReference(nn.Module):
    """ResGANet exactly as the paper describes it, one Python branch per group (slow, readable).

    Same arguments as :class:`ResGANet`. Used as the specification in tests.

    Example:
        >>> ref = ResGANetReference(32, 32, width=32)
        >>> fast = resganet_from_reference(ref)
        >>> x = torch.randn(2, 32, 8, 8)
        >>> bool(torch.allclose(ref.eval()(x), fast.eval()(x), atol=1e-5))
        True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        se: bool = True,
        feature_shortcut: Literal["identity", "conv"] = "identity",
        project: bool | None = None,
        leaky_slope: float = KERAS_LEAKY_SLOPE,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        bn_eps: float = KERAS_BN_EPS,
    ) -> None:
        super().__init__()
        d = width // 4
        args = (leaky_slope, bn_momentum, bn_eps)
        conv_sc = feature_shortcut == "conv"
        self.settings = dict(
            in_channels=in_channels, out_channels=out_channels, width=width, se=se,
            feature_shortcut=feature_shortcut, project=project, leaky_slope=leaky_slope,
            bn_momentum=bn_momentum, bn_eps=bn_eps,
        )
        self.d = d
        self.slope = leaky_slope
        self.conv_in = nn.Conv2d(in_channels, width, 1)  # [g0, g1, g2, g3] = [A, F, A, F]
        self.attn1 = _AttentionGroup(d, *args)
        self.feat1 = _FeatureGroup(d, conv_sc, *args)
        self.attn2 = _AttentionGroup(d, *args)
        self.feat2 = _FeatureGroup(d, conv_sc, *args)
        self.expand1 = _Expansion(d, *args)
        self.expand2 = _Expansion(d, *args)
        self.conv_out = nn.Conv2d(width, out_channels, 1)
        self.bn_out = batch_norm(out_channels, bn_momentum, bn_eps)
        self.se: nn.Module = SqueezeExcite(out_channels) if se else nn.Identity()
        if project is None:
            project = in_channels != out_channels
        self.shortcut: nn.Module = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), batch_norm(out_channels, bn_momentum, bn_eps))
            if project
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g0, g1, g2, g3 = torch.split(self.conv_in(x), self.d, dim=1)
        p1 = self.expand1(self.feat1(g1) * self.attn1(g0))
        p2 = self.expand2(self.feat2(g3) * self.attn2(g2))
        y = self.se(self.bn_out(self.conv_out(torch.cat([p1, p2], dim=1))))
        return F.leaky_relu(self.shortcut(x) + y, self.slope)


@torch.no_grad()
def resganet_from_reference(ref: ResGANetReference) -> ResGANet:
    """Build a fast :class:`ResGANet` holding exactly the weights (and BN statistics) of ``ref``.

    Example:
        >>> fast = resganet_from_reference(ResGANetReference(16, 32, width=32))
        >>> isinstance(fast, ResGANet)
        True
    """
    fast = ResGANet(**ref.settings)
    d = ref.d
    a1, f1, a2, f2 = slice(0, d), slice(d, 2 * d), slice(2 * d, 3 * d), slice(3 * d, 4 * d)
    order = torch.cat([torch.arange(4 * d)[s] for s in (a1, a2, f1, f2)])

    def copy_conv(dst: nn.Conv2d, srcs: list[nn.Conv2d]) -> None:
        dst.weight.copy_(torch.cat([s.weight for s in srcs]))
        dst.bias.copy_(torch.cat([s.bias for s in srcs]))

    def copy_bn(dst: nn.BatchNorm2d, srcs: list[nn.BatchNorm2d]) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(dst, name).copy_(torch.cat([getattr(s, name) for s in srcs]))
        dst.num_batches_tracked.copy_(srcs[0].num_batches_tracked)

    fast.conv_in.weight.copy_(ref.conv_in.weight[order])
    fast.conv_in.bias.copy_(ref.conv_in.bias[order])
    groups = [ref.attn1, ref.attn2, ref.feat1, ref.feat2]
    copy_bn(fast.trunk[0], [g.bn1 for g in groups])
    copy_conv(fast.trunk[2], [g.conv1 for g in groups])
    copy_bn(fast.trunk[3], [g.bn2 for g in groups])
    copy_conv(fast.trunk[5], [g.conv2 for g in groups])
    copy_conv(fast.gate, [ref.attn1.gate, ref.attn2.gate])
    if ref.feat1.sc_conv is not None:
        copy_conv(fast.feature_shortcut[0], [ref.feat1.sc_conv, ref.feat2.sc_conv])
        copy_bn(fast.feature_shortcut[1], [ref.feat1.sc_bn, ref.feat2.sc_bn])
    copy_conv(fast.expand[0], [ref.expand1.conv, ref.expand2.conv])
    copy_bn(fast.expand[1], [ref.expand1.bn, ref.expand2.bn])
    fast.conv_out.load_state_dict(ref.conv_out.state_dict())
    fast.bn_out.load_state_dict(ref.bn_out.state_dict())
    fast.se.load_state_dict(ref.se.state_dict())
    fast.shortcut.load_state_dict(ref.shortcut.state_dict())
    return fast


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
    from focusnet.errors import FocusNetError

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


@torch.no_grad()
def keras_init_(module: nn.Module, kernel: KerasInit) -> nn.Module:
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
