"""The ResGANet block of FocusNet++ (Kaul et al., ISBI 2021, §2.1; implementation spec §1.2).

The four groups run as *grouped* convolutions (one ``groups=4`` trunk, one ``groups=2`` gate and
expansion); :class:`ResGANet` holds the parameters and three executions of the same function
(``plain``, ``fast``, ``fused``; :mod:`~focusnet.models.resganet.execution` chooses one per call).
:mod:`~focusnet.models.resganet.reference` holds the branch-by-branch specification.
"""
from __future__ import annotations

from typing import Literal, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.kernels import bn_leaky_relu, normalize_keeping_layout
from focusnet.models.layers import (
    KERAS_BN_EPS,
    KERAS_BN_MOMENTUM,
    KERAS_LEAKY_SLOPE,
    PaddingMode,
    SqueezeExcite,
    norm_layer,
)
from focusnet.models.resganet.execution import NORMALISATIONS, Strategy, choose_strategy, use_fused_inference
from focusnet.models.resganet.execution import foldable_bn as _foldable_bn
from focusnet.models.resganet.ops import (
    _bias,
    _conv_bn,
    _conv_bn_lrelu,
    _dense_1x1,
    _fold,
    _upsample2x_cl,
    bn_affine,
    conv1x1_cl,
    conv_act,
    conv_train,
)
from focusnet.models.resganet.tail import block_tail, tail_torch

__all__ = ["SE_SQUEEZES", "ResGANet"]

SE_SQUEEZES = ("after_norm", "before_norm")
"""What a ResGANet block's squeeze-and-excitation pools: the output of its last normalisation, or its input."""

