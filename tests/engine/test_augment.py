"""Batch augmentation (:func:`focusnet.engine.module.augment_batch`): masks move with images, zoom ranges."""
from __future__ import annotations

import pytest
import torch

from focusnet.engine.config import TrainConfig
from focusnet.errors import FocusNetError


def test_augmentation_is_off_by_default_and_moves_masks_with_images():
    from focusnet.engine.module import augment_batch

    x = torch.rand(6, 3, 16, 16)
    y = (torch.rand(6, 1, 16, 16) > 0.5).float()
    assert augment_batch(x, y, TrainConfig().augment) == (x, y)
    torch.manual_seed(0)
    a, b = augment_batch(x, y, {"enabled": True, "hflip": 0.5, "vflip": 0.5, "rot90": 0.5})
    # a pure flip/rotation: each augmented image is the same transform of its image and of its mask
    for i in range(6):
        found = False
        for k in range(4):
            for flip in (False, True):
                xi, yi = torch.rot90(x[i], k, (-2, -1)), torch.rot90(y[i], k, (-2, -1))
                xi, yi = (xi.flip(-1), yi.flip(-1)) if flip else (xi, yi)
                found |= torch.equal(a[i], xi) and torch.equal(b[i], yi)
        assert found, i
    torch.manual_seed(0)
    c, d = augment_batch(x, y, {"enabled": True, "rotate": 30.0, "brightness": 0.2, "contrast": 0.2, "saturation": 0.2})
    assert c.shape == x.shape and 0.0 <= float(c.min()) and float(c.max()) <= 1.0
    assert set(d.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("key, low, high", [("scale", 0.7, 1.3), ("zoom_in", 1.0, 1.3)])
def test_zoom_augmentation_zooms_image_and_mask_together(key: str, low: float, high: float):
    """``scale`` zooms by a factor in [1 - s, 1 + s], ``zoom_in`` by one in [1, 1 + z], never shrinking."""
    from focusnet.engine.module import augment_batch

    # a centred square covering a quarter of the image: a zoom by z covers z**2 / 4 of it
    x = torch.zeros(64, 1, 64, 64)
    x[:, :, 16:48, 16:48] = 1.0
    y = x.clone()
    torch.manual_seed(0)
    a, b = augment_batch(x, y, {"enabled": True, "hflip": 0.0, "vflip": 0.0, "rot90": 0.0, key: 0.3})
    area = b.mean(dim=(1, 2, 3))
    # nearest sampling moves each edge by at most one pixel: 4 edges of at most 42 pixels over 64**2
    edge = 4 * 42 / 64**2
    assert float(area.min()) >= low**2 / 4 - edge and float(area.max()) <= high**2 / 4 + edge
    assert float(area.min()) <= (low + 0.1) ** 2 / 4 + edge  # the draws reach the low end of the range
    assert float(area.max() - area.min()) > 0.1  # the zoom varies per image
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    # the image is the mask's bilinear twin: they differ only on the one-pixel border of the square
    assert float((a - b).abs().gt(0.5).float().mean()) <= edge
    torch.manual_seed(0)
    c, d = augment_batch(x, y, {"enabled": True, "hflip": 0.0, "vflip": 0.0, "rot90": 0.0, key: 0.0})
    assert torch.equal(c, x) and torch.equal(d, y)
    if key == "zoom_in":  # zoom_in_p: that share of the images is zoomed, the others keep their size
        torch.manual_seed(0)
        _, e = augment_batch(x, y, {"enabled": True, "hflip": 0.0, "vflip": 0.0, "rot90": 0.0, key: 0.3, "zoom_in_p": 0.5})
        kept = (e == y).flatten(1).all(dim=1)
        assert 16 <= int(kept.sum()) <= 48 and float(e.mean(dim=(1, 2, 3))[~kept].min()) >= 0.25


def test_zoom_in_min_area_zooms_only_large_masks():
    """``zoom_in_min_area``: images whose mask covers less than that share keep their size; the others zoom."""
    from focusnet.engine.module import augment_batch

    y = torch.zeros(64, 1, 32, 32)
    y[:32, :, 4:28, 4:28] = 1.0  # 576 / 1024 = 0.5625 of the image
    y[32:, :, 12:20, 12:20] = 1.0  # 64 / 1024 = 0.0625
    torch.manual_seed(0)
    cfg = {"enabled": True, "hflip": 0.0, "vflip": 0.0, "rot90": 0.0, "zoom_in": 0.5, "zoom_in_min_area": 0.5}
    _, b = augment_batch(y, y, cfg)
    assert torch.equal(b[32:], y[32:])  # small masks untouched
    grown = b[:32].mean(dim=(1, 2, 3)) > y[:32].mean(dim=(1, 2, 3))
    assert int(grown.sum()) >= 28  # the zoom draw is uniform in [1, 1.5]: nearly every large mask grows
    with pytest.raises(FocusNetError, match="zoom_in_min_area"):
        augment_batch(y, y, {**cfg, "zoom_in_min_area": 1.5})
