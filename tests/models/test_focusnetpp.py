"""FocusNet++: parameter counts from the implementation spec (§1.2, §2.1, §5.2), shapes, options and
errors. The block's executions against the reference: tests/models/test_resganet.py."""
from __future__ import annotations

import pytest
import torch

from focusnet.errors import FocusNetError
from focusnet.models import create_model
from focusnet.models.focusnetpp import PRESETS, FocusNetPP
from focusnet.models.resganet import ResGANet
from focusnet.models.resganet.execution import fast_path

PRESET_COUNTS = {"paper": 1_487_941, "official": 7_771_723, "lite": 377_381, "nuclei": 1_832_157}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("preset, expected", sorted(PRESET_COUNTS.items()))
def test_preset_parameter_counts(preset: str, expected: int) -> None:
    assert n_params(create_model("focusnetpp", preset=preset)) == expected


def test_official_keras_total_counts_bn_buffers() -> None:
    model = create_model("focusnetpp", preset="official")
    bn_buffers = sum(m.running_mean.numel() * 2 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert n_params(model) + bn_buffers == 7_803_739  # Table 2's 7.80 (millions)


def test_official_with_se_and_paper_variants() -> None:
    assert n_params(create_model("focusnetpp", preset="official", se=True)) == 7_886_443
    assert n_params(create_model("focusnetpp", se=False)) == 1_465_157
    assert n_params(create_model("focusnetpp", feature_shortcut="conv")) == 1_512_357
    assert n_params(create_model("focusnetpp", group_width="in")) == 1_487_941


# Spec §1.2: paper preset, w = C_out, SE, identity feature shortcut.
PAPER_BLOCKS = [
    ((32, 32), 7_600), ((32, 64), 29_728), ((64, 128), 116_800), ((128, 192), 273_504),
    ((192, 256), 495_744), ((256, 192), 322_656), ((192, 128), 149_568), ((128, 64), 42_016),
    ((64, 32), 10_768),
]


@pytest.mark.parametrize("channels, expected", PAPER_BLOCKS)
def test_paper_block_counts(channels: tuple[int, int], expected: int) -> None:
    cin, cout = channels
    assert n_params(ResGANet(cin, cout, width=cout, se=True, feature_shortcut="identity")) == expected


def test_paper_model_blocks_in_order() -> None:
    model = create_model("focusnetpp")
    blocks = [b for b in model.modules() if isinstance(b, ResGANet)]
    assert [n_params(b) for b in blocks] == [c for _, c in PAPER_BLOCKS]


# Spec §2.1: released code, w = C_in, no SE, conv feature shortcut.
OFFICIAL_BLOCKS = {
    (32, 48): 9_888, (48, 96): 24_192, (96, 96): 65_952, (96, 156): 87_336, (156, 156): 172_692,
    (156, 256): 229_296, (256, 256): 462_592, (256, 512): 661_504, (512, 512): 1_842_688,
    (512, 256): 1_842_688, (256, 156): 477_096, (156, 96): 178_416, (96, 48): 65_952,
}


@pytest.mark.parametrize("channels, expected", list(OFFICIAL_BLOCKS.items()))
def test_official_block_counts(channels: tuple[int, int], expected: int) -> None:
    cin, cout = channels
    block = ResGANet(cin, cout, width=cin, se=False, feature_shortcut="conv", project=cin != cout or None)
    assert n_params(block) == expected


def test_official_blocks_sum() -> None:
    model = create_model("focusnetpp", preset="official")
    blocks = [b for b in model.modules() if isinstance(b, ResGANet)]
    assert len(blocks) == 12 + 4
    assert sum(n_params(b) for b in blocks) == 6_821_528


@pytest.mark.parametrize("preset", list(PRESETS))
def test_forward_shapes_and_logits(preset: str) -> None:
    model = create_model("focusnetpp", preset=preset).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 48))
    assert out.shape == (1, 1, 32, 48)
    assert torch.isfinite(out).all()


