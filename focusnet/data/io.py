"""Reading images and binary masks with one clear error per bad file.

Every reader raises :class:`~focusnet.errors.FocusNetError` naming the file and the fix;
nothing here writes anywhere.
"""
from __future__ import annotations

import errno
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from focusnet.errors import DOCS_OWN_DATA, FocusNetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open(path: Path) -> Image.Image:
    """Open and decode ``path`` now (so a truncated file fails here), closing it on any failure.

    Pillow's own warnings about damaged metadata (TIFF tags, EXIF) are silenced: they would be extra
    lines on stderr; a file that really cannot be decoded still fails with one clear error.
    """
    img, ok = None, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            img.load()  # decode now so truncated files fail here, not later
        ok = True
        return img
    except FileNotFoundError:
        raise FocusNetError(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise FocusNetError(f"{path}: is a folder, expected an image file") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise FocusNetError(f"{path}: image too large to decode safely ({exc}); downscale it first") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FocusNetError(f"{path}: symbolic link loop; fix the link or remove it") from None
        raise FocusNetError(
            f"{path}: unreadable or truncated image ({_first_line(exc)}); re-export or remove this file"
        ) from None
    except (UnidentifiedImageError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
            struct.error, ZeroDivisionError, OverflowError, MemoryError) as exc:
        # what Pillow's decoders raise on damaged files besides OSError
        raise FocusNetError(
            f"{path}: unreadable or truncated image ({_first_line(exc)}); re-export or remove this file"
        ) from None
    finally:
        if img is not None and not ok:
            img.close()  # no file handle left open by a file that failed to decode


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Read an image as ``uint8`` HxWxC (C = 3 for RGB, 1 for grey).

    Alpha is dropped, palette and CMYK images are converted, 16-bit images are scaled to 8 bits.

    Example:
        >>> img = read_image("images/case1.png")  # doctest: +SKIP
        >>> img.shape, img.dtype  # doctest: +SKIP
        ((480, 640, 3), dtype('uint8'))
    """
    path = Path(path)
    img = _open(path)
    try:
        return _image_array(img, channels)
    except (ValueError, OSError, TypeError) as exc:
        raise FocusNetError(
            f"{path}: cannot convert this {img.mode} image ({_first_line(exc)}); "
            "re-export it as an 8-bit RGB or grey PNG"
        ) from None
    finally:
        img.close()  # the pixels are copied out; release the file


def _image_array(img: Image.Image, channels: int) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max()
        arr = arr / top * 255.0 if top > 0 else arr
        img = Image.fromarray(arr.round().astype(np.uint8), mode="L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = arr.min(), arr.max()
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.round().astype(np.uint8), mode="L")
    target = "RGB" if channels == 3 else "L"
    if img.mode != target:
        img = img.convert(target)
    arr = np.array(img, dtype=np.uint8)  # a copy: the image is closed after this
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def read_mask(path: str | Path, rule: str = "binary") -> np.ndarray:
    """Read a binary mask as a ``bool`` HxW array.

    Args:
        path: mask image (PNG, BMP, TIFF, ...). Grey, RGB (all channels equal) and palette masks are read.
        rule: ``"binary"`` accepts only masks with two values {0, v} (0/1, 0/255, ...);
            ``"nonzero"`` treats every value > 0 as foreground; ``"half"`` thresholds at half of the
            dtype's maximum (for masks that were resized with interpolation).

    Example:
        >>> m = read_mask("masks/case1.png")  # doctest: +SKIP
        >>> m.dtype  # doctest: +SKIP
        dtype('bool')
    """
    path = Path(path)
    src = _open(path)
    jpeg = src.format == "JPEG"  # by content: JPEG bytes under a .png name count too
    try:
        img = src
        if img.mode == "P":
            img = img.convert("L") if "transparency" not in img.info else img.convert("RGBA").convert("L")
        arr = np.array(img)
    except (ValueError, OSError, TypeError) as exc:
        raise FocusNetError(
            f"{path}: cannot read this {src.mode} mask ({_first_line(exc)}); re-export it as a greyscale PNG",
            see=DOCS_OWN_DATA,
        ) from None
    finally:
        src.close()  # the pixels are copied out; release the file
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[:, :, :3]
        if not (arr == arr[:, :, :1]).all():
            raise FocusNetError(
                f"{path}: mask has differing colour channels; save masks as single-channel (greyscale) images",
                see=DOCS_OWN_DATA,
            )
        arr = arr[:, :, 0]
    if rule == "nonzero":
        return arr > 0
    if rule == "half":
        top = 65535 if arr.dtype == np.uint16 else (1 if arr.dtype == bool else 255)
        return arr >= top / 2
    if rule != "binary":
        raise FocusNetError(f"unknown mask rule {rule!r}; choose one of: binary, nonzero, half")
    values = np.unique(arr)
    if values.size > 2 or (values.size == 2 and values[0] != 0):
        shown = ", ".join(str(v) for v in values[:6]) + (", ..." if values.size > 6 else "")
        if jpeg:
            # JPEG noise sits just above 0: nonzero would count it as foreground.
            fix = ("JPEG compression adds in-between values; re-export the masks as PNG, or pass --mask-rule half "
                   "(values >= half of the maximum are foreground)")
        else:
            fix = ("use binary 0/1 or 0/255 masks, or pass --mask-rule half (values >= half of the maximum "
                   "are foreground: resized masks) or --mask-rule nonzero (any value > 0 is foreground: label maps)")
        raise FocusNetError(f"{path}: mask is not binary (values {shown}); {fix}", see=DOCS_OWN_DATA)
    return arr > 0


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a boolean mask as an 8-bit 0/255 PNG."""
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(path)
