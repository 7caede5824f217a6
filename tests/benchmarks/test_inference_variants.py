"""benchmarks/bench_inference_variants.py: its post-processing, multi-scale prediction and reference pairing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.bench_inference_variants import largest_component_filled, multiscale_probabilities, reference_dice
from benchmarks.bench_threshold import probabilities


def test_largest_component_is_kept_with_its_holes_filled() -> None:
    masks = torch.zeros(2, 1, 12, 12, dtype=torch.bool)
    masks[0, 0, 1:7, 1:7] = True  # 36 pixels with a one-pixel hole
    masks[0, 0, 3, 3] = False
    masks[0, 0, 9:11, 9:11] = True  # a 4-pixel speck apart from it
    out = largest_component_filled(masks)
    assert out.dtype == torch.bool and out.shape == masks.shape
    assert int(out[0].sum()) == 36 and bool(out[0, 0, 3, 3]) and not bool(out[0, 0, 9:11, 9:11].any())
    assert not bool(out[1].any())  # an empty prediction stays empty


def test_multiscale_prediction_matches_the_plain_one_where_it_must() -> None:
    """At the input's own size it is the plain prediction; a pixel-wise network on a constant image gives
    the same constant at every scale (bilinear resizing keeps constants)."""
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(3, 1, 1)
    images = torch.rand(3, 3, 16, 16)
    assert torch.equal(multiscale_probabilities(pointwise, images, (16,)), probabilities(pointwise, images))
    flat = torch.full((2, 3, 16, 16), 0.3)
    both = multiscale_probabilities(pointwise, flat, (16, 18))
    assert both.shape == (2, 1, 16, 16)
    assert torch.allclose(both, probabilities(pointwise, flat), rtol=0, atol=1e-6)


def test_reference_is_reordered_to_the_runs_ids(tmp_path: Path) -> None:
    doc = {"benchmark": "head-to-head-seeds", "ids": ["b", "a", "c"],
           "sides": {"bu": {"per_image_dice": [[0.2, 0.1, 0.3], [0.4, 0.3, 0.5]],
                            "runs": [{"file": "s0.json"}, {"file": "s1.json"}]}}}
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(doc))
    assert np.allclose(reference_dice(f"{path}#bu", ["a", "b", "c"]), [0.2, 0.3, 0.4])  # seed-averaged
    single = {"summary": {"per_image": [{"id": "a", "dice": 0.5}, {"id": "b", "dice": 0.6}]}}
    path.write_text(json.dumps(single))
    assert np.allclose(reference_dice(str(path), ["b", "a"]), [0.6, 0.5])
    with pytest.raises(SystemExit, match="not the runs' test split"):
        reference_dice(str(path), ["a", "z"])