def test_head_position_native_equals_upsampled() -> None:
    """Spec §1.3: 1x1 heads before or after nearest upsampling are the same maths."""
    torch.manual_seed(0)
    native = create_model("focusnetpp", preset="lite")
    upsampled = create_model("focusnetpp", preset="lite", head_position="upsampled")
    upsampled.load_state_dict(native.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for mode in (True, False):
        native.train(mode)
        upsampled.train(mode)
        torch.manual_seed(1)
        a = native(x)
        torch.manual_seed(1)
        b = upsampled(x)
        assert torch.allclose(a, b, atol=2e-4), (a - b).abs().max()


def test_bad_input_size_is_a_clear_error() -> None:
    model = create_model("focusnetpp", preset="lite")
    with pytest.raises(FocusNetError, match="divisible by 16, got 30x32"):
        model(torch.randn(1, 3, 30, 32))


def test_unknown_preset_and_option() -> None:
    with pytest.raises(FocusNetError, match="unknown preset 'huge'"):
        create_model("focusnetpp", preset="huge")
    with pytest.raises(FocusNetError, match="unknown option"):
        create_model("focusnetpp", width_multiplier=2)


def test_every_spec_field_is_a_keyword() -> None:
    model = create_model(
        "focusnetpp", widths=(8, 16, 16, 24, 32), enc_blocks=(1, 2, 1, 1, 1), dec_blocks=(1, 1, 2, 1),
        group_width="in", se=False, feature_shortcut="conv", bottleneck_dropout=0.2,
        decoder_extra_convs=True, head_mid=(16, 8, 8, None), head_position="upsampled",
        stem_kernel=3, stem_width=8, leaky_slope=0.1, bn_momentum=0.1, bn_eps=1e-5,
    )
    assert isinstance(model, FocusNetPP)
    assert model.config.leaky_slope == 0.1
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1, 32, 32)


