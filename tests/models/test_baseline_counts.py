"""Exact sizes and compute of the U-Net-family baselines (spec §4.2, §4.4-4.6 and §5.2).

Parameter counts are trainable parameters at 3 input channels and 1 class. GMACs are measured
with ``torch.utils.flop_counter.FlopCounterMode`` on a meta-device model and a 1x3x256x256
meta input in eval mode (no memory, no arithmetic: well under a second each); MACs = FLOPs / 2.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from focusnet.models import create_model


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def keras_total(model: nn.Module) -> int:
    """Keras "Total params": trainable parameters plus the BN moving mean and variance."""
    bn = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    return trainable(model) + 2 * bn


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("unet", {}, 7_760_645),
        ("attention_unet", {"authors_gate_quirk": True}, 8_898_308),  # the authors' code
        ("attention_unet", {}, 8_684_548),  # third gate from up2 (default)
        ("wide_unet", {}, 9_282_876),
        ("unetpp", {}, 9_042_177),
        ("unetpp", {"deep_supervision": True}, 9_042_276),  # + three 1x1 heads (32 + 1 each)
    ],
    ids=["unet", "attention_unet-quirk", "attention_unet", "wide_unet", "unetpp", "unetpp-ds"],
)
def test_trainable_parameter_count(name: str, kwargs: dict, expected: int) -> None:
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    assert trainable(model) == expected


def test_attention_unet_keras_total_matches_table2() -> None:
    with torch.device("meta"):
        model = create_model("attention_unet", authors_gate_quirk=True)
    assert keras_total(model) == 8_906_244  # Table 2: 8.91M


@pytest.mark.parametrize(
    ("name", "kwargs", "spec_gmacs"),
    [
        ("unet", {}, 13.72),
        ("attention_unet", {"authors_gate_quirk": True}, 7.88),
        ("attention_unet", {}, 8.03),  # not in the spec: the default's third gate runs at H/4
        ("wide_unet", {}, 14.43),
        ("unetpp", {}, 29.79),
    ],
    ids=["unet", "attention_unet-quirk", "attention_unet", "wide_unet", "unetpp"],
)
def test_gmacs_at_256(name: str, kwargs: dict, spec_gmacs: float) -> None:
    with torch.device("meta"):
        model = create_model(name, **kwargs).eval()
        x = torch.empty(1, 3, 256, 256)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(x)
    assert out.shape == (1, 1, 256, 256)
    gmacs = counter.get_total_flops() / 2e9
    assert gmacs == pytest.approx(spec_gmacs, rel=0.02)
