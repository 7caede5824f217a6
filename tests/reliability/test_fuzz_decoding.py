"""Fuzzing the image-decoding and mask-reading path (issue 8, part 2).

``read_image`` and ``read_mask`` get random bytes and mutated valid files (PNG RGB / grey / palette /
16-bit, JPEG, BMP, TIFF, GIF): each call either returns a well-formed array or raises the documented
:class:`~focusnet.errors.FocusNetError` naming the file; never another exception, never a hang (an
alarm per call, plus hypothesis' deadline).

Examples: 60 random byte strings + 100 mutated images + 60 mutated masks = 220 (``EXAMPLES``);
``FOCUSNET_FUZZ_SCALE=50`` multiplies them for a long local run. Files are closed on failure too
(run with ``-W error::ResourceWarning`` to check).
"""
from __future__ import annotations

import io
import os
import signal
import tempfile
import warnings
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from focusnet.data.io import read_image, read_mask
from focusnet.errors import FocusNetError

_SCALE = float(os.environ.get("FOCUSNET_FUZZ_SCALE", "1"))  # e.g. 50 for a long local run
EXAMPLES = {k: max(1, int(v * _SCALE)) for k, v in {"random_bytes": 60, "mutated_images": 100, "mutated_masks": 60}.items()}
HANG_SECONDS = 10  # one decode of a tiny file takes milliseconds; this only catches real hangs
COMMON = dict(
    deadline=timedelta(seconds=3),
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), mode="RGB")
    m = np.zeros((12, 10), np.uint8)
    m[3:9, 2:7] = 255
    grey = Image.fromarray(m, mode="L")
    m16 = Image.fromarray(m.astype(np.uint16) * 257)
    pal = grey.convert("P")
    return {
        "png_rgb": _encode(rgb, "PNG"),
        "png_grey": _encode(grey, "PNG"),
        "png_palette": _encode(pal, "PNG"),
        "png_16bit": _encode(m16, "PNG"),
        "jpeg": _encode(rgb, "JPEG", quality=90),
        "bmp": _encode(rgb, "BMP"),
        "tiff": _encode(rgb, "TIFF"),
        "tiff_mask": _encode(grey, "TIFF", compression="tiff_lzw"),
        "gif": _encode(pal, "GIF"),
    }


SEEDS = _seeds()
IMAGE_SEEDS = sorted(SEEDS)
MASK_SEEDS = ["png_grey", "png_palette", "png_16bit", "bmp", "tiff_mask", "gif"]


@st.composite
def mutated(draw, names: list[str]) -> bytes:
    """A valid file with a few bytes flipped, cut short, or with bytes inserted or removed."""
    data = bytearray(SEEDS[draw(st.sampled_from(names))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "flip", "set", "truncate", "insert", "delete"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


@contextmanager
def _no_hang(seconds: int):
    def alarm(signum, frame):
        raise TimeoutError(f"decoding did not finish within {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_DIR = Path(tempfile.mkdtemp(prefix="focusnet-fuzz-"))
_SUFFIXES = [".png", ".jpg", ".bmp", ".tif", ".gif", ".dat"]


def _check(data: bytes, suffix: str, reader: str) -> None:
    path = _DIR / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        with _no_hang(HANG_SECONDS), warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning would be an extra stderr line in the CLI
            if reader == "image":
                out = read_image(path, channels=3)
                assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.size > 0
            elif reader == "grey":
                out = read_image(path, channels=1)
                assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 1
            else:
                out = read_mask(path, rule=reader)
                assert out.dtype == bool and out.ndim == 2
    except FocusNetError as exc:
        message = str(exc)
        assert str(path) in message, message  # names the file
        assert "\n" not in message, message  # one line
        assert ";" in message, message  # and says what to do


@settings(max_examples=EXAMPLES["random_bytes"], **COMMON)
@given(data=st.binary(min_size=0, max_size=512), suffix=st.sampled_from(_SUFFIXES),
       reader=st.sampled_from(["image", "grey", "binary", "nonzero"]))
def test_random_bytes(data, suffix, reader):
    _check(data, suffix, reader)


@settings(max_examples=EXAMPLES["mutated_images"], **COMMON)
@given(data=mutated(IMAGE_SEEDS), suffix=st.sampled_from(_SUFFIXES[:5]), reader=st.sampled_from(["image", "grey"]))
def test_mutated_images(data, suffix, reader):
    _check(data, suffix, reader)


@settings(max_examples=EXAMPLES["mutated_masks"], **COMMON)
@given(data=mutated(MASK_SEEDS), reader=st.sampled_from(["binary", "nonzero", "half"]))
def test_mutated_masks(data, reader):
    _check(data, ".png", reader)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_files_decode(name):
    """The unmutated seeds are valid, so the mutations start from files that really decode."""
    _check(SEEDS[name], ".png", "image")
    path = _DIR / "seed.png"
    path.write_bytes(SEEDS[name])
    assert read_image(path).shape[:2] == (12, 10)


def test_example_budget():
    assert sum(EXAMPLES.values()) >= 200 or _SCALE < 1
