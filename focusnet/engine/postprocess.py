"""What ``focusnet predict`` makes of a model's probabilities: maps at the image's own size, overlays, PNGs.

The probabilities come at the model's input size; :func:`probabilities_to_size` resizes them back to
an image's original height and width (bilinear, anti-aliased when shrinking) before they are
thresholded, so masks of any size have smooth boundaries. :func:`overlay_image` tints a mask red with
a yellow contour that scales with the picture; :func:`overlay` makes it at :func:`overlay_size` (at
most ``OVERLAY_MAX_SIDE`` pixels on the longer side). Every PNG is written under a temporary name and
renamed (:func:`save_png`).

Example:
    >>> probabilities_to_size(np.array([[0.0, 1.0]], np.float32), (1, 4)).round(3).tolist()
    [[0.0, 0.25, 0.75, 1.0]]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from focusnet.atomic import replace_into, temp_path

__all__ = ["OVERLAY_MAX_SIDE", "contour_width", "overlay", "overlay_image", "overlay_size", "probabilities_to_size",
           "save_image", "save_png"]

#: Longest side of an overlay; larger images are downscaled for it (the mask keeps the original size).
OVERLAY_MAX_SIDE = 1024
#: Contour thickness of an overlay, as a fraction of its longer side (at least one pixel).
_CONTOUR_FRACTION = 1 / 250
_TINT = np.array([255, 0, 0], np.float32)  # mask tint (red)
_CONTOUR = np.array([255, 255, 0], np.uint8)  # mask contour (yellow)
_TINT_ALPHA = 0.35


def probabilities_to_size(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxW ``float32`` probability map to ``size = (height, width)`` (bilinear, anti-aliased).

    Example:
        >>> probabilities_to_size(np.array([[0.0, 1.0]], np.float32), (1, 4)).round(3).tolist()
        [[0.0, 0.25, 0.75, 1.0]]
    """
    h, w = size
    prob = np.ascontiguousarray(prob, dtype=np.float32)
    if prob.shape == (h, w):
        return prob.copy()
    out = np.asarray(Image.fromarray(prob, mode="F").resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour binary erosion (pixels outside the image count as background)."""
    out = mask.copy()
    out[1:, :] &= mask[:-1, :]
    out[:-1, :] &= mask[1:, :]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[0, :] = out[-1, :] = False
    out[:, 0] = out[:, -1] = False
    return out


def overlay_image(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ``image`` (HxWx3 or HxWx1 ``uint8``) with ``mask`` tinted red and its contour in yellow.

    The contour is the mask's inner border, about 1/250 of the longer side thick (at least one
    pixel), so it scales with the image and stays visible when the picture is shown smaller.
    Returns an HxWx3 ``uint8`` array.

    Example:
        >>> m = np.zeros((8, 8), bool); m[2:6, 2:6] = True
        >>> out = overlay_image(np.zeros((8, 8, 3), np.uint8), m)
        >>> out[2, 2].tolist(), out[3, 3].tolist(), out[0, 0].tolist()
        ([255, 255, 0], [89, 0, 0], [0, 0, 0])
    """
    out = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image.copy()
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        tinted = out[mask].astype(np.float32) * (1.0 - _TINT_ALPHA) + _TINT * _TINT_ALPHA
        out[mask] = np.round(tinted).astype(np.uint8)
        inner = mask
        for _ in range(contour_width(mask.shape)):
            inner = _erode(inner)
        out[mask & ~inner] = _CONTOUR
    return out


def contour_width(shape: tuple[int, ...]) -> int:
    """Overlay contour thickness in pixels for an image of ``shape``: 1/250 of the longer side, at least 1.

    Example:
        >>> contour_width((64, 64)), contour_width((683, 1024))
        (1, 4)
    """
    return max(1, round(max(shape[:2]) * _CONTOUR_FRACTION))


def overlay_size(h: int, w: int, max_side: int = OVERLAY_MAX_SIDE) -> tuple[int, int]:
    """``(height, width)`` of the overlay of an ``h`` x ``w`` image: downscaled to ``max_side`` at most.

    Example:
        >>> overlay_size(4000, 6000), overlay_size(53, 70)
        ((683, 1024), (53, 70))
    """
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return h, w
    return max(1, round(h * scale)), max(1, round(w * scale))


def overlay(image: np.ndarray, mask: np.ndarray, prob: np.ndarray, threshold: float) -> np.ndarray:
    """The overlay of ``image`` (HxWxC uint8, its ``mask``) at :func:`overlay_size`.

    A downscaled overlay thresholds the model-size probabilities ``prob`` resized to its own size.

    Example:
        >>> m = np.zeros((8, 8), bool); m[2:6, 2:6] = True
        >>> overlay(np.zeros((8, 8, 3), np.uint8), m, m.astype(np.float32), 0.5).shape
        (8, 8, 3)
    """
    h, w = image.shape[:2]
    oh, ow = overlay_size(h, w)
    if (oh, ow) == (h, w):
        return overlay_image(image, mask)
    rgb = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    small = np.asarray(Image.fromarray(rgb, mode="RGB").resize((ow, oh), Image.Resampling.BOX))
    return overlay_image(small, probabilities_to_size(prob, (oh, ow)) > threshold)


def save_png(path: Path, array: np.ndarray, mode: str) -> None:
    """Write ``array`` as a PNG under a temporary name, then rename it to ``path`` (umask's file mode).

    Example:
        >>> save_png(Path("masks/a_mask.png"), np.zeros((4, 4), np.uint8), "L")  # doctest: +SKIP
    """
    save_image(path, Image.fromarray(array, mode=mode), format="PNG")


def save_image(path: Path, image: Image.Image, **kwargs: Any) -> None:
    """``image.save(path, **kwargs)`` through a temporary file renamed into place (umask's file mode).

    Example:
        >>> save_image(Path("masks/a.png"), Image.new("L", (4, 4)), format="PNG")  # doctest: +SKIP
    """
    tmp = temp_path(path)
    try:
        image.save(tmp, **kwargs)
        replace_into(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
