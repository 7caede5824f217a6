"""Behaviour of the U-Net-family baselines and their shared layers (Keras porting details).

Tiny widths (base 4) and inputs; the size and compute checks are in ``test_baseline_counts.py``
and the generic contract in ``test_all_models.py``.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.models import create_model
from focusnet.models.attention_unet import TFSameConvTranspose2d
from focusnet.models.layers import L2Conv2d, keras_init_, l2_penalty
from focusnet.models.unet import _UpConv


@pytest.fixture(scope="module", autouse=True)
def _one_intra_op_thread():
    """Tiny workloads: single-threaded avoids OpenMP spin-waiting on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("k", "s"), [(3, 2), (3, 1), (2, 2)])
def test_tf_same_conv_transpose_is_adjoint_of_tf_same_conv(k: int, s: int) -> None:
    """TF's 'same' Conv2DTranspose is the adjoint (gradient) of its 'same' Conv2D."""
    torch.manual_seed(0)
    up = TFSameConvTranspose2d(3, 5, k, stride=s)
    x = torch.randn(2, 3, 4, 6)
    n_h, n_w = 4 * s, 6 * s
    total = max(k - s, 0)  # TF 'same' padding of the forward conv at input n*s, stride s
    before, after = total // 2, total - total // 2

    def tf_same_conv(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(z, (before, after, before, after)), up.weight, stride=s)

    z = torch.zeros(2, 5, n_h, n_w, requires_grad=True)
    (adjoint,) = torch.autograd.grad(tf_same_conv(z), z, grad_outputs=x)
    expected = adjoint + up.bias[None, :, None, None]
    torch.testing.assert_close(up(x), expected)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_unet_up_conv_pads_bottom_right_like_tf() -> None:
    torch.manual_seed(0)
    up = _UpConv(3, 4)
    x = torch.randn(1, 3, 5, 7)
    upsampled = F.interpolate(x, scale_factor=2.0, mode="nearest")
    expected = F.relu(F.conv2d(upsampled, up.conv.weight, up.conv.bias, padding="same"))
    torch.testing.assert_close(up(x), expected)


def test_attention_gate_quirk_switch() -> None:
    quirk = create_model("attention_unet", base_width=4, authors_gate_quirk=True)
    plain = create_model("attention_unet", base_width=4)
    assert quirk.gate3.phi_up.stride == (2, 2) and quirk.gate3.phi.in_channels == 64
    assert plain.gate3.phi_up.stride == (1, 1) and plain.gate3.phi.in_channels == 32
    x = torch.randn(2, 3, 32, 48)
    for model in (quirk, plain):
        assert model.eval()(x).shape == (2, 1, 32, 48)


def test_unetpp_deep_supervision_heads_and_mean() -> None:
    torch.manual_seed(0)
    model = create_model("unetpp", base_width=4, deep_supervision=True).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        heads = model.forward_all(x)
        out = model(x)
    assert model.deep_supervision is True
    assert len(heads) == 4 and all(h.shape == (1, 1, 32, 32) for h in heads)
    torch.testing.assert_close(out, torch.stack(heads).mean(0))

    single = create_model("unetpp", base_width=4).eval()
    assert single.deep_supervision is False and len(single.heads) == 1
    with torch.no_grad():
        (only,) = single.forward_all(x)
        torch.testing.assert_close(single(x), only)


@pytest.mark.parametrize(("name", "n_regularised"), [("wide_unet", 19), ("unetpp", 31)])
def test_l2_penalty_covers_unit_and_head_kernels_only(name: str, n_regularised: int) -> None:
    model = create_model(name, base_width=4, l2=1e-4)
    kernels = [m.weight for m in model.modules() if isinstance(m, L2Conv2d)]
    assert len(kernels) == n_regularised  # 2 per standard_unit + the head; no ConvT, no bias
    expected = 1e-4 * sum(w.square().sum() for w in kernels)
    torch.testing.assert_close(model.l2_penalty(), expected)
    model.l2_penalty().backward()
    assert all(w.grad is not None for w in kernels)
    assert all(m.weight.grad is None for m in model.modules() if isinstance(m, nn.ConvTranspose2d))
    assert float(l2_penalty(create_model(name, base_width=4, l2=0.0))) == 0.0


def test_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    model = create_model("wide_unet", base_width=4)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(model.train()(x), model(x))
        assert torch.equal(model.eval()(x), model(x))


@pytest.mark.parametrize(("kind", "var"), [("he_normal", 2 / 900), ("glorot_normal", 2 / 1800)])
def test_keras_initialisers_keep_the_intended_variance(kind: str, var: float) -> None:
    torch.manual_seed(0)
    conv = keras_init_(nn.Conv2d(100, 100, 3), kind)  # fan_in = fan_out = 900
    assert conv.weight.var().item() == pytest.approx(var, rel=0.03)
    assert conv.weight.abs().max().item() <= 2 * (var**0.5) / 0.87962566103423978 + 1e-6
    assert float(conv.bias.detach().abs().sum()) == 0.0


def test_attention_unet_bn_momentum_sets_every_batchnorm() -> None:
    def momenta(model: nn.Module) -> set[float]:
        return {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}

    assert momenta(create_model("attention_unet", base_width=4)) == {0.01}  # Keras' 0.99
    assert momenta(create_model("attention_unet", base_width=4, bn_momentum=0.1)) == {0.1}
    with pytest.raises(ValueError, match="bn_momentum"):
        create_model("attention_unet", base_width=4, bn_momentum=0.0)
