"""ResGANet exactly as the paper describes it, one Python branch per group: the readable
specification of :class:`~focusnet.models.resganet.block.ResGANet`, and the copy of its weights.

The only difference between the two is the *order* of the channels produced by the input 1x1
convolution: the reference keeps the paper's ``[A0, F1, A2, F3]`` order (attention groups gate the
group to their right), the fast block stores ``[A0, A2, F1, F3]`` so that both attention groups and
both feature groups are contiguous. That is a relabelling of weights, not a change of maths.
"""
from __future__ import annotations

from typing import Any, Literal, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.models.layers import KERAS_BN_EPS, KERAS_BN_MOMENTUM, KERAS_LEAKY_SLOPE, SqueezeExcite, batch_norm
from focusnet.models.resganet.block import ResGANet

__all__ = ["ResGANetReference", "resganet_from_reference"]


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
        if self.sc_conv is not None and self.sc_bn is not None:  # set together
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
        self.settings: dict[str, Any] = dict(  # ResGANet's keyword arguments
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

    def copy_conv(dst: nn.Module, srcs: list[nn.Conv2d | None]) -> None:
        # every convolution of both blocks has a bias; a missing one fails here as it did before
        dst, convs = cast(nn.Conv2d, dst), cast(list[nn.Conv2d], srcs)
        dst.weight.copy_(torch.cat([s.weight for s in convs]))
        cast(torch.Tensor, dst.bias).copy_(torch.cat([cast(torch.Tensor, s.bias) for s in convs]))

    def copy_bn(dst: nn.Module, srcs: list[nn.BatchNorm2d | None]) -> None:
        bns = cast(list[nn.BatchNorm2d], srcs)
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            cats = [getattr(s, name) for s in bns]
            getattr(dst, name).copy_(cats[0] if name == "num_batches_tracked" else torch.cat(cats))

    fast.conv_in.weight.copy_(ref.conv_in.weight[order])
    cast(torch.Tensor, fast.conv_in.bias).copy_(cast(torch.Tensor, ref.conv_in.bias)[order])
    groups: list[_AttentionGroup | _FeatureGroup] = [ref.attn1, ref.attn2, ref.feat1, ref.feat2]
    trunk = fast.trunk_layers()
    copy_bn(trunk[0], [g.bn1 for g in groups])
    copy_conv(trunk[2], [g.conv1 for g in groups])
    copy_bn(trunk[3], [g.bn2 for g in groups])
    copy_conv(trunk[5], [g.conv2 for g in groups])
    copy_conv(fast.gate, [ref.attn1.gate, ref.attn2.gate])
    fs = fast.feature_shortcut_layers()
    if ref.feat1.sc_conv is not None and fs is not None:  # both or neither (the same settings)
        copy_conv(fs[0], [ref.feat1.sc_conv, ref.feat2.sc_conv])
        copy_bn(fs[1], [ref.feat1.sc_bn, ref.feat2.sc_bn])
    expand = fast.expand_layers()
    copy_conv(expand[0], [ref.expand1.conv, ref.expand2.conv])
    copy_bn(expand[1], [ref.expand1.bn, ref.expand2.bn])
    fast.conv_out.load_state_dict(ref.conv_out.state_dict())
    fast.bn_out.load_state_dict(ref.bn_out.state_dict())
    fast.se.load_state_dict(ref.se.state_dict())
    fast.shortcut.load_state_dict(ref.shortcut.state_dict())
    return fast
