"""BCDU-Net, FocusNet v1, R2U-Net and FCN-8s: parameter counts (spec §4.1, §4.7, §5.2), the
Keras-semantics ConvLSTM against a step-by-step reference, the authors' batch-statistics BN
flag of FocusNet v1, FCN's bilinear upsamplers, and (slow) forward MACs at 256²."""
from __future__ import annotations

import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.errors import FocusNetError
from focusnet.models import create_model
from focusnet.models._recurrent import ConvLSTM2d, RecurrentConvBlock, keras_hard_sigmoid
from focusnet.models.fcn import bilinear_kernel
from focusnet.models.focusnet import BatchStatBatchNorm2d
from focusnet.models.layers import L2Conv2d


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def on_meta(name: str, **kwargs: object) -> nn.Module:
    """Build on the meta device: counting (or FLOP-counting) needs no real weights."""
    with torch.device("meta"):
        return create_model(name, **kwargs)


# ------------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("bcdunet", {}, 20_659_973),  # spec §4.7 / Table 2's 20.66
        ("focusnet", {}, 19_063_933),  # spec §4.1
        ("focusnet", {"authors_batchnorm": True}, 19_063_933),
        ("r2unet", {}, 9_778_785),  # stated here: t = 2, widths 32..512
        ("r2unet", {"t": 3}, 9_778_785),  # recurrence shares weights
        ("r2unet", {"base_width": 64}, 39_091_393),  # the public reference's width
        ("fcn", {}, 20_490_211),  # stated here: BN, fc 1024 wide, 3x3 fc6
        ("fcn", {"batch_norm": False}, 20_485_987),
        ("fcn", {"batch_norm": False, "fc_width": 4096, "fc_kernel_size": 7}, 134_265_699),  # the paper's
    ],
    ids=lambda v: str(v),
)
def test_parameter_counts(name: str, kwargs: dict, expected: int) -> None:
    assert n_params(on_meta(name, **kwargs)) == expected