# The layers of the block's nn.Sequential parts, typed for the fast executions (indexing an
# nn.Sequential gives a plain nn.Module). A BatchNorm that export folded is an nn.Identity.
TrunkLayers = tuple[nn.BatchNorm2d, nn.LeakyReLU, nn.Conv2d, nn.Module, nn.LeakyReLU, nn.Conv2d]
ConvBnAct = tuple[nn.Conv2d, nn.Module, nn.LeakyReLU]
ConvBn = tuple[nn.Conv2d, nn.Module]


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
        norm: ``"batch"`` (the paper's) or ``"instance"`` (:func:`focusnet.models.layers.norm_layer`;
            the fast path calls an InstanceNorm as a module or through the per-image kernel, and
            inference is never the fused path, which folds BatchNorm).
        padding_mode: how the trunk's 3x3 convolutions pad the border (``nn.Conv2d``'s modes;
            ``"zeros"`` is the paper's).
        se_squeeze: what squeeze-and-excitation pools: ``"after_norm"`` (the paper's: the output of
            ``bn_out``) or ``"before_norm"`` (its input, ``conv_out``'s output). With
            ``norm="instance"`` every image's channel means after the norm equal the norm's bias, so
            an ``after_norm`` squeeze gives every image the same gate; ``before_norm`` keeps the
            per-image context. ``bn_out`` is then not folded (export, fused inference).

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
        norm: str = "batch",
        se_squeeze: Literal["after_norm", "before_norm"] = "after_norm",
        padding_mode: PaddingMode = "zeros",
    ) -> None:
        super().__init__()
        if width % 4 != 0 or width <= 0:
            raise ValueError(f"ResGANet width must be a positive multiple of 4, got {width}")
        if feature_shortcut not in ("identity", "conv"):
            raise ValueError(f"feature_shortcut must be 'identity' or 'conv', got {feature_shortcut!r}")
        if se_squeeze not in SE_SQUEEZES:
            raise ValueError(f"se_squeeze must be one of {SE_SQUEEZES}, got {se_squeeze!r}")
        d = width // 4
        self.group = d
        self.slope = leaky_slope

        def bn(c: int) -> nn.Module:
            return norm_layer(norm, c, bn_momentum, bn_eps)

        # channels out of conv_in: [A0 | A2 | F1 | F3], each d wide
        self.conv_in = nn.Conv2d(in_channels, width, 1)
        # the four BN-LReLU-Conv3x3-BN-LReLU-Conv3x3 stacks, one group each
        self.trunk = nn.Sequential(
            bn(width),
            nn.LeakyReLU(leaky_slope),
            nn.Conv2d(width, width, 3, padding=1, groups=4, padding_mode=padding_mode),
            bn(width),
            nn.LeakyReLU(leaky_slope),
            nn.Conv2d(width, width, 3, padding=1, groups=4, padding_mode=padding_mode),
        )
        self.gate = nn.Conv2d(2 * d, 2 * d, 1, groups=2)  # attention 1x1 before the sigmoid
        if feature_shortcut == "conv":
            self.feature_shortcut: nn.Sequential | nn.Identity = nn.Sequential(
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
        self.squeeze_before_norm = se and se_squeeze == "before_norm"
        # conv_out feeds bn_out only: export.fold_batchnorm may fuse them, unless SE pools conv_out's output
        self.foldable_pairs: tuple[tuple[str, str], ...] = () if self.squeeze_before_norm else (("conv_out", "bn_out"),)
        if project is None:
            project = in_channels != out_channels
        self.shortcut: nn.Sequential | nn.Identity = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), bn(out_channels))
            if project
            else nn.Identity()
        )

    def trunk_layers(self) -> TrunkLayers:
        """BN, LeakyReLU, Conv3x3, BN, LeakyReLU, Conv3x3 of the trunk."""
        return cast(TrunkLayers, tuple(self.trunk))

    def expand_layers(self) -> ConvBnAct:
        """Conv1x1, BN, LeakyReLU of the expansion."""
        return cast(ConvBnAct, tuple(self.expand))

    def feature_shortcut_layers(self) -> ConvBnAct | None:
        """Conv1x1, BN, LeakyReLU of a conv feature shortcut; None for the identity one."""
        fs = self.feature_shortcut
        return None if isinstance(fs, nn.Identity) else cast(ConvBnAct, tuple(fs))

    def shortcut_layers(self) -> ConvBn | None:
        """Conv1x1 and BN of a projecting block shortcut; None for the identity one."""
        sc = self.shortcut
        return None if isinstance(sc, nn.Identity) else cast(ConvBn, tuple(sc))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, choose_strategy(self, x))

    def run(self, x: torch.Tensor, strategy: Strategy, upsample: bool = False) -> torch.Tensor:
        """The block by ``strategy`` (chosen by :func:`~focusnet.models.resganet.execution.choose_strategy`
        for this block, or for the model it belongs to).

        With ``upsample=True`` the block computes ``forward_plain(interpolate(x, 2, "nearest"))``;
        the fast and fused executions run the input 1x1 convolutions (``conv_in``, the shortcut
        conv) at the low resolution and upsample their outputs (per-pixel maps: 4x fewer
        multiply-adds, same values); every BatchNorm still sees the upsampled tensor.
        """
        if strategy == "plain":
            return self.forward_plain(F.interpolate(x, scale_factor=2.0, mode="nearest") if upsample else x)
        x = x.contiguous(memory_format=torch.channels_last)
        if strategy == "fused" and not self.squeeze_before_norm:  # the fused path folds bn_out
            return self._forward_fused(x, upsample)
        return self._forward_fast(x, upsample)

    def forward_fast(self, x: torch.Tensor, upsample: bool = False) -> torch.Tensor:
        """The fast execution (fused where fp32 CPU inference allows), whatever the switch says."""
        fused = use_fused_inference(x) and self._fused_ok()
        return self.run(x, "fused" if fused else "fast", upsample)

    def _forward_fast(self, x: torch.Tensor, upsample: bool) -> torch.Tensor:
        """Same maths as :meth:`forward_plain` (see the package docstring): channels_last, 1x1
        convolutions as matrix products, eval-mode BatchNorm folded, in-place activations."""
        grad = torch.is_grad_enabled()
        d = self.group

        def up(t: torch.Tensor) -> torch.Tensor:
            return _upsample2x_cl(t) if upsample else t

        tr = self.trunk_layers()
        w_in, b_in = self.conv_in.weight.flatten(1), self.conv_in.bias
        h = up(conv1x1_cl(x, w_in, b_in))
        a = bn_leaky_relu(h, tr[0], tr[1].negative_slope)
        a = _conv_bn_lrelu(a, tr[2], tr[3], tr[4].negative_slope)
        t_att, t_feat = conv_train(a, tr[5]).split(2 * d, dim=1)  # split: one cat in backward, no zero-filling
        # attention: 1x1 gate (groups=2, block-diagonal) on the attention half of t, read in place
        gate = self.gate
        attention = conv1x1_cl(t_att, _dense_1x1(gate.weight, gate.groups), gate.bias, sigmoid=True)
        # feature half of h = conv_in(x): when autograd runs, recomputed from the feature rows of
        # conv_in (a small product) rather than sliced out of h, whose slice gradient would cost a
        # zero-filled full-width tensor and a copy
        if grad:
            h_feat = up(conv1x1_cl(x, w_in[2 * d :], None if b_in is None else b_in[2 * d :]))
        else:
            h_feat = h[:, 2 * d :]
        fs = self.feature_shortcut_layers()
        if fs is None:
            shortcut_f = h_feat
        else:
            conv = fs[0]
            shortcut_f = _conv_bn_lrelu(h_feat, conv, fs[1], fs[2].negative_slope, _dense_1x1(conv.weight, conv.groups))
        features = t_feat + shortcut_f
        gated = features * attention if grad else features.mul_(attention)
        ex = self.expand_layers()
        e = _conv_bn_lrelu(gated, ex[0], ex[1], ex[2].negative_slope, _dense_1x1(ex[0].weight, ex[0].groups))
        w_out = self.conv_out.weight.flatten(1)
        skip = self._skip(x, up)
        if _foldable_bn(self.bn_out) and not self.squeeze_before_norm:  # inference: BatchNorm folded into the product
            y = _conv_bn(e, self.conv_out, self.bn_out, dense=w_out)
            return tail_torch(y, skip, None, self.se, self.slope, inplace=not grad)
        y = conv1x1_cl(e, w_out, self.conv_out.bias)
        return block_tail(y, skip, self.bn_out, self.se, self.slope, inplace=not grad,
                          squeeze_before_norm=self.squeeze_before_norm)

    def _skip(self, x: torch.Tensor, up) -> torch.Tensor:
        """The block shortcut of the fast path: identity, or Conv1x1 + BN (folded in eval mode and
        run before the upsampling; in training BN runs on the upsampled output)."""
        sc = self.shortcut_layers()
        if sc is None:
            return up(x)
        w, b, rest = _fold(sc[0].weight.flatten(1), sc[0].bias, sc[1])
        skip = up(conv1x1_cl(x, w, b))
        # the residual-tail kernel reads channels_last
        return skip if rest is None else normalize_keeping_layout(rest, skip)

    def _fused_ok(self) -> bool:
        """Every normalisation is a foldable BatchNorm (eval mode, no autograd) or export's Identity."""
        return all(_foldable_bn(m) for m in self.modules() if isinstance(m, NORMALISATIONS))

    def _forward_fused(self, x: torch.Tensor, upsample: bool) -> torch.Tensor:
        """fp32 CPU inference with oneDNN's fused kernels; the same maths, regrouped linearly:

        * the attention half and the feature half of the trunk run as separate ``groups=2``
          kernels, so every tensor stays contiguous (a sigmoid on a channel slice is not vectorised);
        * the trunk's first BatchNorm + LeakyReLU is folded into ``conv_in`` (products with the
          activation fused); the feature rows of ``conv_in`` without it (the identity feature
          shortcut) are one more product, or with a conv feature shortcut both 1x1 maps composed;
        * each trunk 3x3 convolution carries its BatchNorm and LeakyReLU; the attention gate (1x1,
          block-diagonal over the same groups) and its sigmoid are composed into the attention
          half's second 3x3 convolution;
        * expansion and output 1x1 convolutions carry their BatchNorm (and LeakyReLU).
        Composition and folding reorder float sums: equal to the plain path to ~1e-6 (tests 1e-5).
        """
        d = self.group
        tr = self.trunk_layers()

        def up(t: torch.Tensor) -> torch.Tensor:
            return _upsample2x_cl(t) if upsample else t

        half = 2 * d
        w_in = self.conv_in.weight.flatten(1)
        b_in = _bias(self.conv_in)
        scale0, shift0 = bn_affine(tr[0])
        w_a, b_a = w_in * scale0[:, None], b_in * scale0 + shift0
        slope0 = tr[1].negative_slope
        a_att = up(conv1x1_cl(x, w_a[:half], b_a[:half], leaky_slope=slope0))
        a_feat = up(conv1x1_cl(x, w_a[half:], b_a[half:], leaky_slope=slope0))
        fs = self.feature_shortcut_layers()
        if fs is None:
            shortcut_f = up(conv1x1_cl(x, w_in[half:], b_in[half:]))
        else:  # lrelu(bn(conv_fs(conv_in_feat(x)))): the two 1x1 maps composed
            w_fs = _dense_1x1(fs[0].weight, fs[0].groups)
            w, b, _ = _fold(w_fs @ w_in[half:], w_fs @ b_in[half:] + _bias(fs[0]), fs[1])
            shortcut_f = up(conv1x1_cl(x, w, b, leaky_slope=fs[2].negative_slope))
        w1, b1, _ = _fold(tr[2].weight, tr[2].bias, tr[3])
        groups, slope1 = tr[2].groups // 2, tr[4].negative_slope
        mode = tr[2].padding_mode
        a_att = conv_act(a_att, w1[:half], b1[:half], 1, groups, "leaky_relu", slope1, mode)
        a_feat = conv_act(a_feat, w1[half:], b1[half:], 1, groups, "leaky_relu", slope1, mode)
        conv2, gate = tr[5], self.gate
        g = _dense_1x1(gate.weight, gate.groups)  # block-diagonal: the groups stay separate
        b2 = _bias(conv2)
        w_att = torch.einsum("oc,cikl->oikl", g, conv2.weight[:half])
        mode = conv2.padding_mode
        attention = conv_act(a_att, w_att, g @ b2[:half] + _bias(gate), 1, groups, "sigmoid", padding_mode=mode)
        t_feat = conv_act(a_feat, conv2.weight[half:], b2[half:], 1, groups, padding_mode=mode)
        gated = attention.mul_(t_feat.add_(shortcut_f))
        ex = self.expand_layers()
        w, b, _ = _fold(_dense_1x1(ex[0].weight, ex[0].groups), ex[0].bias, ex[1])
        e = conv1x1_cl(gated, w, b, leaky_slope=ex[2].negative_slope)
        w, b, _ = _fold(self.conv_out.weight.flatten(1), self.conv_out.bias, self.bn_out)
        y = conv1x1_cl(e, w, b)
        return tail_torch(y, self._skip(x, up), None, self.se, self.slope, inplace=True)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The grouped-convolution forward, layer by layer (also what is traced and exported)."""
        h = self.conv_in(x)
        t = self.trunk(h)
        half = 2 * self.group
        attention = torch.sigmoid(self.gate(t[:, :half]))
        features = t[:, half:] + self.feature_shortcut(h[:, half:])
        y = self.conv_out(self.expand(features * attention))
        return tail_torch(y, self.shortcut(x), self.bn_out, self.se, self.slope, layerwise=True,
                          squeeze_before_norm=self.squeeze_before_norm)
