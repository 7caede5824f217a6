"""benchmarks/bench_border.py: the border-extension diagnostic's prediction and crop."""
from __future__ import annotations

import pytest
import torch

from benchmarks.bench_border import extended_probabilities
from benchmarks.bench_threshold import probabilities


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_extended_prediction_is_cropped_back(mode: str) -> None:
    """A pixel-wise network gives the same probabilities on the extended input, cropped back, as on
    the input itself: only the border's content changes what a network sees, not the alignment."""
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(3, 1, 1)
    images = torch.randn(5, 3, 16, 12)
    plain = probabilities(pointwise, images, batch=2)
    extended = extended_probabilities(pointwise, images, pad=4, mode=mode)
    assert extended.shape == plain.shape == (5, 1, 16, 12)
    assert torch.allclose(extended, plain, rtol=0, atol=1e-6)
    # a 3x3 convolution with zero padding sees the extension at the border, not inside
    conv = torch.nn.Conv2d(3, 1, 3, padding=1)
    a, b = probabilities(conv, images), extended_probabilities(conv, images, 4, mode)
    assert torch.allclose(a[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[..., 0, :], b[..., 0, :], rtol=0, atol=1e-4)
