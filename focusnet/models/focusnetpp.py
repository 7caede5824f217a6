"""FocusNet++.

Paper: C. Kaul, N. Pears, H. Dai, R. Murray-Smith, S. Manandhar, "FocusNet++: Attentive
Aggregated Transformations for Efficient and Accurate Medical Image Segmentation", ISBI 2021
(arXiv:1912.02079). Authors' Keras code: ``chaitanya-kaul/TheFocusNetSeries`` (``focusnetpp.py``).

Presets (every field is a keyword argument, so a preset is only data):

* ``paper`` (default): the network the paper's text describes (implementation spec §1 and §6):
  widths 32-64-128-192-256, one ResGANet per level, grouped width = block output width, SE,
  identity feature shortcuts, Dropout(0.5) on the bottleneck, 1x1 heads at native resolution.
  1,487,941 parameters, 4.35 GMACs at 256x256.
* ``official``: the network of the authors' released ``focusnetpp.py`` (spec §2.1): widths
  48-96-156-256-512, encoder blocks 1/3/3/3/2, grouped width = block input width, no SE, conv
  feature shortcuts, extra plain decoder convolutions, heads after upsampling. 7,771,723
  parameters, 24.18 GMACs. This is the network whose size Table 2 reports (7.80 M with BN buffers).
* ``lite``: the paper preset at half width (16-32-64-96-128, head mids 64/32/16/16) for small data
  sets such as DSB 2018 (the paper's Table 3 slim widths are not given). 377,381 parameters.
* ``nuclei``: sized like the paper's nuclei model (Table 3: 1.84 M parameters; §3.2 slims the
  filters per layer, widths not given): the ``lite`` widths at the two shallowest levels,
  wider below, 16-32-96-232-320, head mids 96/32/16/16. 1,832,157 parameters, 2.43 GMACs at
  256x256 (56% of ``paper``'s): the parameters sit where the pixels are few.

Departures from the paper and the authors' code (and why):

* The model returns the *logits* of the final fusion convolution; apply a sigmoid for probabilities
  (the loss works on logits for numerical stability). The per-scale sigmoids inside the head stay.
* The released code's defects are not reproduced: its dropout layers are dead (we apply the paper's
  bottleneck dropout in the ``paper`` preset), and its group slicing uses a late-binding lambda.
* ``norm="instance"`` (not in the paper) builds every normalisation as a per-image InstanceNorm, as
  MONAI's BasicUNet does. Training runs the fast path with the native BatchNorm kernels given each
  image's statistics; inference skips the fused path, which folds BatchNorm into the convolutions.
* ``head_norm`` (not in the paper) sets the normalisation of the four per-scale heads and the fusion
  apart from the blocks' (default ``None``: the same as ``norm``). With ``norm="instance"`` a per-image
  norm there rescales each image's probability maps by their own mean and spread: where the lesion
  fills the crop the maps are nearly constant, so an uncertain pixel is pushed towards background.
  ``head_norm="batch"`` keeps the blocks' InstanceNorm and gives the output path batch statistics.
* ``se_squeeze="before_norm"`` (not in the paper) makes each block's squeeze-and-excitation pool the
  input of the block's last normalisation rather than its output. With ``norm="instance"`` the
  paper's squeeze sees the same thing for every image (an InstanceNorm's output has the norm's bias
  as every image's channel means), so SE is a fixed per-channel scale and the global context it is
  there for is lost; ``before_norm`` pools each image's own means. ``bn_out`` is then not folded
  (export, fused inference). ``after_norm`` (the paper's) in every preset.
* ``padding_mode`` (not in the paper; default ``"zeros"``, Keras' ``'same'``) sets how the stem and the
  blocks' 3x3 convolutions pad the image border (``nn.Conv2d``'s modes): ``"reflect"`` continues the
  image (and each feature map) across the border instead of darkening it, so a constant image gives a
  constant prediction. Same parameters; each padded convolution reads a padded copy of its input.
  Trained FocusNet++ networks segment lesions that fill the crop short of the border
  (``benchmarks/bench_border.py``); reflection did not change that on ISIC (the training lesions rarely
  touch the border), so every preset keeps zeros.
* ``head_upsample`` (not in the paper; default ``"nearest"``, the paper's pixel repetition) sets how
  the coarse per-scale maps (each head's logits, or the decoder features with
  ``head_position="upsampled"``) are enlarged to the output size before the sigmoid and the 1x1
  fusion. With nearest repetition the coarse maps enter the fusion as blocks of 8x8, 4x4 and 2x2
  pixels, which a 1x1 fusion cannot smooth; ``"bilinear"`` gives it smooth maps. Same parameters;
  deep supervision's head logits are enlarged the same way. On the ISIC head-to-head (two members,
  25 minutes, seed 0) bilinear scored 0.8642 against nearest's 0.8786, so every preset keeps nearest.
* ``skip_merge`` (not in the paper; default ``"after_stage"``, the paper's ``D = stage(up(x)) + E``) sets
  where a decoder stage adds its encoder skip. The paper's order leaves the merged features to the 1x1
  heads: no 3x3 convolution sees the fine encoder features and the upsampled context together (a U-Net's
  decoder convolves their concatenation). ``"after_first"`` adds the skip after the stage's first block,
  so the stage's further blocks (``dec_blocks`` > 1, e.g. ``(1, 1, 1, 2)`` for the finest level only)
  refine the merged features; with one block per stage the two orders are the same network. On the ISIC
  head-to-head (two members, ``dec_blocks=(1, 1, 1, 2)``, 25 minutes, seed 0) it scored 0.8752 against the
  paper's order's 0.8786, so every preset keeps the paper's order.
* ``deep_supervision=True`` (not in the paper, whose loss sees the fused output only) trains each
  per-scale head too: :meth:`FocusNetPP.forward_all` returns the fused logits and the four heads'
  logits (upsampled to the output size) and the engine averages the loss over the five. Off in
  every preset; inference, export and the parameter count are unchanged by it.
* The ResGANet block runs its four groups as grouped convolutions (see :mod:`focusnet.models.resganet`); this is a
  relabelling of channels, checked against a branch-by-branch reference in the tests.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.errors import FocusNetError
from focusnet.models.layers import (
    HEAD_UPSAMPLES,
    KERAS_BN_EPS,
    KERAS_BN_MOMENTUM,
    KERAS_LEAKY_SLOPE,
    NORMS,
    PADDING_MODES,
    SKIP_MERGES,
    HeadUpsample,
    PaddingMode,
    SkipMerge,
    SqueezeExcite,
    norm_layer,
)
from focusnet.models.registry import register_model
from focusnet.models.resganet import ResGANet, Strategy, choose_strategy, conv1x1_cl
from focusnet.models.resganet.block import SE_SQUEEZES
from focusnet.models.resganet.ops import _conv_bn_lrelu


@dataclass(frozen=True)
class FocusNetPPConfig:
    """Every architectural choice of FocusNet++ (spec §6). Presets are instances of this class."""

    widths: tuple[int, ...] = (32, 64, 128, 192, 256)
    enc_blocks: tuple[int, ...] = (1, 1, 1, 1, 1)
    dec_blocks: tuple[int, ...] = (1, 1, 1, 1)
    stem_width: int = 32
    stem_kernel: int = 5
    group_width: Literal["out", "in"] = "out"
    se: bool = True
    se_squeeze: Literal["after_norm", "before_norm"] = "after_norm"
    feature_shortcut: Literal["identity", "conv"] = "identity"
    bottleneck_dropout: float = 0.5
    decoder_extra_convs: bool = False
    head_mid: tuple[int | None, ...] = (128, 64, 32, 32)
    head_position: Literal["native", "upsampled"] = "native"
    fusion_mid: int = 32
    leaky_slope: float = KERAS_LEAKY_SLOPE
    bn_momentum: float = KERAS_BN_MOMENTUM
    bn_eps: float = KERAS_BN_EPS
    norm: Literal["batch", "instance"] = "batch"
    head_norm: Literal["batch", "instance"] | None = None
    padding_mode: PaddingMode = "zeros"
    head_upsample: HeadUpsample = "nearest"
    skip_merge: SkipMerge = "after_stage"
    keras_init: bool = True
    deep_supervision: bool = False

    @property
    def output_norm(self) -> str:
        """The normalisation of the heads and the fusion: ``head_norm``, or ``norm`` where it is ``None``."""
        return self.head_norm or self.norm


def _upsample(x: torch.Tensor, factor: int, mode: HeadUpsample) -> torch.Tensor:
    """``x`` enlarged ``factor`` times by ``mode`` (``head_upsample``); unchanged for a factor of 1."""
    if factor == 1:
        return x
    if mode == "nearest":
        return F.interpolate(x, scale_factor=float(factor), mode="nearest")
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)


PRESETS: dict[str, FocusNetPPConfig] = {
    "paper": FocusNetPPConfig(),
    "official": FocusNetPPConfig(
        widths=(48, 96, 156, 256, 512),
        enc_blocks=(1, 3, 3, 3, 2),
        group_width="in",
        se=False,
        feature_shortcut="conv",
        bottleneck_dropout=0.0,
        decoder_extra_convs=True,
        head_mid=(128, 64, 32, None),
        head_position="upsampled",
    ),
    "nuclei": FocusNetPPConfig(
        widths=(16, 32, 96, 232, 320),
        stem_width=16,
        head_mid=(96, 32, 16, 16),
        fusion_mid=16,
    ),
    "lite": FocusNetPPConfig(
        widths=(16, 32, 64, 96, 128),
        stem_width=16,
        head_mid=(64, 32, 16, 16),
        fusion_mid=16,
    ),
}


class _Head(nn.Module):
    """Per-scale output: Conv1x1-BN-LeakyReLU-Conv1x1-Sigmoid (or Conv1x1-Sigmoid with no mid)."""

    def __init__(self, channels: int, mid: int | None, cfg: FocusNetPPConfig) -> None:
        super().__init__()
        if mid is None:
            self.body: nn.Module = nn.Conv2d(channels, 1, 1)
        else:
            self.body = nn.Sequential(
                nn.Conv2d(channels, mid, 1),
                norm_layer(cfg.output_norm, mid, cfg.bn_momentum, cfg.bn_eps),
                nn.LeakyReLU(cfg.leaky_slope),
                nn.Conv2d(mid, 1, 1),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(x))

    def forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        """The head's logits (:meth:`forward` before its sigmoid) with 1x1 matrix products, eval
        BatchNorm folded, in-place activations."""
        body = self.body
        if isinstance(body, nn.Sequential):
            conv, bn, act, out = _conv_bn_act_conv(body)
            x = _conv_bn_lrelu(x, conv, bn, act.negative_slope, conv.weight.flatten(1))
        else:
            out = cast(nn.Conv2d, body)
        return conv1x1_cl(x, out.weight.flatten(1), out.bias)


def _conv_bn_act_conv(seq: nn.Sequential) -> tuple[nn.Conv2d, nn.Module, nn.LeakyReLU, nn.Conv2d]:
    """The layers of a head body or the fusion, typed (indexing an nn.Sequential gives an nn.Module;
    a BatchNorm that export folded is an nn.Identity)."""
    return cast(tuple[nn.Conv2d, nn.Module, nn.LeakyReLU, nn.Conv2d], tuple(seq))


def _stages(stages: nn.ModuleList) -> list[nn.Sequential]:
    """The encoder's or decoder's stages, typed: each an nn.Sequential of blocks."""
    return cast(list[nn.Sequential], list(stages))


def _plain_convs(channels: list[int]) -> nn.Sequential:
    """Conv3x3 + ReLU chain of the released decoder (``channels`` = [in, out1, out2, ...])."""
    layers: list[nn.Module] = []
    for cin, cout in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class FocusNetPP(nn.Module):
    """FocusNet++ encoder-decoder with ResGANet blocks and a multi-scale fused head.

    Args:
        in_channels: image channels (3 for RGB).
        num_classes: output channels (1 for binary segmentation).
        config: the architecture (see :data:`PRESETS`).

    Example:
        >>> model = FocusNetPP(config=PRESETS["lite"]).eval()
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 1, 64, 64])
    """

    stride = 16

    def __init__(self, in_channels: int = 3, num_classes: int = 1, config: FocusNetPPConfig = PRESETS["paper"]) -> None:
        super().__init__()
        cfg = config
        if len(cfg.widths) != 5 or len(cfg.enc_blocks) != 5 or len(cfg.dec_blocks) != 4 or len(cfg.head_mid) != 4:
            raise FocusNetError(
                "focusnetpp: widths and enc_blocks need 5 entries (4 encoder levels + bottleneck), "
                "dec_blocks and head_mid need 4"
            )
        self.config = cfg
        self.deep_supervision = cfg.deep_supervision
        self.in_channels = in_channels
        self.num_classes = num_classes

        def block(cin: int, cout: int) -> ResGANet:
            width = cout if cfg.group_width == "out" else cin
            return ResGANet(
                cin, cout, width, se=cfg.se, feature_shortcut=cfg.feature_shortcut,
                leaky_slope=cfg.leaky_slope, bn_momentum=cfg.bn_momentum, bn_eps=cfg.bn_eps, norm=cfg.norm,
                se_squeeze=cfg.se_squeeze, padding_mode=cfg.padding_mode,
            )

        self.stem = nn.Conv2d(
            in_channels, cfg.stem_width, cfg.stem_kernel, padding=cfg.stem_kernel // 2, padding_mode=cfg.padding_mode
        )
        self.encoder = nn.ModuleList()
        cin = cfg.stem_width
        for width, count in zip(cfg.widths, cfg.enc_blocks):
            stage = [block(cin, width)] + [block(width, width) for _ in range(count - 1)]
            self.encoder.append(nn.Sequential(*stage))
            cin = width
        self.dropout = nn.Dropout(cfg.bottleneck_dropout) if cfg.bottleneck_dropout > 0 else nn.Identity()

        dec_widths = list(reversed(cfg.widths[:4]))  # D4..D1
        self.decoder = nn.ModuleList()
        self.extra = nn.ModuleList()
        head_in: list[int] = []
        for level, (width, count) in enumerate(zip(dec_widths, cfg.dec_blocks)):
            stage = [block(cin, width)] + [block(width, width) for _ in range(count - 1)]
            self.decoder.append(nn.Sequential(*stage))
            if cfg.decoder_extra_convs:
                chain = [width, 16, 9, 3] if level == 3 else [width, width]
                self.extra.append(_plain_convs(chain))
                head_in.append(chain[-1])
            else:
                self.extra.append(nn.Identity())
                head_in.append(width)
            cin = width
        self.heads = nn.ModuleList(_Head(c, m, cfg) for c, m in zip(head_in, cfg.head_mid))
        self.fusion = nn.Sequential(
            nn.Conv2d(4, cfg.fusion_mid, 1),
            norm_layer(cfg.output_norm, cfg.fusion_mid, cfg.bn_momentum, cfg.bn_eps),
            nn.LeakyReLU(cfg.leaky_slope),
            nn.Conv2d(cfg.fusion_mid, num_classes, 1),
        )
        if cfg.keras_init:
            self._keras_init()

    def _keras_init(self) -> None:
        """Spec §2.2 row 18: glorot-uniform kernels, zero biases; he-normal for heads and SE."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:  # every convolution here has one
                    nn.init.zeros_(m.bias)
        for m in list(self.heads.modules()) + list(self.fusion.modules()):
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        for m in self.modules():
            if isinstance(m, SqueezeExcite):
                nn.init.kaiming_normal_(m.reduce.weight, nonlinearity="relu")
                nn.init.kaiming_normal_(m.expand.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._outputs(x)[0]

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The fused logits (what :meth:`forward` returns) and the four per-scale heads' logits,
        coarsest first, each nearest-upsampled to the output size: the outputs deep supervision
        trains (see ``deep_supervision``).

        Example:
            >>> model = focusnetpp("lite").eval()
            >>> [tuple(t.shape) for t in model.forward_all(torch.randn(1, 3, 32, 32))][:2]
            [(1, 1, 32, 32), (1, 1, 32, 32)]
        """
        return self._outputs(x, head_logits=True)

    def _outputs(self, x: torch.Tensor, head_logits: bool = False) -> list[torch.Tensor]:
        """The fused logits, then (``head_logits=True``) the heads' logits, by the execution
        :meth:`_strategy` picks for this call."""
        self._check_size(x)
        strategy = self._strategy(x)
        if strategy == "plain":
            return self._plain(x, head_logits)
        return self._fast(x, strategy, head_logits)

    def _check_size(self, x: torch.Tensor) -> None:
        h, w = x.shape[-2], x.shape[-1]
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()) and (h % 16 or w % 16):
            raise FocusNetError(
                f"focusnetpp: input height and width must be divisible by 16, got {h}x{w}; "
                "resize or pad the image"
            )

    def _strategy(self, x: torch.Tensor) -> Strategy:
        """The execution of every block of this call, chosen once (``plain`` if a decoder stage
        does not start with a ResGANet, which the fast forward's upsampling relies on)."""
        if not all(isinstance(stage[0], ResGANet) for stage in _stages(self.decoder)):
            return "plain"
        return choose_strategy(self, x)

    def _encode(self, x: torch.Tensor, strategy: Strategy | None = None) -> list[torch.Tensor]:
        """The encoder's output at every level (max-pool between levels), shallowest first."""
        skips = []
        for level, stage in enumerate(_stages(self.encoder)):
            if level > 0:
                x = F.max_pool2d(x, 2)
            if strategy is None:
                x = stage(x)
            else:
                for block in stage:
                    x = block.run(x, strategy) if isinstance(block, ResGANet) else block(x)
            skips.append(x)
        return skips

    def _merge_index(self, blocks: int) -> int:
        """The block of a decoder stage of ``blocks`` blocks after which the stage adds its encoder skip
        (``skip_merge``): the first, or the last (the paper's)."""
        return 0 if self.config.skip_merge == "after_first" else blocks - 1

    def _bottleneck_dropout(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout on the bottleneck, drawn on its NCHW-contiguous copy in training, so that every
        execution draws the same mask for the same seed whatever memory format its bottleneck came
        in (the plain path's is ``channels_last`` with BatchNorm, NCHW with InstanceNorm)."""
        if not self.training or isinstance(self.dropout, nn.Identity):
            return x
        return self.dropout(x.contiguous())

    def forward_fast(self, x: torch.Tensor, strategy: Strategy | None = None) -> torch.Tensor:
        """The same network as :meth:`forward_plain`, run by the fast (or fused) execution of
        :mod:`focusnet.models.resganet`: activations in ``channels_last``, the first block of each
        decoder stage takes the low-resolution input and upsamples after its input 1x1
        convolutions, 1x1 heads and fusion as matrix products, in-place additions where autograd
        allows. ``strategy``: ``fast`` or ``fused`` (default: what :meth:`_strategy` picks, at
        least ``fast``)."""
        return self._fast(x, strategy)[0]

    def _fast(self, x: torch.Tensor, strategy: Strategy | None, head_logits: bool = False) -> list[torch.Tensor]:
        """:meth:`forward_fast`'s fused logits, then (``head_logits=True``) the heads' upsampled logits."""
        if strategy is None or strategy == "plain":
            strategy = self._strategy(x)
            strategy = "fast" if strategy == "plain" else strategy
        grad = torch.is_grad_enabled()
        h = x.shape[-2]
        skips = self._encode(self.stem(x.contiguous(memory_format=torch.channels_last)), strategy)
        x = self._bottleneck_dropout(skips.pop()).contiguous(memory_format=torch.channels_last)
        outputs, logits = [], []
        native = self.config.head_position == "native"
        heads = cast(list[_Head], list(self.heads))
        for stage, extra, head, skip in zip(_stages(self.decoder), self.extra, heads, reversed(skips)):
            blocks = cast(list[ResGANet], list(stage))  # decoder stages are built of ResGANet blocks
            merge_at = self._merge_index(len(blocks))
            for i, block in enumerate(blocks):
                x = block.run(x, strategy, upsample=i == 0)
                if i == merge_at:
                    x = x + skip if grad else x.add_(skip)
            x = extra(x)
            factor, mode = h // x.shape[-2], self.config.head_upsample
            if native:  # logits at the head's resolution, then enlarged
                y = _upsample(head.forward_fast(x), factor, mode)
            else:
                up = _upsample(x, factor, mode).contiguous(memory_format=torch.channels_last)
                y = head.forward_fast(up)
            if head_logits:  # the loss needs the logits, the fusion their sigmoid
                logits.append(y.contiguous())
            y = torch.sigmoid(y)
            outputs.append(y)
        n, _, hh, ww = outputs[-1].shape
        z = torch.stack([o.reshape(n, hh, ww) for o in outputs], dim=-1).permute(0, 3, 1, 2)  # NHWC memory
        conv, bn, act, out = _conv_bn_act_conv(self.fusion)
        z = _conv_bn_lrelu(z, conv, bn, act.negative_slope, conv.weight.flatten(1))
        return [conv1x1_cl(z, out.weight.flatten(1), out.bias).contiguous(), *logits]

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The network layer by layer, as written (what is traced, exported and FLOP-counted)."""
        return self._plain(x)[0]

    def _plain(self, x: torch.Tensor, head_logits: bool = False) -> list[torch.Tensor]:
        """:meth:`forward_plain`'s fused logits, then (``head_logits=True``) the heads' upsampled logits."""
        h = x.shape[-2]
        skips = self._encode(self.stem(x))
        x = self._bottleneck_dropout(skips.pop())
        outputs, logits = [], []
        native = self.config.head_position == "native"
        heads = cast(list[_Head], list(self.heads))
        for stage, extra, head, skip in zip(_stages(self.decoder), self.extra, heads, reversed(skips)):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            merge_at = self._merge_index(len(stage))
            if merge_at == len(stage) - 1:  # the stage as one module, so hooks on it (figures) see its output
                x = stage(x) + skip
            else:
                x = stage[merge_at + 1 :](stage[: merge_at + 1](x) + skip)
            x = extra(x)
            factor, mode = h // x.shape[-2], self.config.head_upsample
            y = _upsample(head.body(x), factor, mode) if native else head.body(_upsample(x, factor, mode))
            if head_logits:
                logits.append(y)
            y = torch.sigmoid(y)
            outputs.append(y)
        return [self.fusion(torch.cat(outputs, dim=1)), *logits]


@register_model("focusnetpp", presets=tuple(PRESETS))
def focusnetpp(preset: str = "paper", in_channels: int = 3, num_classes: int = 1, **overrides) -> FocusNetPP:
    """Build FocusNet++ from a preset, with any config field overridden by keyword.

    Args:
        preset: ``"paper"`` (default), ``"official"`` or ``"lite"``.
        in_channels: image channels.
        num_classes: output channels (logits).
        **overrides: any field of :class:`FocusNetPPConfig`, e.g. ``se=False`` or ``widths=(...)``.

    Example:
        >>> m = focusnetpp("official")
        >>> sum(p.numel() for p in m.parameters() if p.requires_grad)
        7771723
    """
    if preset not in PRESETS:
        raise FocusNetError(f"unknown preset {preset!r} for model 'focusnetpp'; choose one of: {', '.join(PRESETS)}")
    allowed = set(asdict(PRESETS[preset]))
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise FocusNetError(
            f"focusnetpp: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    # option -> its vocabulary (head_norm may also stay unset: None)
    vocabularies = {"norm": NORMS, "head_norm": NORMS, "padding_mode": PADDING_MODES, "se_squeeze": SE_SQUEEZES,
                    "head_upsample": HEAD_UPSAMPLES, "skip_merge": SKIP_MERGES}
    for key, choices in vocabularies.items():
        if key in overrides and not (key == "head_norm" and overrides[key] is None) and overrides[key] not in choices:
            raise FocusNetError(f"focusnetpp: {key} must be one of {', '.join(choices)}; got {overrides[key]!r}")
    for key in ("widths", "enc_blocks", "dec_blocks", "head_mid"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    return FocusNetPP(in_channels, num_classes, replace(PRESETS[preset], **overrides))