def test_complexity_command_reports_paper_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from focusnet.cli import main

    assert main(["complexity", "focusnetpp", "--preset", "paper", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["params"] == 1_487_941
    assert abs(result["macs"] / 1e9 - 4.35) < 0.01
    assert main(["complexity", "focusnetpp", "--preset", "official", "--json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["macs"] / 1e9 - 24.18) < 0.02


def test_instance_norm_option() -> None:
    """``norm="instance"`` swaps every BatchNorm for a per-image InstanceNorm with the same affine
    parameters (so the parameter count is unchanged), and a batch member's output does not depend on
    the other images of its batch, in training as in evaluation."""
    batch = create_model("focusnetpp", preset="lite")
    inst = create_model("focusnetpp", preset="lite", norm="instance", bottleneck_dropout=0.0)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in inst.modules())
    count = sum(isinstance(m, torch.nn.InstanceNorm2d) for m in inst.modules())
    assert count == sum(isinstance(m, torch.nn.BatchNorm2d) for m in batch.modules()) > 0
    assert sum(p.numel() for p in inst.parameters()) == sum(p.numel() for p in batch.parameters())
    x = torch.rand(3, 3, 32, 32)
    for train in (True, False):
        inst.train(train)
        with torch.no_grad():
            alone, together = inst(x[:1]), inst(x)[:1]
        # same arithmetic on fewer images: equal to float rounding of the logits' magnitude
        assert torch.allclose(alone, together, rtol=1e-4, atol=1e-4 * float(together.abs().max())), train
    with pytest.raises(FocusNetError, match="norm must be one of batch, instance"):
        create_model("focusnetpp", preset="lite", norm="group")


def test_head_norm_option() -> None:
    """``head_norm="batch"`` with ``norm="instance"``: the heads' and the fusion's norms are BatchNorms
    (one per head with a mid layer, one in the fusion), every block's an InstanceNorm; the parameter
    count is unchanged, and the fast and layer-by-layer executions agree in float64 in training and
    evaluation. ``head_norm=None`` (the default) follows ``norm``."""
    torch.manual_seed(0)
    model = create_model(
        "focusnetpp", preset="lite", norm="instance", head_norm="batch", bottleneck_dropout=0.0, bn_momentum=0.1
    ).double()
    output_path = list(model.heads.modules()) + list(model.fusion.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in output_path) == 5
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 5
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in output_path)
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in model.encoder.modules())
    assert n_params(model) == PRESET_COUNTS["lite"]
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for train in (True, False):
        model.train(train)
        with torch.no_grad():
            fast = model.forward_fast(x)
            with fast_path(False):  # the blocks too, which forward_plain calls as modules
                plain = model.forward_plain(x)
        # float64 rounding over a few hundred terms, scaled to the logits' size
        assert torch.allclose(fast, plain, rtol=0, atol=1e-9 * (1 + float(plain.abs().max()))), train
    default = create_model("focusnetpp", preset="lite", norm="instance")
    assert isinstance(default.fusion[1], torch.nn.InstanceNorm2d) and default.config.output_norm == "instance"
    with pytest.raises(FocusNetError, match="norm must be one of batch, instance; got None"):
        create_model("focusnetpp", preset="lite", norm=None)
    with pytest.raises(FocusNetError, match="head_norm must be one of batch, instance"):
        create_model("focusnetpp", preset="lite", head_norm="layer")


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_padding_mode_option(norm: str) -> None:
    """``padding_mode="reflect"``: the stem and every 3x3 trunk convolution pad by reflection (the 1x1
    ones pad nothing), with the preset's parameter count. In inference (BatchNorm folded into the
    convolutions) the fast execution agrees with the layer-by-layer one in float64. What the option is
    for: a constant image gives a constant prediction (no border artefact), which zero padding does
    not. (Training: ``tests/models/test_resganet.py``.)"""
    torch.manual_seed(0)
    kwargs = {"norm": norm, "bottleneck_dropout": 0.0, "bn_momentum": 0.1}
    model = create_model("focusnetpp", preset="lite", padding_mode="reflect", **kwargs).double()
    spatial = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert spatial and all(m.padding_mode == "reflect" for m in spatial)
    assert n_params(model) == PRESET_COUNTS["lite"]
    model.train()
    model(torch.randn(4, 3, 32, 32, dtype=torch.float64))  # running statistics away from their start
    model.eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        fast = model.forward_fast(x)
        with fast_path(False):
            plain = model.forward_plain(x)
    # float64 rounding over a few hundred terms, scaled to the logits' size
    assert torch.allclose(fast, plain, rtol=0, atol=1e-9 * (1 + float(plain.abs().max())))
    flat = torch.full((1, 3, 32, 32), 0.7, dtype=torch.float64)
    zeros = create_model("focusnetpp", preset="lite", **kwargs).double().eval()
    zeros.load_state_dict(model.state_dict())
    with torch.no_grad():
        reflect_out, zeros_out = model(flat), zeros(flat)
    assert float(reflect_out.max() - reflect_out.min()) <= 1e-9 * (1 + float(reflect_out.abs().max()))
    assert float(zeros_out.max() - zeros_out.min()) > 1e-3  # zero padding darkens the border
    with pytest.raises(FocusNetError, match="padding_mode must be one of zeros, reflect, replicate"):
        create_model("focusnetpp", preset="lite", padding_mode="circular")


@pytest.mark.parametrize("preset, norm", [("lite", "batch"), ("lite", "instance"), ("official", "batch")])
def test_deep_supervision_outputs_are_the_heads_logits(preset: str, norm: str) -> None:
    """``forward_all`` returns the fused logits (``forward``'s) and each head's logits, upsampled:
    their sigmoids are what the fusion takes. Fast and layer-by-layer executions agree in float64,
    in training (batch statistics) and evaluation; the option adds no parameter."""
    torch.manual_seed(0)
    model = create_model("focusnetpp", preset=preset, norm=norm, bottleneck_dropout=0.0, deep_supervision=True).double()
    assert model.deep_supervision is True and n_params(model) == PRESET_COUNTS[preset]
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for train in (True, False):
        model.train(train)
        with torch.no_grad():
            fast, plain = model._fast(x, None, head_logits=True), model._plain(x, head_logits=True)
            everything, single = model.forward_all(x), model(x)
        assert len(fast) == len(plain) == len(everything) == 5
        assert all(t.shape == (2, 1, 32, 32) for t in everything)
        for a, b in zip(fast, plain):
            # float64 rounding over a few hundred terms, scaled to the logits' size
            assert torch.allclose(a, b, rtol=0, atol=1e-9 * (1 + float(b.abs().max()))), train
        assert torch.allclose(single, fast[0], rtol=0, atol=1e-9 * (1 + float(fast[0].abs().max())))
        # the fusion's input is the heads' sigmoids: recompute the fused logits from the head logits
        with torch.no_grad():
            fused = model.fusion(torch.cat([torch.sigmoid(t) for t in plain[1:]], dim=1))
        assert torch.allclose(fused, plain[0], rtol=0, atol=1e-9 * (1 + float(fused.abs().max()))), train
    # the coarsest head works at 1/8 of the input: nearest upsampling repeats each value over 8x8 pixels
    coarse = everything[1]
    assert torch.equal(coarse, coarse[..., ::8, ::8].repeat_interleave(8, -2).repeat_interleave(8, -1))
    assert create_model("focusnetpp", preset="lite").deep_supervision is False


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_executions_draw_the_same_bottleneck_dropout_mask(norm: str) -> None:
    """In training, the fast and the layer-by-layer executions draw the same dropout mask for the same
    seed, although their bottlenecks come in different memory formats (at 64² the layer-by-layer
    one is ``channels_last`` with BatchNorm, NCHW with InstanceNorm). float64: the two executions
    then differ by rounding only (~1e-14 of logits of order 1); a different mask moves them by ~1."""
    torch.manual_seed(0)
    model = create_model("focusnetpp", preset="lite", norm=norm).double().train()
    assert model.config.bottleneck_dropout > 0
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.manual_seed(1)
        plain = model.forward_plain(x)
        torch.manual_seed(1)
        fast = model.forward_fast(x)
        torch.manual_seed(2)
        other_mask = model.forward_plain(x)
    scale = float(plain.abs().max())
    assert (other_mask - plain).abs().max() > 1e-3 * scale  # the mask matters at this size
    assert torch.allclose(fast, plain, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("preset", ["lite", "official"])
def test_head_upsample_option(preset: str) -> None:
    """``head_upsample="bilinear"``: the coarse maps reach the output size by bilinear interpolation, with
    the preset's parameter count. Natively placed heads (``lite``): each head's logits are the nearest
    model's coarse logits interpolated bilinearly; fast and layer-by-layer executions agree in float64 in
    training and evaluation, and the fusion still takes the sigmoids of the heads' logits."""
    torch.manual_seed(0)
    kwargs = {"bottleneck_dropout": 0.0, "deep_supervision": True}
    model = create_model("focusnetpp", preset=preset, head_upsample="bilinear", **kwargs).double()
    assert n_params(model) == PRESET_COUNTS[preset]
    nearest = create_model("focusnetpp", preset=preset, **kwargs).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for train in (True, False):
        nearest.load_state_dict(model.state_dict())  # training steps moved the running statistics
        model.train(train)
        nearest.train(train)
        with torch.no_grad():
            fast, plain = model._fast(x, None, head_logits=True), model._plain(x, head_logits=True)
            blocky = nearest._plain(x, head_logits=True)
        for a, b in zip(fast, plain):
            # float64 rounding over a few hundred terms, scaled to the logits' size
            assert torch.allclose(a, b, rtol=0, atol=1e-9 * (1 + float(b.abs().max()))), train
        with torch.no_grad():
            fused = model.fusion(torch.cat([torch.sigmoid(t) for t in plain[1:]], dim=1))
        assert torch.allclose(fused, plain[0], rtol=0, atol=1e-9 * (1 + float(fused.abs().max()))), train
        if preset == "lite" and not train:  # evaluation: each head sees the same features in both models
            for i, factor in enumerate((8, 4, 2), start=1):
                small = blocky[i][..., ::factor, ::factor]
                smooth = torch.nn.functional.interpolate(small, scale_factor=float(factor), mode="bilinear")
                assert torch.allclose(plain[i], smooth, rtol=0, atol=1e-12 * (1 + float(smooth.abs().max())))
                assert not torch.equal(plain[i], blocky[i])
            assert torch.equal(plain[4], blocky[4])  # the finest head is at the output size already
    with pytest.raises(FocusNetError, match="head_upsample must be one of nearest, bilinear"):
        create_model("focusnetpp", preset="lite", head_upsample="bicubic")


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_skip_merge_option(norm: str) -> None:
    """``skip_merge="after_first"``: a decoder stage adds its skip after its first block, so its second
    block convolves the merged features. The finest level by hand: ``D1 = b2(b1(up(D2)) + E1)``; the fast
    (and, with BatchNorm in evaluation, fused) execution agrees with the layer-by-layer one in float64 in
    training and evaluation; with one block per stage both orders are the same network."""
    torch.manual_seed(0)
    kwargs = {"norm": norm, "bottleneck_dropout": 0.0, "bn_momentum": 0.1, "dec_blocks": (1, 1, 1, 2)}
    model = create_model("focusnetpp", preset="lite", skip_merge="after_first", **kwargs).double()
    paper_order = create_model("focusnetpp", preset="lite", **kwargs).double()
    paper_order.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for train in (True, False):
        model.train(train)
        with torch.no_grad():
            fast, plain = model._fast(x, None, head_logits=True), model._plain(x, head_logits=True)
        for a, b in zip(fast, plain):
            # float64 rounding over a few hundred terms, scaled to the logits' size
            assert torch.allclose(a, b, rtol=0, atol=1e-9 * (1 + float(b.abs().max()))), train
    model.eval()
    paper_order.eval()
    feats: dict[str, torch.Tensor] = {}
    hooks = [model.decoder[3][1].register_forward_hook(lambda m, i, o: feats.update(d1_in=i[0])),
             model.decoder[3][0].register_forward_hook(lambda m, i, o: feats.update(b1=o)),
             model.encoder[0].register_forward_hook(lambda m, i, o: feats.update(e1=o))]
    with torch.no_grad(), fast_path(False):
        merged = model(x)
        assert torch.allclose(feats["d1_in"], feats["b1"] + feats["e1"], rtol=0, atol=0)
        assert not torch.allclose(merged, paper_order(x), rtol=0, atol=1e-6)
    for hook in hooks:
        hook.remove()
    single = {**kwargs, "dec_blocks": (1, 1, 1, 1)}
    a = create_model("focusnetpp", preset="lite", skip_merge="after_first", **single).double().eval()
    b = create_model("focusnetpp", preset="lite", **single).double().eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    with pytest.raises(FocusNetError, match="skip_merge must be one of after_stage, after_first"):
        create_model("focusnetpp", preset="lite", skip_merge="before")
