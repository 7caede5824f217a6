"""The hybrid adaptive logarithmic loss against spec section 3.5 and an independent numpy version; Dice + CE
against MONAI's; the loss factory."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from focusnet.errors import FocusNetError
from focusnet.losses import (
    LOSSES,
    ALLHybridLoss,
    DiceCELoss,
    adaptive_log,
    adaptive_log_offset,
    balanced_cross_entropy,
    create_loss,
    hybrid_loss,
    tversky_loss,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: intra-op threads only add contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Spec 3.5 table: (HL, ALL(HL), dALL/dHL, decimals printed for the slope).
SPEC_TABLE = [
    (0.0, 0.0, 20.0, 1),
    (0.01, 0.198026, 19.6078, 4),
    (0.05, 0.953102, 18.1818, 4),
    (0.1 - 1e-7, 1.823214, 16.6667, 4),
    (0.1, 1.823216, 1.0, 1),
    (0.2, 1.923216, 1.0, 1),
    (0.5, 2.223216, 1.0, 1),
    (1.0, 2.723216, 1.0, 1),
]


def _value_and_slope(x: float) -> tuple[float, float]:
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = adaptive_log(t)
    (grad,) = torch.autograd.grad(y, t)
    return y.item(), grad.item()


def test_offset_constant():
    assert adaptive_log_offset() == pytest.approx(-1.7232155679, abs=1e-10)


@pytest.mark.parametrize("x, value, slope, decimals", SPEC_TABLE)
def test_adaptive_log_spec_table(x, value, slope, decimals):
    got_value, got_slope = _value_and_slope(x)
    assert got_value == pytest.approx(value, abs=1e-5)
    # The exact slope of each branch, to 1e-5 ...
    exact = 10.0 / (0.5 + x) if x < 0.1 else 1.0
    assert got_slope == pytest.approx(exact, abs=1e-5)
    # ... and the table's printed slope, to the precision it is printed with.
    assert got_slope == pytest.approx(slope, abs=0.5 * 10.0**-decimals + 1e-9)


def test_right_derivative_at_zero_is_twenty():
    _, slope = _value_and_slope(0.0)
    assert slope == pytest.approx(20.0, abs=1e-12)


def test_adaptive_log_continuous_at_gamma():
    below, slope_below = _value_and_slope(0.1 - 1e-12)
    at, slope_at = _value_and_slope(0.1)
    assert below == pytest.approx(at, abs=1e-9)
    assert at == pytest.approx(10 * math.log(1.2), abs=1e-12)
    assert (slope_below, slope_at) == (pytest.approx(10 / 0.6), 1.0)


def _logits_for(probs: np.ndarray) -> torch.Tensor:
    """float64 logits whose sigmoid is the given probability."""
    return torch.from_numpy(np.log(probs) - np.log1p(-probs))


def _uniform_case(fg_fraction: float, p_fg: float, p_bg: float, n: int = 20_000):
    target = np.zeros((1, 1, 1, n))
    target[..., : int(round(fg_fraction * n))] = 1.0
    probs = np.where(target > 0, p_fg, p_bg)
    return _logits_for(probs), torch.from_numpy(target)


@pytest.mark.parametrize(
    "fg_fraction, p_fg, p_bg, cb, tl, hl, all_value, slope",
    [
        (0.2, 0.5, 0.5, 0.263396, 0.655172, 0.459284, 2.182500, 1.0),
        (0.5, 0.5, 0.5, 0.346574, 0.5, 0.423287, 2.146502, 1.0),
        (0.2, 0.99, 0.01, 0.003819, 0.018831, 0.011325, 0.223970, 19.557),
    ],
)
def test_end_to_end_spec_examples(fg_fraction, p_fg, p_bg, cb, tl, hl, all_value, slope):
    logits, target = _uniform_case(fg_fraction, p_fg, p_bg)
    assert balanced_cross_entropy(logits, target).item() == pytest.approx(cb, abs=1e-5)
    assert tversky_loss(torch.sigmoid(logits), target, smooth=0.0).item() == pytest.approx(tl, abs=1e-5)
    got_hl = hybrid_loss(logits, target, smooth=0.0)
    assert got_hl.item() == pytest.approx(hl, abs=1e-5)
    for reduction in ("batch", "image"):
        loss = ALLHybridLoss(smooth=0.0, reduction=reduction)(logits, target)
        assert loss.item() == pytest.approx(all_value, abs=1e-5)
    hl_leaf = got_hl.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(adaptive_log(hl_leaf), hl_leaf)
    assert grad.item() == pytest.approx(slope, abs=1e-3)
    # With the default s = 1 and this many pixels the smoothing is negligible.
    assert ALLHybridLoss()(logits, target).item() == pytest.approx(all_value, abs=1e-3)


def _numpy_all_hybrid(logits: np.ndarray, target: np.ndarray, reduction: str) -> float:
    """An independent plain-numpy ALL-HL: probabilities, logs and sums written out by hand."""
    omega_pos, k, alpha, beta, s = 0.7, 0.5, 0.3, 0.7, 1.0
    gamma, w, eps = 0.1, 10.0, 0.5
    probs = 1.0 / (1.0 + np.exp(-logits))

    def hl_of(p_hat: np.ndarray, p: np.ndarray) -> float:
        cb = -np.mean(omega_pos * p * np.log(p_hat) + (1 - omega_pos) * (1 - p) * np.log(1 - p_hat))
        tp, fp, fn = np.sum(p_hat * p), np.sum(p_hat * (1 - p)), np.sum((1 - p_hat) * p)
        tl = 1 - (tp + s) / (tp + alpha * fp + beta * fn + s)
        return k * cb + (1 - k) * tl

    def all_of(x: float) -> float:
        c = gamma - w * np.log(1 + gamma / eps)
        return w * np.log(1 + x / eps) if x < gamma else x - c

    if reduction == "batch":
        return all_of(hl_of(probs, target))
    return float(np.mean([all_of(hl_of(probs[b], target[b])) for b in range(len(logits))]))


@pytest.mark.parametrize("reduction", ["batch", "image"])
def test_matches_independent_numpy(reduction):
    rng = np.random.default_rng(0)
    target = (rng.random((3, 1, 16, 16)) < rng.random((3, 1, 1, 1))).astype(np.float64)
    logits = rng.normal(0.0, 2.0, size=target.shape) + 3.0 * (target - 0.5)
    expected = _numpy_all_hybrid(logits, target, reduction)
    got64 = ALLHybridLoss(reduction=reduction)(torch.from_numpy(logits), torch.from_numpy(target))
    assert got64.item() == pytest.approx(expected, abs=1e-10)
    got32 = ALLHybridLoss(reduction=reduction)(torch.from_numpy(logits).float(), torch.from_numpy(target) > 0)
    assert got32.dtype == torch.float32
    assert got32.item() == pytest.approx(expected, abs=1e-5)


def test_image_and_batch_reduction_differ_when_images_differ():
    target = torch.zeros(2, 1, 8, 8)
    target[0, :, :4] = 1  # half foreground, predicted well
    target[1, :, :1] = 1  # a sliver, predicted badly
    logits = torch.where(target > 0, 4.0, -4.0)
    logits[1] = 0.0
    batch = ALLHybridLoss(reduction="batch")(logits, target)
    image = ALLHybridLoss(reduction="image")(logits, target)
    assert not torch.isclose(batch, image, atol=1e-3)
    # Identical images: both reductions agree (with s = 0; s is added once per reduction set).
    same_t, same_l = target[:1].repeat(2, 1, 1, 1), logits[:1].repeat(2, 1, 1, 1)
    assert torch.isclose(
        ALLHybridLoss(smooth=0.0, reduction="batch")(same_l, same_t),
        ALLHybridLoss(smooth=0.0, reduction="image")(same_l, same_t),
    )


@pytest.mark.parametrize("reduction", ["batch", "image"])
@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("scale", [1.0, 60.0])
def test_empty_and_full_masks_are_finite(reduction, fill, scale):
    target = torch.full((2, 1, 8, 8), fill)
    logits = (scale * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    loss = ALLHybridLoss(reduction=reduction)(logits, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()


def test_perfect_prediction_has_zero_loss_and_slope_twenty():
    target = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    logits = torch.full_like(target, -1e4).requires_grad_(True)
    hl = hybrid_loss(logits, target)
    assert hl.item() == 0.0
    _, slope = _value_and_slope(hl.item())
    assert slope == pytest.approx(20.0)


def test_gradcheck_both_reductions():
    target = (torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(2)) > 0.5).double()
    logits = torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for reduction in ("batch", "image"):
        fn = ALLHybridLoss(reduction=reduction)
        assert torch.autograd.gradcheck(lambda x: fn(x, target), (logits.clone().requires_grad_(True),))


def test_float32_under_autocast():
    logits = torch.randn(2, 1, 8, 8).bfloat16().requires_grad_(True)
    target = torch.rand(2, 1, 8, 8) > 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ALLHybridLoss()(logits, target)
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(logits.grad.float()).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="'batch', 'image'"):
        ALLHybridLoss(reduction="mean")
    with pytest.raises(ValueError, match="'batch', 'image'"):
        hybrid_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), reduction="sum")
    with pytest.raises(ValueError, match="same shape"):
        ALLHybridLoss()(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="pos_weight"):
        ALLHybridLoss(pos_weight=1.5)


def test_dice_ce_matches_a_hand_computation():
    # image 0: all-foreground target, logits 0 (p = 1/2 everywhere); image 1: empty target, logits -ln 3 (p = 1/4)
    n = 16
    logits = torch.stack([torch.zeros(1, 4, 4, dtype=torch.float64), torch.full((1, 4, 4), -math.log(3.0), dtype=torch.float64)])
    target = torch.stack([torch.ones(1, 4, 4), torch.zeros(1, 4, 4)]).double()
    s = 1e-5
    dice0 = 1 - (2 * 0.5 * n + s) / (0.5 * n + n + s)
    dice1 = 1 - s / (0.25 * n + s)
    ce = (math.log(2.0) + -math.log(0.75)) / 2  # mean over both images' pixels
    expected = (dice0 + dice1) / 2 + ce
    assert DiceCELoss()(logits, target).item() == pytest.approx(expected, rel=1e-12)
    weighted = DiceCELoss(dice_weight=0.25, ce_weight=2.0)(logits, target).item()
    assert weighted == pytest.approx(0.25 * (dice0 + dice1) / 2 + 2.0 * ce, rel=1e-12)


def test_dice_ce_matches_monai():
    monai_losses = pytest.importorskip("monai.losses", reason="MONAI (the dev extra) is the reference")
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 1, 9, 7, generator=gen, dtype=torch.float64) * 3
    target = (torch.rand(3, 1, 9, 7, generator=gen) > 0.6).double()
    target[1] = 0.0  # an empty mask
    ours = DiceCELoss()(logits, target).item()
    theirs = monai_losses.DiceCELoss(sigmoid=True)(logits, target).item()
    assert ours == pytest.approx(theirs, rel=1e-10)


def test_dice_ce_gradcheck_and_autocast():
    target = (torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(2)) > 0.5).double()
    logits = torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.autograd.gradcheck(lambda x: DiceCELoss()(x, target), (logits.clone().requires_grad_(True),))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = DiceCELoss()(torch.randn(2, 1, 8, 8).bfloat16(), torch.rand(2, 1, 8, 8) > 0.5)
    assert loss.dtype == torch.float32


def test_create_loss_names_and_errors():
    assert LOSSES == ("all_hl", "dice_ce")
    assert isinstance(create_loss(None), ALLHybridLoss)
    hl = create_loss({"name": "all_hl", "pos_weight": 0.5, "reduction": "image"})
    assert isinstance(hl, ALLHybridLoss) and hl.pos_weight == 0.5 and hl.reduction == "image"
    dc = create_loss({"name": "dice_ce", "ce_weight": 0.5})
    assert isinstance(dc, DiceCELoss) and dc.ce_weight == 0.5
    with pytest.raises(FocusNetError, match="loss.name: invalid value 'dice'; choose one of: all_hl, dice_ce"):
        create_loss({"name": "dice"})
    with pytest.raises(TypeError):
        create_loss({"name": "dice_ce", "pos_weight": 0.5})  # an ALL-HL argument
    with pytest.raises(ValueError, match="smooth"):
        DiceCELoss(smooth=0.0)