def test_focusnet_keras_total_and_regularised_kernels() -> None:
    model = on_meta("focusnet")
    bn_buffers = sum(2 * m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert n_params(model) + bn_buffers == 19_073_573  # Table 2's 19.07 (millions)
    # Spec §5.3: Table 2's "FLOPs" ≈ 5 per L2-regularised kernel weight + 2 per other random
    # kernel weight = 91.29M. That pins down which kernels carry the Keras l2 regulariser.
    l2 = sum(m.weight.numel() for m in model.modules() if isinstance(m, L2Conv2d))
    other = sum(p.numel() for p in model.parameters() if p.dim() > 1) - l2
    assert l2 == 17_735_728
    assert round((5 * l2 + 2 * other) / 1e6, 2) == 91.29


def test_bcdunet_keras_total() -> None:
    model = on_meta("bcdunet")
    bn_buffers = sum(2 * m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert n_params(model) + bn_buffers == 20_660_869  # spec §5.2 "Keras total"


def test_focusnet_l2_penalty_is_keras_sum() -> None:
    torch.manual_seed(0)
    model = create_model("focusnet", base_width=8)
    expected = sum(m.l2 * m.weight.pow(2).sum() for m in model.modules() if isinstance(m, L2Conv2d))
    lambdas = sorted({m.l2 for m in model.modules() if isinstance(m, L2Conv2d)})
    assert lambdas == [1e-4, 5e-4]
    penalty = model.l2_penalty()
    torch.testing.assert_close(penalty, expected)
    penalty.backward()
    assert model.initial[0].weight.grad is not None


# ---------------------------------------------------------------------------------- ConvLSTM
def reference_convlstm(
    lstm: ConvLSTM2d, frames: torch.Tensor, go_backwards: bool, sigma=keras_hard_sigmoid
) -> torch.Tensor:
    """Keras ConvLSTM2D, written out gate by gate with explicit zero initial states.

    Returns every hidden state (B, T, F, H, W) in processing order.
    """
    f = lstm.hidden_channels
    wx, bx, wh = lstm.input_conv.weight, lstm.input_conv.bias, lstm.recurrent_conv.weight
    gate = {name: slice(k * f, (k + 1) * f) for k, name in enumerate("ifco")}
    batch, steps, _, height, width = frames.shape
    h = torch.zeros(batch, f, height, width)
    c = torch.zeros(batch, f, height, width)
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    hs = []
    for t in order:
        x = frames[:, t]

        def pre(name: str) -> torch.Tensor:
            s = gate[name]
            return F.conv2d(x, wx[s], bx[s], padding=1) + F.conv2d(h, wh[s], padding=1)

        i, fg, g, o = sigma(pre("i")), sigma(pre("f")), torch.tanh(pre("c")), sigma(pre("o"))
        c = fg * c + i * g
        h = o * torch.tanh(c)
        hs.append(h)
    return torch.stack(hs, dim=1)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_convlstm_matches_stepwise_reference(go_backwards: bool) -> None:
    torch.manual_seed(0)
    lstm = ConvLSTM2d(3, 4, go_backwards=go_backwards)
    with torch.no_grad():  # non-trivial bias so every gate term matters
        lstm.input_conv.bias.normal_()
    frames = torch.randn(2, 3, 3, 8, 6)
    with torch.no_grad():
        expected = reference_convlstm(lstm, frames, go_backwards)
        torch.testing.assert_close(lstm(frames), expected[:, -1])
        torch.testing.assert_close(lstm(list(frames.unbind(1))), expected[:, -1])  # sequence input
        lstm.return_sequences = True
        torch.testing.assert_close(lstm(frames), expected)


def test_convlstm_sigmoid_option_and_defaults() -> None:
    torch.manual_seed(0)
    lstm = ConvLSTM2d(2, 3, recurrent_activation="sigmoid")
    frames = torch.randn(1, 2, 2, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(lstm(frames), reference_convlstm(lstm, frames, False, torch.sigmoid)[:, -1])
    # Keras hard_sigmoid is clip(0.2x + 0.5, 0, 1), not torch's Hardsigmoid (slope 1/6).
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.5, 4.0])
    torch.testing.assert_close(keras_hard_sigmoid(x), torch.tensor([0.0, 0.3, 0.5, 0.7, 1.0, 1.0]))
    # unit_forget_bias: forget gate starts at 1, the rest at 0; recurrent kernel is orthogonal.
    assert lstm.input_conv.bias.tolist() == [0.0] * 3 + [1.0] * 3 + [0.0] * 6
    rk = lstm.recurrent_conv.weight.reshape(12, -1)
    torch.testing.assert_close(rk @ rk.T, torch.eye(12), atol=1e-5, rtol=0)
    assert lstm.recurrent_conv.bias is None
    with pytest.raises(FocusNetError, match="recurrent_activation"):
        ConvLSTM2d(2, 3, recurrent_activation="relu")


def test_recurrent_conv_block_unrolling() -> None:
    torch.manual_seed(0)
    block = RecurrentConvBlock(4, t=2).eval()
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        y = block.conv(x)
        for _ in range(2):
            y = block.conv(x + y)
        torch.testing.assert_close(block(x), y)


# ------------------------------------------------------------- FocusNet v1 authors' BatchNorm
def test_batch_stat_batchnorm_uses_batch_statistics_in_eval() -> None:
    torch.manual_seed(0)
    bn = BatchStatBatchNorm2d(3, momentum=0.01, eps=1e-3)
    x = torch.randn(4, 3, 5, 5) * 3 + 2
    bn.eval()
    torch.testing.assert_close(bn(x), F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, 1e-3))
    assert torch.equal(bn.running_mean, torch.zeros(3))  # eval: no running-stat update
    bn.train()
    bn(x)
    assert not torch.equal(bn.running_mean, torch.zeros(3))  # train: updated as usual


