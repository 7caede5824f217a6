"""The hybrid adaptive logarithmic loss of FocusNet++ (paper eqs. 1-2, spec section 3), and Dice + CE.

``HL = k * C_b + (1 - k) * TL`` combines a class-balanced cross-entropy ``C_b`` (sign fixed, so it
is >= 0) with the Tversky loss ``TL`` of the foreground class, and ``ALL`` (the adaptive
logarithmic, Wing-style function) is applied to the scalar ``HL``:

    ALL(x) = omega * ln(1 + x / epsilon)   if x < gamma
           = x - C                         otherwise,   C = gamma - omega * ln(1 + gamma / epsilon)

Reductions:

* ``"batch"`` (default, the Keras reading): ``C_b`` is the mean over every pixel of the batch,
  the Tversky counts are sums over the whole batch, and ``ALL`` is applied once.
* ``"image"``: ``HL`` per image, ``ALL`` per image, then the mean over the batch. This gives
  images whose loss is already below ``gamma`` 16-20 times more gradient weight.

``DiceCELoss`` (``loss: {name: dice_ce}`` in a config) is the loss MONAI BasicUNet trains with in the
head-to-head (issue 15): per-image soft Dice of the sigmoid plus binary cross-entropy, for ablations
against ALL-HL. :func:`create_loss` builds either from a config's ``loss`` mapping.

All sums are computed in at least float32 (half and bfloat16 inputs, e.g. under autocast, are
cast up first); float64 inputs stay float64.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from focusnet.vocab import Vocabulary

__all__ = [
    "REDUCTIONS",
    "LOSSES",
    "ALLHybridLoss",
    "DiceCELoss",
    "adaptive_log",
    "adaptive_log_offset",
    "balanced_cross_entropy",
    "create_loss",
    "hybrid_loss",
    "tversky_loss",
]

REDUCTIONS = ("batch", "image")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}")


def _check_pair(inputs: torch.Tensor, target: torch.Tensor, what: str) -> None:
    if inputs.shape != target.shape:
        raise ValueError(
            f"{what} and target must have the same shape, got {tuple(inputs.shape)} and "
            f"{tuple(target.shape)}; give both as (B, 1, H, W)"
        )
    if inputs.dim() < 2:
        raise ValueError(f"{what} must have a batch dimension, got shape {tuple(inputs.shape)}")


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32)) if x.is_floating_point() else x.float()


def _reduce_dims(x: torch.Tensor, reduction: str) -> tuple[int, ...]:
    """Dimensions summed over: all of them for "batch", all but the first for "image"."""
    return tuple(range(x.dim())) if reduction == "batch" else tuple(range(1, x.dim()))


def balanced_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    pos_weight: float = 0.7,
    reduction: str = "batch",
) -> torch.Tensor:
    """Class-balanced binary cross-entropy ``C_b``, computed stably from logits.

    ``C_b = -mean(pos_weight * p * log(p_hat) + (1 - pos_weight) * (1 - p) * log(1 - p_hat))`` with
    ``p_hat = sigmoid(logits)``, i.e. BCE-with-logits with the per-pixel weight
    ``pos_weight * p + (1 - pos_weight) * (1 - p)`` (exact for binary ``p``).

    Args:
        logits: raw scores, shape (B, ...), e.g. (B, 1, H, W).
        target: binary ground truth of the same shape (bool or 0/1 floats).
        pos_weight: Omega, the weight of foreground pixels (background gets ``1 - pos_weight``).
        reduction: ``"batch"`` (mean over every pixel, a scalar) or ``"image"`` (mean per image,
            shape (B,)).

    Example:
        >>> logits = torch.zeros(2, 1, 4, 4)
        >>> target = torch.zeros(2, 1, 4, 4)
        >>> round(balanced_cross_entropy(logits, target).item(), 6)  # 0.3 * ln 2
        0.207944
    """
    _check_reduction(reduction)
    _check_pair(logits, target, "logits")
    logits = _at_least_float32(logits)
    target = target.to(logits.dtype)
    weight = pos_weight * target + (1.0 - pos_weight) * (1.0 - target)
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="none")
    return per_pixel.mean(dim=_reduce_dims(per_pixel, reduction))


def tversky_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    fp_weight: float = 0.3,
    fn_weight: float = 0.7,
    smooth: float = 1.0,
    reduction: str = "batch",
) -> torch.Tensor:
    """Tversky loss ``1 - TI`` of the foreground class, from soft counts.

    ``TI = (TP + s) / (TP + fp_weight * FP + fn_weight * FN + s)`` with ``TP = sum(p_hat * p)``,
    ``FP = sum(p_hat * (1 - p))``, ``FN = sum((1 - p_hat) * p)``. The paper's alpha (on FP) is
    ``fp_weight`` and its beta (on FN) is ``fn_weight``.

    Args:
        probs: foreground probabilities in [0, 1], shape (B, ...).
        target: binary ground truth of the same shape.
        fp_weight: weight of false positives (paper alpha = 0.3).
        fn_weight: weight of false negatives (paper beta = 0.7).
        smooth: the smoothing constant s added to numerator and denominator (1, as the authors' code).
        reduction: ``"batch"`` (counts summed over the whole batch, a scalar) or ``"image"``
            (counts per image, shape (B,)).

    Example:
        >>> probs = torch.full((1, 1, 2, 5), 0.5)
        >>> target = torch.zeros(1, 1, 2, 5); target[..., 0] = 1  # 20% foreground
        >>> round(tversky_loss(probs, target, smooth=0.0).item(), 6)
        0.655172
    """
    _check_reduction(reduction)
    _check_pair(probs, target, "probs")
    probs = _at_least_float32(probs)
    target = target.to(probs.dtype)
    dims = _reduce_dims(probs, reduction)
    true_pos = (probs * target).sum(dim=dims)
    false_pos = (probs * (1.0 - target)).sum(dim=dims)
    false_neg = ((1.0 - probs) * target).sum(dim=dims)
    index = (true_pos + smooth) / (true_pos + fp_weight * false_pos + fn_weight * false_neg + smooth)
    return 1.0 - index


def hybrid_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    k: float = 0.5,
    pos_weight: float = 0.7,
    fp_weight: float = 0.3,
    fn_weight: float = 0.7,
    smooth: float = 1.0,
    reduction: str = "batch",
) -> torch.Tensor:
    """Hybrid loss ``HL = k * C_b + (1 - k) * TL`` (paper eq. 1, sign of ``C_b`` fixed).

    ``C_b`` is computed from the logits (:func:`balanced_cross_entropy`), ``TL`` from
    ``sigmoid(logits)`` (:func:`tversky_loss`). ``HL >= 0``.

    Args:
        logits: raw scores, shape (B, ...).
        target: binary ground truth of the same shape.
        k: weight of the cross-entropy term (paper 0.5).
        pos_weight: Omega of :func:`balanced_cross_entropy`.
        fp_weight: alpha of :func:`tversky_loss`.
        fn_weight: beta of :func:`tversky_loss`.
        smooth: Tversky smoothing constant.
        reduction: ``"batch"`` (a scalar) or ``"image"`` (shape (B,)).

    Example:
        >>> logits = torch.zeros(1, 1, 2, 5)
        >>> target = torch.zeros(1, 1, 2, 5); target[..., 0] = 1
        >>> round(hybrid_loss(logits, target, smooth=0.0).item(), 6)
        0.459284
    """
    _check_reduction(reduction)
    _check_pair(logits, target, "logits")
    logits = _at_least_float32(logits)
    bce = balanced_cross_entropy(logits, target, pos_weight=pos_weight, reduction=reduction)
    tl = tversky_loss(
        torch.sigmoid(logits), target, fp_weight=fp_weight, fn_weight=fn_weight, smooth=smooth, reduction=reduction
    )
    return k * bce + (1.0 - k) * tl


def adaptive_log_offset(gamma: float = 0.1, omega: float = 10.0, epsilon: float = 0.5) -> float:
    """The constant ``C = gamma - omega * ln(1 + gamma / epsilon)`` that makes ALL continuous at gamma.

    Example:
        >>> round(adaptive_log_offset(), 10)
        -1.7232155679
    """
    return gamma - omega * math.log1p(gamma / epsilon)


def adaptive_log(
    x: torch.Tensor | float,
    gamma: float = 0.1,
    omega: float = 10.0,
    epsilon: float = 0.5,
) -> torch.Tensor:
    """Adaptive logarithmic loss (paper eq. 2) of a non-negative loss value ``x``.

    ``where(x < gamma, omega * log1p(x / epsilon), x - C)``. No ``abs`` is taken: the hybrid loss is
    already >= 0, and ``abs`` would give autograd slope 0 instead of the right-derivative
    ``omega / epsilon`` (20) at exactly 0. The function is continuous at ``gamma`` but its slope
    jumps from ``omega / (epsilon + gamma)`` (16.67) to 1. Defined for ``x > -epsilon``.

    Args:
        x: loss value(s), a tensor of any shape or a Python float.
        gamma: switch point between the logarithmic and the linear branch.
        omega: amplitude of the logarithmic branch.
        epsilon: curvature of the logarithmic branch.

    Example:
        >>> round(adaptive_log(0.01).item(), 6)
        0.198026
        >>> round(adaptive_log(0.5).item(), 6)
        2.223216
    """
    x = torch.as_tensor(x, dtype=torch.get_default_dtype()) if not isinstance(x, torch.Tensor) else x
    offset = adaptive_log_offset(gamma, omega, epsilon)
    return torch.where(x < gamma, omega * torch.log1p(x / epsilon), x - offset)


class ALLHybridLoss(nn.Module):
    """ALL-HL: the adaptive logarithmic function applied to the hybrid loss (FocusNet++'s loss).

    Takes logits (B, 1, H, W) and binary targets (B, 1, H, W) (float or bool) and returns a scalar.
    With ``reduction="batch"`` (default) ``HL`` is computed over the whole batch and ``ALL`` applied
    once; with ``"image"`` ``ALL(HL_b)`` is computed per image and averaged. Computed in at least
    float32, also under autocast.

    Args:
        pos_weight: Omega, weight of foreground pixels in the balanced cross-entropy.
        k: weight of the cross-entropy in ``HL`` (``1 - k`` goes to the Tversky loss).
        fp_weight: Tversky weight of false positives (paper alpha).
        fn_weight: Tversky weight of false negatives (paper beta).
        smooth: Tversky smoothing constant.
        gamma: ALL switch point.
        omega: ALL log amplitude.
        epsilon: ALL log curvature.
        reduction: ``"batch"`` or ``"image"``.

    Example:
        >>> loss_fn = ALLHybridLoss()
        >>> logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
        >>> target = torch.rand(2, 1, 8, 8) > 0.5
        >>> loss = loss_fn(logits, target)
        >>> loss.backward()
        >>> loss.shape, logits.grad.shape
        (torch.Size([]), torch.Size([2, 1, 8, 8]))
    """

    def __init__(
        self,
        pos_weight: float = 0.7,
        k: float = 0.5,
        fp_weight: float = 0.3,
        fn_weight: float = 0.7,
        smooth: float = 1.0,
        gamma: float = 0.1,
        omega: float = 10.0,
        epsilon: float = 0.5,
        reduction: str = "batch",
    ) -> None:
        super().__init__()
        _check_reduction(reduction)
        for name, value in (("pos_weight", pos_weight), ("k", k)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1; got {value}")
        for name, value in (("fp_weight", fp_weight), ("fn_weight", fn_weight), ("smooth", smooth)):
            if value < 0.0:
                raise ValueError(f"{name} must be >= 0; got {value}")
        for name, value in (("gamma", gamma), ("omega", omega), ("epsilon", epsilon)):
            if not value > 0.0:
                raise ValueError(f"{name} must be > 0; got {value}")
        self.pos_weight = pos_weight
        self.k = k
        self.fp_weight = fp_weight
        self.fn_weight = fn_weight
        self.smooth = smooth
        self.gamma = gamma
        self.omega = omega
        self.epsilon = epsilon
        self.reduction = reduction

    def terms(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss and its parts, each reduced to a scalar (for logging).

        Returns ``bce`` (C_b), ``tversky`` (TL), ``hybrid`` (HL) and ``loss`` (ALL-HL, the value of
        :meth:`forward`). With ``reduction="image"`` the parts are batch means of per-image values.

        Example:
            >>> parts = ALLHybridLoss().terms(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4))
            >>> sorted(parts)
            ['bce', 'hybrid', 'loss', 'tversky']
        """
        _check_pair(logits, target, "logits")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = _at_least_float32(logits)
            bce = balanced_cross_entropy(logits, target, pos_weight=self.pos_weight, reduction=self.reduction)
            tl = tversky_loss(
                torch.sigmoid(logits),
                target,
                fp_weight=self.fp_weight,
                fn_weight=self.fn_weight,
                smooth=self.smooth,
                reduction=self.reduction,
            )
            hl = self.k * bce + (1.0 - self.k) * tl
            loss = adaptive_log(hl, gamma=self.gamma, omega=self.omega, epsilon=self.epsilon)
        return {"bce": bce.mean(), "tversky": tl.mean(), "hybrid": hl.mean(), "loss": loss.mean()}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """ALL-HL of a batch of logits (B, 1, H, W) against binary targets; a float32 (or float64) scalar."""
        return self.terms(logits, target)["loss"]

    def extra_repr(self) -> str:
        return (
            f"pos_weight={self.pos_weight}, k={self.k}, fp_weight={self.fp_weight}, "
            f"fn_weight={self.fn_weight}, smooth={self.smooth}, gamma={self.gamma}, "
            f"omega={self.omega}, epsilon={self.epsilon}, reduction={self.reduction!r}"
        )


class DiceCELoss(nn.Module):
    """Soft Dice of the sigmoid plus binary cross-entropy: ``dice_weight * DL + ce_weight * BCE``.

    ``DL = 1 - (2 sum(p g) + smooth) / (sum(p) + sum(g) + smooth)`` per image (sums over the pixels
    of one image), averaged over the batch; ``BCE`` is the mean binary cross-entropy with logits
    over every pixel. With the defaults this is the value of MONAI's ``DiceCELoss(sigmoid=True)`` on
    one output channel (``smooth`` is its ``smooth_nr = smooth_dr``), the loss of the head-to-head's
    BasicUNet. Computed in at least float32, also under autocast.

    Args:
        dice_weight: weight of the Dice term.
        ce_weight: weight of the cross-entropy term.
        smooth: added to the Dice numerator and denominator (an empty mask predicted empty scores 0).

    Example:
        >>> loss_fn = DiceCELoss()
        >>> logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
        >>> loss = loss_fn(logits, torch.ones(2, 1, 8, 8))
        >>> loss.backward()
        >>> round(loss.item(), 4)  # Dice loss 1 - 2*0.5/1.5 = 1/3, plus ln 2
        1.0265
    """

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0, smooth: float = 1e-5) -> None:
        super().__init__()
        for name, value in (("dice_weight", dice_weight), ("ce_weight", ce_weight)):
            if value < 0.0:
                raise ValueError(f"{name} must be >= 0; got {value}")
        if not smooth > 0.0:
            raise ValueError(f"smooth must be > 0; got {smooth}")
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Dice + CE of a batch of logits (B, 1, H, W) against binary targets; a float32 (or float64) scalar."""
        _check_pair(logits, target, "logits")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = _at_least_float32(logits)
            target = target.to(logits.dtype)
            probs = torch.sigmoid(logits)
            dims = _reduce_dims(probs, "image")
            overlap = (probs * target).sum(dim=dims)
            total = probs.sum(dim=dims) + target.sum(dim=dims)
            dice = 1.0 - (2.0 * overlap + self.smooth) / (total + self.smooth)
            ce = F.binary_cross_entropy_with_logits(logits, target)
            return self.dice_weight * dice.mean() + self.ce_weight * ce

    def extra_repr(self) -> str:
        return f"dice_weight={self.dice_weight}, ce_weight={self.ce_weight}, smooth={self.smooth}"


_LOSS_CLASSES: dict[str, type[nn.Module]] = {"all_hl": ALLHybridLoss, "dice_ce": DiceCELoss}

#: The losses a config's ``loss: {name: ...}`` picks: ``all_hl`` (FocusNet++'s, the default) or ``dice_ce``.
LOSSES = Vocabulary("loss", _LOSS_CLASSES)


def create_loss(spec: Mapping[str, Any] | None = None) -> nn.Module:
    """The loss a config's ``loss`` mapping describes: ``name`` (default ``all_hl``) plus its keyword arguments.

    Raises:
        FocusNetError: an unknown ``name``.
        TypeError, ValueError: an argument the loss does not take, or a bad value.

    Example:
        >>> create_loss({"name": "dice_ce", "ce_weight": 0.5})
        DiceCELoss(dice_weight=1.0, ce_weight=0.5, smooth=1e-05)
        >>> type(create_loss({"reduction": "image"})).__name__
        'ALLHybridLoss'
    """
    kwargs = dict(spec or {})
    name = LOSSES.normalize(kwargs.pop("name", "all_hl"), key="loss.name")
    return _LOSS_CLASSES[name](**kwargs)
