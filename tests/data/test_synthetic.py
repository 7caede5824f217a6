"""Synthetic datasets: determinism, layout, coverage, and that they are not threshold-trivial."""
from __future__ import annotations

import time

import numpy as np
import pytest

from focusnet.data.io import read_image, read_mask
from focusnet.data.synthetic import KINDS, generate, make_sample
from focusnet.errors import FocusNetError


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _oracle_threshold_dice(img: np.ndarray, mask: np.ndarray) -> float:
    """Best Dice of any single grey threshold on this image, either polarity."""
    grey = np.rint(img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114).astype(np.int64).ravel()
    fg = mask.ravel()
    hist_fg = np.bincount(grey[fg], minlength=256).astype(np.float64)
    hist_all = np.bincount(grey, minlength=256).astype(np.float64)
    n_fg = fg.sum()
    tp_dark, pred_dark = np.cumsum(hist_fg), np.cumsum(hist_all)  # predict grey <= t
    tp_bright = n_fg - np.concatenate([[0.0], tp_dark[:-1]])  # predict grey >= t
    pred_bright = hist_all.sum() - np.concatenate([[0.0], pred_dark[:-1]])
    dark = 2 * tp_dark / (pred_dark + n_fg)
    bright = 2 * tp_bright / (pred_bright + n_fg)
    return float(max(dark.max(), bright.max()))


@pytest.mark.parametrize("kind", KINDS)
def test_make_sample_types(kind):
    img, mask = make_sample(kind, 48, np.random.default_rng(3))
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
    assert mask.shape == (48, 48) and mask.dtype == bool
    assert 0 < mask.mean() < 1


@pytest.mark.parametrize("kind", KINDS)
def test_generate_is_deterministic(tmp_path, kind):
    a = generate(kind, tmp_path / "a", count=3, size=40, seed=7)
    b = generate(kind, tmp_path / "b", count=3, size=40, seed=7)
    c = generate(kind, tmp_path / "c", count=3, size=40, seed=8)
    prefix = "lesion" if kind == "lesions" else "nuclei"
    assert a == b == c == [f"{prefix}_0000", f"{prefix}_0001", f"{prefix}_0002"]
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert sorted(fa) == sorted(f"{d}/{i}.png" for d in ("images", "masks") for i in a)
    assert fa == fb
    assert all(fa[k] != fc[k] for k in fa if k.startswith("images/"))
    # Sample i does not depend on count.
    generate(kind, tmp_path / "d", count=2, size=40, seed=7)
    fd = _files(tmp_path / "d")
    assert all(fd[k] == fa[k] for k in fd)


def test_written_files_read_back(tmp_path):
    ids = generate("lesions", tmp_path, count=2, size=32, seed=1)
    rng = np.random.default_rng([1, 1])
    img, mask = make_sample("lesions", 32, rng)
    assert (read_image(tmp_path / "images" / f"{ids[1]}.png") == img).all()
    assert (read_mask(tmp_path / "masks" / f"{ids[1]}.png") == mask).all()  # strict 0/255 binary


def test_generate_refuses_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FocusNetError, match="not empty.*overwrite=True") as exc:
        generate("lesions", tmp_path, count=1, size=32)
    assert str(tmp_path) in str(exc.value)
    generate("lesions", tmp_path, count=3, size=32, overwrite=True)
    # overwrite replaces earlier synthetic files and leaves other files alone
    ids = generate("nuclei", tmp_path, count=1, size=32, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [f"{ids[0]}.png"]
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_bad_arguments():
    with pytest.raises(FocusNetError, match="lesions, nuclei"):
        make_sample("cells", 32, np.random.default_rng(0))
    with pytest.raises(FocusNetError, match="lesions, nuclei"):
        generate("cells", "/nonexistent/never", count=1)
    with pytest.raises(FocusNetError, match="at least 1"):
        generate("lesions", "/nonexistent/never", count=0)


def test_lesion_coverage_and_threshold_oracle():
    samples = [make_sample("lesions", 96, np.random.default_rng([0, i])) for i in range(40)]
    cover = np.array([m.mean() for _, m in samples])
    assert cover.min() >= 0.03 and cover.max() <= 0.6, cover
    assert 0.1 <= cover.mean() <= 0.4
    dice = np.array([_oracle_threshold_dice(img, m) for img, m in samples])
    # Per-image oracle threshold (an upper bound on any global grey threshold): clearly not trivial.
    assert dice.mean() < 0.75, dice.mean()
    # ...but the lesions are not invisible either: many are darker than the skin.
    assert dice.mean() > 0.4 and (dice > 0.85).any()


def test_nuclei_coverage():
    cover = np.array([make_sample("nuclei", 64, np.random.default_rng([0, i]))[1].mean() for i in range(20)])
    assert cover.min() >= 0.02 and cover.max() <= 0.6, cover


def test_generation_speed(tmp_path):
    t0 = time.perf_counter()
    generate("lesions", tmp_path, count=20, size=128)
    # Budget: 200 images at 128^2 in < 10 s; 20 here, with a wide margin for a loaded CI machine.
    assert time.perf_counter() - t0 < 4.0
