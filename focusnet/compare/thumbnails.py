"""Contour thumbnails for ``focusnet compare`` (PIL and numpy only: the report draws hundreds of them).

An image is resized so its long side is ``size`` pixels, masks (any resolution) are resized to it
with nearest neighbour, and a contour is the mask XOR its erosion, one pixel wide: the ground truth
in :data:`~focusnet.compare.colors.TRUTH_COLOR`, the prediction in the model's colour.

Example:
    >>> base = thumbnail_base(np.zeros((20, 40), np.uint8), 10)
    >>> base.shape
    (5, 10, 3)
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from focusnet.compare.colors import PREDICTION_FALLBACK_COLOR, TRUTH_COLOR

__all__ = ["bool_mask", "case_thumbnail_png", "rgb_uint8", "thumbnail_base", "thumbnail_png"]


def rgb_uint8(image: Any) -> np.ndarray:
    """(H, W, 3) uint8 from a grey/RGB/RGBA array, uint8 or float (0-1 or any range).

    Example:
        >>> rgb_uint8(np.array([[0.0, 1.0]])).tolist()
        [[[0, 0, 0], [255, 255, 255]]]
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.bool_:
        return (a.astype(np.uint8) * 255)
    f = a.astype(np.float64)
    f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(f.min()), float(f.max())) if f.size else (0.0, 1.0)
    if lo >= 0.0 and hi <= 1.0:
        f = f * 255.0
    elif hi > 255.0 or lo < 0.0:
        f = (f - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(f)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def bool_mask(mask: Any, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A bool (H, W) mask, resized (nearest) to ``shape`` (H, W) when given and different.

    Example:
        >>> bool_mask(np.array([[0, 255]], np.uint8), (2, 4)).astype(int).tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        raise ValueError(f"mask must have shape (H, W); got {m.shape}")
    m = m.astype(bool) if m.dtype == np.bool_ else (m > (127 if m.dtype == np.uint8 and m.max() > 1 else 0.5))
    if shape is not None and tuple(m.shape) != tuple(shape):
        pil = Image.fromarray(m.astype(np.uint8) * 255).resize((shape[1], shape[0]), Image.Resampling.NEAREST)
        m = np.asarray(pil) > 127
    return m


def _contour(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels: the mask XOR its 4-neighbour erosion (outside the image counts as background)."""
    if not mask.any():
        return mask
    padded = np.pad(mask, 1, constant_values=False)
    eroded = (
        padded[1:-1, 1:-1]
        & padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )
    return mask & ~eroded


def _hex_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"colour must be '#RRGGBB'; got {color!r}")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _thumb_size(shape: tuple[int, ...], size: int) -> tuple[int, int]:
    h, w = int(shape[0]), int(shape[1])
    scale = size / max(h, w, 1)
    return max(1, round(w * scale)), max(1, round(h * scale))  # PIL's (width, height)


def thumbnail_base(image: Any, size: int) -> np.ndarray:
    """``image`` as (h, w, 3) uint8, resized (bilinear) so that its long side is ``size`` pixels.

    Example:
        >>> thumbnail_base(np.zeros((30, 60, 3), np.uint8), 20).shape
        (10, 20, 3)
    """
    rgb = rgb_uint8(image)
    wh = _thumb_size(rgb.shape, size)
    return np.asarray(Image.fromarray(rgb).resize(wh, Image.Resampling.BILINEAR, reducing_gap=2.0)).copy()


def thumbnail_png(base: np.ndarray, truth: Any, prediction: Any | None, color: str) -> bytes:
    """PNG bytes of a :func:`thumbnail_base` with the true (green) and predicted (``color``) contours.

    Example:
        >>> m = np.zeros((8, 8), bool); m[2:6, 2:6] = True
        >>> thumbnail_png(thumbnail_base(np.zeros((8, 8)), 8), m, m, "#0072B2")[:4]
        b'\x89PNG'
    """
    out = base.copy()
    shape = out.shape[:2]
    if truth is not None:
        out[_contour(bool_mask(truth, shape))] = _hex_rgb(TRUTH_COLOR)
    if prediction is not None:
        out[_contour(bool_mask(prediction, shape))] = _hex_rgb(color)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def case_thumbnail_png(
    image: Any,
    truth: Any,
    prediction: Any | None,
    size: int = 96,
    color: str | None = None,
) -> bytes:
    """A small PNG of one image with the true (green) and predicted (``color``) contours.

    The image is resized so its long side is ``size`` pixels; masks (any resolution) are resized
    to it with nearest neighbour, and a contour is the mask XOR its erosion, one pixel wide.

    Args:
        image: (H, W) or (H, W, 3) uint8 (or float) image.
        truth: bool (H', W') ground-truth mask (None: not drawn).
        prediction: bool (H'', W'') predicted mask (None: not drawn).
        size: long side of the thumbnail in pixels.
        color: "#RRGGBB" of the predicted contour (default red).

    Returns:
        The PNG file's bytes.

    Example:
        >>> img = np.zeros((40, 60, 3), np.uint8); m = np.zeros((40, 60), bool); m[10:30, 20:40] = True
        >>> Image.open(io.BytesIO(case_thumbnail_png(img, m, m, size=30))).size
        (30, 20)
    """
    if size < 1:
        raise ValueError(f"size must be >= 1; got {size}")
    return thumbnail_png(thumbnail_base(image, size), truth, prediction, color or PREDICTION_FALLBACK_COLOR)
