"""Resizing and intensity scaling, as the FocusNet++ pipeline does it (spec sections 1.4, 2.4, 2.5).

* Images are resized with Pillow's ``BILINEAR`` filter. Pillow widens the kernel when it
  downscales, so the resize is anti-aliased; this is what ``scipy.misc.imresize(interp='bilinear')``
  did in the authors' (BCDU-Net) pipeline.
* Images are then scaled per image to [0, 1] by min-max over all pixels and channels jointly
  (what the code's ``dataset_normalized`` reduces to), or by /255.
* Masks are resized the same way as floats and binarised at 0.5; predictions are mapped back to
  the original size with a nearest-neighbour resize.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from focusnet.errors import FocusNetError

NORMALIZATIONS = ("minmax", "unit")


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (tuple, list)):
        h, w = (int(v) for v in size)
    else:
        h = w = int(size)
    if h < 1 or w < 1:
        raise FocusNetError(f"image size must be positive (got {size}); use e.g. 256")
    return h, w


def resize_image(arr: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a ``uint8`` HxWxC (or HxW) image to ``size`` x ``size`` (or ``(h, w)``), anti-aliased.

    Uses Pillow ``BILINEAR``, which antialiases when downscaling (its kernel support grows with the
    scale factor), matching ``scipy.misc.imresize(..., interp='bilinear')`` of the reference pipeline.
    Each channel is resized independently, so any channel count works.

    Example:
        >>> resize_image(np.zeros((300, 400, 3), np.uint8), 256).shape
        (256, 256, 3)
    """
    h, w = _hw(size)
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise FocusNetError(f"resize_image expects a uint8 image, got {arr.dtype}; read it with read_image")
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[:, :, None]
    if arr.shape[:2] == (h, w):
        out = arr.copy()
    elif arr.shape[2] == 3:
        out = np.asarray(Image.fromarray(arr, mode="RGB").resize((w, h), Image.Resampling.BILINEAR))
    else:
        planes = [
            Image.fromarray(arr[:, :, c], mode="L").resize((w, h), Image.Resampling.BILINEAR)
            for c in range(arr.shape[2])
        ]
        out = np.stack([np.asarray(p) for p in planes], axis=2)
    return out[:, :, 0] if squeeze else out


def normalize_image(arr: np.ndarray, mode: str = "minmax") -> np.ndarray:
    """Scale an HxWxC (or HxW) image to a ``float32`` CxHxW array in [0, 1].

    Args:
        arr: image, usually ``uint8``.
        mode: ``"minmax"``: per image, ``(x - min) / (max - min)`` over all pixels and channels
            jointly (a constant image gives zeros); ``"unit"``: ``x / 255``.

    Example:
        >>> x = normalize_image(np.array([[[10, 20, 30]]], np.uint8))
        >>> x.shape, x.ravel().tolist()
        ((3, 1, 1), [0.0, 0.5, 1.0])
    """
    if mode not in NORMALIZATIONS:
        raise FocusNetError(f"unknown normalization {mode!r}; choose one of: {', '.join(NORMALIZATIONS)}")
    x = np.asarray(arr, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    x = np.ascontiguousarray(x.transpose(2, 0, 1))
    if mode == "unit":
        return x / np.float32(255.0)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x)
    return (x - np.float32(lo)) / np.float32(hi - lo)


def mask_coverage(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """The share of each output pixel a ``bool`` HxW mask covers, after resizing it like an image.

    ``float32`` in [0, 1]: the mask resized as floats with Pillow ``BILINEAR`` (anti-aliased when
    downscaling), before :func:`resize_mask` binarises it.

    Example:
        >>> m = np.zeros((8, 8), bool); m[:, :3] = True  # the boundary halves the second output column
        >>> mask_coverage(m, 4)[0].round(3).tolist()
        [1.0, 0.5, 0.0, 0.0]
    """
    h, w = _hw(size)
    m = np.asarray(mask)
    if m.ndim != 2:
        raise FocusNetError(f"mask_coverage expects an HxW mask, got shape {m.shape}")
    img = Image.fromarray(m.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a ``bool`` HxW mask like an image (bilinear, anti-aliased) and binarise at 0.5.

    A pixel is foreground when at least half of it is covered after resampling (``>= 0.5``).

    Example:
        >>> m = np.zeros((4, 4), bool); m[:, :2] = True
        >>> resize_mask(m, 2).tolist()
        [[True, False], [True, False]]
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise FocusNetError(f"resize_mask expects an HxW mask, got shape {m.shape}")
    if m.shape == _hw(size):
        return m.astype(bool)
    return mask_coverage(m, size) >= 0.5


def resize_mask_to(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an HxW mask (or label/probability map) to ``shape = (h, w)`` by nearest neighbour.

    Used to map predictions back to the original image size; the dtype is kept. Pixel centres are
    mapped as in Pillow's ``NEAREST`` resize.

    Example:
        >>> resize_mask_to(np.array([[True, False]]), (2, 4)).tolist()
        [[True, True, False, False], [True, True, False, False]]
    """
    h, w = _hw(shape)
    m = np.asarray(mask)
    if m.ndim != 2:
        raise FocusNetError(f"resize_mask_to expects an HxW mask, got shape {m.shape}")
    src_h, src_w = m.shape
    rows = np.minimum(((np.arange(h) + 0.5) * src_h / h).astype(np.int64), src_h - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * src_w / w).astype(np.int64), src_w - 1)
    return m[rows[:, None], cols[None, :]]
