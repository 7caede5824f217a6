"""Resizing and normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from focusnet.data.preprocess import mask_coverage, normalize_image, resize_image, resize_mask, resize_mask_to
from focusnet.errors import FocusNetError


def test_resize_image_shapes_and_dtype():
    rgb = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    out = resize_image(rgb, 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert resize_image(rgb[:, :, :1], 20).shape == (20, 20, 1)
    assert resize_image(rgb[:, :, 0], 20).shape == (20, 20)
    assert resize_image(np.zeros((8, 8, 4), np.uint8), (5, 7)).shape == (5, 7, 4)
    same = resize_image(rgb, (30, 50))
    assert (same == rgb).all() and same is not rgb


def test_resize_image_is_antialiased():
    # A 1-pixel checkerboard shrunk 8x must become flat mid-grey, not an aliased pattern.
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    small = resize_image(np.stack([board] * 3, axis=2), 8).astype(int)
    assert abs(small.mean() - 127.5) < 2 and small.max() - small.min() <= 2


def test_resize_image_rejects_float():
    with pytest.raises(FocusNetError, match="uint8"):
        resize_image(np.zeros((4, 4, 3), np.float32), 2)


def test_normalize_minmax_joint_over_channels():
    arr = np.zeros((2, 2, 3), np.uint8)
    arr[..., 0], arr[..., 1], arr[..., 2] = 50, 100, 150
    arr[0, 0, 2] = 250
    x = normalize_image(arr)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.allclose(x[:, 1, 1], [0.0, 0.25, 0.5])  # one min/max for all channels, not per channel


def test_normalize_constant_and_unit():
    assert (normalize_image(np.full((3, 4, 3), 77, np.uint8)) == 0).all()
    x = normalize_image(np.array([[[0, 51, 255]]], np.uint8), "unit")
    assert np.allclose(x.ravel(), [0.0, 0.2, 1.0])
    g = normalize_image(np.array([[0, 255]], np.uint8))
    assert g.shape == (1, 1, 2)
    with pytest.raises(FocusNetError, match="minmax, unit"):
        normalize_image(np.zeros((2, 2, 3), np.uint8), "zscore")


def test_resize_mask_binarises_at_half():
    m = np.zeros((8, 8), bool)
    m[:, :4] = True
    out = resize_mask(m, 4)
    assert out.dtype == bool and out.shape == (4, 4)
    assert out[:, :2].all() and not out[:, 2:].any()
    # A lone pixel covers 1/16 of a 4x4 block after downscaling: background.
    dot = np.zeros((16, 16), bool)
    dot[5, 5] = True
    assert not resize_mask(dot, 4).any()
    # Upscaling keeps the shape of a blob.
    up = resize_mask(m, 16)
    assert up[:, :7].all() and not up[:, 9:].any()
    assert (resize_mask(m, 8) == m).all()


def test_mask_coverage_is_the_share_of_each_pixel_before_resize_mask_binarises_it():
    m = np.zeros((8, 8), bool)
    m[:, :3] = True  # the boundary runs through the middle of the second output column
    cov = mask_coverage(m, 4)
    assert cov.dtype == np.float32 and cov.shape == (4, 4) and 0.0 <= cov.min() and cov.max() <= 1.0
    np.testing.assert_allclose(cov[0], [1.0, 0.5, 0.0, 0.0], atol=1e-6)
    blob = np.random.default_rng(1).random((37, 53)) > 0.6
    assert (resize_mask(blob, 16) == (mask_coverage(blob, 16) >= 0.5)).all()
    with pytest.raises(FocusNetError, match="mask_coverage expects an HxW mask"):
        mask_coverage(np.zeros((2, 2, 2), bool), 4)


def test_resize_mask_to_nearest_roundtrip():
    rng = np.random.default_rng(0)
    m = rng.random((5, 7)) > 0.5
    big = resize_mask_to(m, (15, 21))
    assert big.shape == (15, 21) and big.dtype == bool
    assert (resize_mask_to(big, (5, 7)) == m).all()
    prob = rng.random((4, 4)).astype(np.float32)
    assert resize_mask_to(prob, (8, 8)).dtype == np.float32
    assert set(np.unique(resize_mask_to(m, (3, 11)))) <= {False, True}