@pytest.mark.parametrize("authors_batchnorm", [False, True])
def test_focusnet_authors_batchnorm_batch_dependence(authors_batchnorm: bool) -> None:
    torch.manual_seed(0)
    model = create_model("focusnet", base_width=8, authors_batchnorm=authors_batchnorm)
    # Non-trivial running statistics, so that standard eval-mode BN is not an identity.
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    model.eval()
    a, b, c = torch.randn(3, 1, 3, 64, 64).unbind(0)
    with torch.no_grad():
        with_b = model(torch.cat([a, b]))[0]
        with_c = model(torch.cat([a, c]))[0]
    n_batch_stat = sum(isinstance(m, BatchStatBatchNorm2d) for m in model.modules())
    if authors_batchnorm:
        # Every residual-block BN and the 7x7 stem BN; the 3x3 initial block keeps standard BN.
        assert n_batch_stat == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) - 1
        assert not torch.allclose(with_b, with_c, atol=1e-4)
    else:
        assert n_batch_stat == 0
        torch.testing.assert_close(with_b, with_c, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("bcdunet", {"base_width": 8}),
        ("focusnet", {"base_width": 8}),
        ("r2unet", {"base_width": 4}),
        ("fcn", {"base_width": 8, "fc_width": 16}),
    ],
)
def test_multiclass_and_channels(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, num_classes=3, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 64, 96))
    assert out.shape == (1, 3, 64, 96)


@pytest.mark.parametrize(
    "name, kwargs, hw, stride",
    [
        ("bcdunet", {"base_width": 8}, (64, 36), 8),
        ("focusnet", {"base_width": 8}, (40, 64), 16),
        ("r2unet", {"base_width": 4}, (64, 40), 16),
        ("fcn", {"base_width": 8, "fc_width": 16}, (64, 48), 32),
    ],
)
def test_input_size_message_names_stride(name: str, kwargs: dict, hw: tuple[int, int], stride: int) -> None:
    model = create_model(name, **kwargs).eval()
    message = rf"{name}: input height and width must be divisible by {stride}, got {hw[0]}x{hw[1]}"
    with torch.no_grad(), pytest.raises(FocusNetError, match=message):
        model(torch.zeros(1, 3, *hw))


def test_bcdunet_accepts_multiples_of_8() -> None:
    model = create_model("bcdunet", base_width=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 24, 40)).shape == (1, 1, 24, 40)


# ----------------------------------------------------------------------------------- FCN-8s
def test_fcn_upsamplers_start_bilinear() -> None:
    model = create_model("fcn", num_classes=2, base_width=4, fc_width=8)
    up8 = model.upscore8
    assert (up8.kernel_size, up8.stride, up8.padding, up8.bias) == ((16, 16), (8, 8), (4, 4), None)
    assert torch.equal(up8.weight[0, 1], torch.zeros(16, 16))  # no cross-class mixing
    torch.testing.assert_close(bilinear_kernel(4)[1], torch.tensor([0.1875, 0.5625, 0.5625, 0.1875]))
    # Away from the border the transposed convs are exactly bilinear interpolation.
    x = torch.randn(1, 2, 6, 7)
    with torch.no_grad():
        for layer, factor in ((model.upscore2, 2), (up8, 8)):
            got = layer(x)
            want = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
            assert got.shape == want.shape
            m = factor  # one input pixel of margin
            torch.testing.assert_close(got[..., m:-m, m:-m], want[..., m:-m, m:-m])


# ------------------------------------------------------------------------------ slow: MACs
@pytest.mark.slow
@pytest.mark.parametrize(
    "name, gmacs",
    [("focusnet", 70.03), ("bcdunet", 74.3), ("r2unet", 38.13), ("fcn", 20.41)],
)
def test_forward_gmacs_at_256(name: str, gmacs: float) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    start = time.perf_counter()
    model = on_meta(name).eval()
    x = torch.empty(1, 3, 256, 256, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    measured = counter.get_total_flops() / 2 / 1e9  # MACs = FLOPs / 2
    assert measured == pytest.approx(gmacs, rel=0.02)
    assert time.perf_counter() - start < 60
