"""Deterministic synthetic segmentation sets that look like the real tasks.

Two kinds, both written as a folder dataset ``<out>/images/<id>.png`` + ``<out>/masks/<id>.png``
(masks are 0/255 greyscale PNGs):

* ``lesions``: dermoscopy-like skin lesions. Irregular boundaries (a radially perturbed ellipse
  plus smooth noise), skin tone varying per image, low-frequency skin texture, darker skin
  patches and freckles, shading, dermoscope vignetting, hairs crossing lesion and skin, mild
  blur and sensor noise. The lesion is brown/red variegated with pigment network and
  globules; its brightness ranges from clearly darker than the skin to *equal* to it (pale,
  low-contrast lesions differ only in hue, texture and shape), so no single grey threshold
  segments the set well, while a CNN can.
* ``nuclei``: fluorescence-like nuclei. Many small, clustered, touching ellipses of varying
  brightness (some dim) on an uneven background, with blur and shot noise.

Everything is driven by a :class:`numpy.random.Generator`, so a seed gives identical bytes on
every run. Sample ``i`` of :func:`generate` depends only on ``(seed, i)``, not on ``count``.
Only numpy and Pillow are used.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from focusnet.data.io import write_mask
from focusnet.errors import FocusNetError

KINDS = ("lesions", "nuclei")
_PREFIX = {"lesions": "lesion", "nuclei": "nuclei"}

# Skin tones (linear RGB in [0, 1]) from light to tanned, interpolated per image.
_SKIN_TONES = np.array(
    [
        [0.95, 0.84, 0.80],  # pale
        [0.93, 0.76, 0.74],  # pinkish
        [0.87, 0.70, 0.60],  # light tan
        [0.76, 0.58, 0.46],  # tan
    ],
    dtype=np.float32,
)
# Lesion hues (scaled to a target brightness per image): brown, red-brown, orange-brown, grey-brown.
_LESION_HUES = np.array(
    [
        [0.62, 0.40, 0.27],
        [0.70, 0.36, 0.30],
        [0.64, 0.45, 0.32],
        [0.50, 0.38, 0.34],
    ],
    dtype=np.float32,
)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise FocusNetError(f"unknown synthetic kind {kind!r}; choose one of: {', '.join(KINDS)}")


def _smooth_noise(rng: np.random.Generator, size: int, cells: float) -> np.ndarray:
    """Band-limited noise, zero mean and unit std, with about ``cells`` blobs across the image."""
    cells = max(1, int(round(cells)))
    grid = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    # Upsample a grid slightly larger than needed and crop at a random sub-cell offset, so blob
    # centres do not sit on a fixed lattice.
    scale = size / cells
    big = int(np.ceil((cells + 3) * scale))
    up = np.asarray(Image.fromarray(grid, mode="F").resize((big, big), Image.Resampling.BICUBIC), dtype=np.float32)
    oy, ox = (rng.integers(0, max(1, int(scale)) + 1, size=2)).tolist()
    out = up[oy + int(scale) : oy + int(scale) + size, ox + int(scale) : ox + int(scale) + size]
    out = out - out.mean()
    std = out.std()
    return out / std if std > 1e-8 else out


@lru_cache(maxsize=64)
def _gauss_kernel(sigma: float) -> np.ndarray:
    half = max(1, int(np.ceil(3 * sigma)))
    w = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    return (w / w.sum()).astype(np.float32)


def _blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (std ``sigma`` pixels, reflected borders) of a float HxW or HxWxC array.

    Shifted-slice sums rather than BLAS, so it stays fast when other processes load the CPUs.
    """
    arr = arr.astype(np.float32, copy=False)
    if sigma <= 0.05:
        return arr
    w = _gauss_kernel(round(float(sigma), 2))
    half = len(w) // 2
    for axis in (0, 1):
        pad = [(0, 0)] * arr.ndim
        pad[axis] = (half, half)
        padded = np.pad(arr, pad, mode="symmetric")
        n = arr.shape[axis]
        out = np.zeros_like(arr)
        for k, wk in enumerate(w):
            out += wk * (padded[k : k + n] if axis == 0 else padded[:, k : k + n])
        arr = out
    return arr


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB array (last axis), without BLAS."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _dots(size: int, ys: np.ndarray, xs: np.ndarray, rs: np.ndarray) -> np.ndarray:
    """Soft Gaussian dots (peak 1) at ``(ys, xs)`` with radii ``rs``, computed in local windows."""
    out = np.zeros((size, size), np.float32)
    for y0, x0, r0 in zip(np.asarray(ys, float), np.asarray(xs, float), np.asarray(rs, float)):
        ext = int(np.ceil(3 * r0)) + 1
        ya, yb = max(0, int(y0) - ext), min(size, int(y0) + ext + 1)
        xa, xb = max(0, int(x0) - ext), min(size, int(x0) + ext + 1)
        if ya >= yb or xa >= xb:
            continue
        gy = np.arange(ya, yb, dtype=np.float32)[:, None] - y0
        gx = np.arange(xa, xb, dtype=np.float32)[None, :] - x0
        out[ya:yb, xa:xb] = np.maximum(out[ya:yb, xa:xb], np.exp(-(gy * gy + gx * gx) / (2 * r0 * r0)))
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def _curves_alpha(
    rng: np.random.Generator, size: int, count: int, width: tuple[float, float], ss: int = 3
) -> np.ndarray:
    """Anti-aliased thin curves (hairs) as an alpha map in [0, 1], drawn supersampled."""
    big = size * ss
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    t = np.linspace(0.0, 1.0, 24, dtype=np.float32)[:, None]
    for _ in range(count):
        # Quadratic Bezier from one point to another, control point pulled sideways: a curved hair.
        p0 = rng.uniform(-0.2, 1.2, size=2) * big
        ang = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.3, 1.0) * big
        p2 = p0 + length * np.array([np.cos(ang), np.sin(ang)])
        mid = (p0 + p2) / 2
        normal = np.array([-np.sin(ang), np.cos(ang)])
        p1 = mid + normal * rng.uniform(-0.35, 0.35) * length
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        w = max(1, int(round(rng.uniform(*width) * ss)))
        draw.line([tuple(p) for p in pts.tolist()], fill=int(rng.uniform(170, 255)), width=w, joint="curve")
    small = canvas.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32) / 255.0


def _finish(rgb: np.ndarray, rng: np.random.Generator, blur: float, noise: float) -> np.ndarray:
    """Blur, add sensor noise and quantise a float RGB image in [0, 1] to uint8."""
    rgb = _blur(rgb, blur)
    rgb = rgb + rng.standard_normal(rgb.shape).astype(np.float32) * noise
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _lesion_mask(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Irregular lesion mask and its normalised radial coordinate (1 on the boundary)."""
    for _ in range(20):
        frac = rng.uniform(0.06, 0.45)
        r_eq = np.sqrt(frac * size * size / np.pi)
        aspect = rng.uniform(1.0, 1.7)
        a, b = r_eq * np.sqrt(aspect), r_eq / np.sqrt(aspect)
        theta0 = rng.uniform(0, np.pi)
        margin = 0.35 * r_eq
        cy, cx = rng.uniform(margin, size - margin, size=2)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(theta0) + dy * np.sin(theta0)) / a
        v = (-dx * np.sin(theta0) + dy * np.cos(theta0)) / b
        rho = np.sqrt(u * u + v * v)
        phi = np.arctan2(v, u)
        # Radial Fourier perturbation: lobes and bays of decreasing amplitude.
        pert = np.zeros_like(rho)
        for k in range(2, 9):
            amp = rng.uniform(0.0, 0.22) / (k - 0.8)
            pert += amp * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
        # Fine ragged border from smooth noise.
        pert += 0.07 * _smooth_noise(rng, size, rng.uniform(8, 16))
        radius = 1.0 + pert
        rho_n = rho / np.maximum(radius, 0.2)
        mask = rho_n < 1.0
        # Satellite blob joined to the main lesion now and then.
        if rng.random() < 0.25:
            ang = rng.uniform(0, 2 * np.pi)
            sy, sx = cy + 0.9 * b * np.sin(ang), cx + 0.9 * a * np.cos(ang)
            sr = rng.uniform(0.25, 0.45) * r_eq
            sat = ((yy - sy) ** 2 + (xx - sx) ** 2) / (sr * sr)
            mask |= sat < 1.0
            rho_n = np.minimum(rho_n, np.sqrt(sat))
        cover = mask.mean()
        if 0.04 <= cover <= 0.55:
            return mask, rho_n
    return mask, rho_n


def _make_lesion(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mask, rho_n = _lesion_mask(rng, size, yy, xx)

    # --- skin -------------------------------------------------------------------------------------
    tone_pos = rng.uniform(0, len(_SKIN_TONES) - 1)
    i0 = int(tone_pos)
    i1 = min(i0 + 1, len(_SKIN_TONES) - 1)
    skin_col = _SKIN_TONES[i0] * (1 - (tone_pos - i0)) + _SKIN_TONES[i1] * (tone_pos - i0)
    skin_col = skin_col * rng.uniform(0.85, 1.05)
    skin = np.broadcast_to(skin_col, (size, size, 3)).astype(np.float32).copy()
    # Low-frequency brightness texture and patchy redness (erythema).
    skin *= (1 + 0.05 * _smooth_noise(rng, size, rng.uniform(2, 5)))[:, :, None]
    red = np.clip(_smooth_noise(rng, size, rng.uniform(2, 4)), 0, None) * rng.uniform(0, 0.08)
    skin += red[:, :, None] * np.array([0.3, -0.6, -0.5], dtype=np.float32)
    # Fine skin grain.
    skin *= (1 + 0.025 * _smooth_noise(rng, size, size / 4))[:, :, None]
    # Darker skin patches (tanned or shadowed areas) in most images: skin hue, darker.
    if rng.random() < 0.75:
        patch = _sigmoid((_smooth_noise(rng, size, rng.uniform(1.5, 4)) - rng.uniform(0.0, 1.0)) / 0.4)
        depth = rng.uniform(0.08, 0.3)
        skin *= (1 - depth * patch)[:, :, None] ** np.array([1.0, 1.1, 1.2], dtype=np.float32)
    # Freckles: small soft brown dots on the skin.
    if rng.random() < 0.4:
        n = int(rng.integers(3, 25))
        dots = _dots(size, rng.uniform(0, size, n), rng.uniform(0, size, n), rng.uniform(0.006, 0.016, n) * size)
        skin *= (1 - rng.uniform(0.1, 0.3) * dots)[:, :, None]
    skin_luma = float(np.median(_luma(skin)))

    # --- lesion -----------------------------------------------------------------------------------
    # Brightness relative to the skin: many lesions are pale (same brightness, other hue/texture).
    r = rng.random()
    if r < 0.45:
        darkness = rng.uniform(-0.08, 0.1)
    elif r < 0.8:
        darkness = rng.uniform(0.1, 0.3)
    else:
        darkness = rng.uniform(0.3, 0.65)
    pale = darkness < 0.1
    # Pale lesions get a saturated brown/red hue and always some texture, so they stay visible.
    hue_a = _LESION_HUES[rng.integers(3 if pale else len(_LESION_HUES))]
    hue_b = _LESION_HUES[rng.integers(len(_LESION_HUES))]
    target = skin_luma * (1 - darkness)
    col_a = hue_a * (target / _luma(hue_a))
    if pale:  # light brown: part skin, part pigment, at the skin's brightness
        col_a = skin_col * (1 - (w := rng.uniform(0.5, 0.85))) + col_a * w
        col_a = col_a * (target / _luma(col_a))
    col_b = hue_b * (target * rng.uniform(0.45, 0.8) / _luma(hue_b))  # darker variegation
    mix = _sigmoid(_smooth_noise(rng, size, rng.uniform(3, 8)) * rng.uniform(1.0, 3.0) - rng.uniform(0.5, 2.0))
    # Often darker in the centre, lighter at the rim.
    mix = np.clip(mix + rng.uniform(0, 0.6) * (1 - np.clip(rho_n, 0, 1)) ** 2, 0, 1)
    lesion = col_a * (1 - mix[:, :, None]) + col_b * mix[:, :, None]
    lesion *= (1 + 0.06 * _smooth_noise(rng, size, size / 10))[:, :, None]
    # Pigment network: a fine, soft dark mesh along zero crossings of fine noise, in part of the lesion.
    if pale or rng.random() < 0.7:
        net_n = _smooth_noise(rng, size, size / rng.uniform(3.5, 6))
        region = _sigmoid(_smooth_noise(rng, size, 3) * 2 + rng.uniform(-1, 2))
        network = _blur(np.exp(-((net_n / 0.45) ** 2)), 0.5 * size / 128) * region * rng.uniform(0.1, 0.3)
        lesion = lesion * (1 - network[:, :, None])
    # Globules: dark brown dots inside the lesion.
    ys, xs = np.nonzero(mask)
    if rng.random() < 0.5 and len(ys):
        n = int(rng.integers(3, 30))
        pick = rng.integers(0, len(ys), n)
        dots = _dots(size, ys[pick], xs[pick], rng.uniform(0.006, 0.016, n) * size)
        lesion *= (1 - rng.uniform(0.3, 0.6) * dots)[:, :, None]
    # Regression areas: whitish-blue veil patches.
    if rng.random() < 0.25:
        veil = _sigmoid((_smooth_noise(rng, size, 5) - 1.0) / 0.3) * rng.uniform(0.2, 0.5)
        lesion = lesion * (1 - veil[:, :, None]) + np.array([0.75, 0.75, 0.82], np.float32) * veil[:, :, None]
    # Soft, uneven border: the label is the hard mask, the pigment fades over a few pixels and
    # is patchily transparent near the rim.
    alpha = _blur(mask.astype(np.float32), rng.uniform(1.0, 4.0) * size / 128)
    rim = np.clip(rho_n, 0, 1) ** 2 * np.clip(0.5 + 0.5 * _smooth_noise(rng, size, 6), 0, 1)
    alpha *= 1 - rng.uniform(0.0, 0.5) * rim
    alpha *= rng.uniform(0.85, 1.0)
    rgb = skin * (1 - alpha[:, :, None]) + lesion * alpha[:, :, None]

    # --- hairs, illumination, dermoscope ---------------------------------------------------------
    if rng.random() < 0.65:
        count = int(rng.integers(1, 16))
        hair = _curves_alpha(rng, size, count, (0.4 * size / 128, 1.6 * size / 128))
        hair_col = np.array([0.18, 0.13, 0.10], np.float32) * rng.uniform(0.5, 1.5)
        rgb = rgb * (1 - hair[:, :, None]) + hair_col * hair[:, :, None]
    # Shading: a linear illumination gradient across the field.
    ang = rng.uniform(0, 2 * np.pi)
    grad = ((xx - size / 2) * np.cos(ang) + (yy - size / 2) * np.sin(ang)) / size
    rgb *= (1 + rng.uniform(0, 0.35) * grad)[:, :, None]
    # Vignetting: darker corners; sometimes the dermoscope's hard black circle.
    rr = np.sqrt((xx - size / 2 + 0.5) ** 2 + (yy - size / 2 + 0.5) ** 2) / (size / 2)
    r0 = rng.uniform(0.5, 0.9)
    vig = np.clip((rr - r0) / (1.42 - r0), 0, 1) ** 2 * rng.uniform(0.1, 0.5)
    rgb *= (1 - vig)[:, :, None]
    if rng.random() < 0.2:
        circle = rng.uniform(1.0, 1.3)
        rgb *= _sigmoid((circle - rr) * size / 3)[:, :, None]
    # Global colour cast / white balance.
    rgb *= rng.uniform(0.95, 1.05, size=3).astype(np.float32)
    img = _finish(rgb, rng, blur=rng.uniform(0.3, 1.0) * size / 128, noise=rng.uniform(0.005, 0.025))
    return img, mask


def _make_nuclei(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mean_r = max(1.5, rng.uniform(0.022, 0.06) * size)
    density = rng.uniform(0.08, 0.45)  # rough target coverage
    count = max(3, int(density * size * size / (np.pi * mean_r * mean_r * 1.3)))
    count = min(count, 400)
    # Clustered positions: a few cluster centres plus scattered nuclei.
    n_clusters = int(rng.integers(1, 6))
    centres = rng.uniform(0, size, size=(n_clusters, 2))
    spread = rng.uniform(0.08, 0.3) * size
    signal = np.zeros((size, size), np.float32)
    mask = np.zeros((size, size), bool)
    dim_frac = rng.uniform(0.1, 0.5)
    bright_base = rng.uniform(0.5, 0.9)
    for _ in range(count):
        cy, cx = centres[rng.integers(n_clusters)] + rng.standard_normal(2) * spread
        if rng.random() >= 0.6 or not (0 <= cy < size and 0 <= cx < size):
            cy, cx = rng.uniform(0, size, 2)  # scattered nucleus; centres always in the image
        r = mean_r * rng.lognormal(0.0, 0.2)
        a, b = r * rng.uniform(1.0, 1.6), r
        th = rng.uniform(0, np.pi)
        ext = int(np.ceil(a)) + 2
        y0, y1 = max(0, int(cy) - ext), min(size, int(cy) + ext + 1)
        x0, x1 = max(0, int(cx) - ext), min(size, int(cx) + ext + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        u = (dx * np.cos(th) + dy * np.sin(th)) / a
        v = (-dx * np.sin(th) + dy * np.cos(th)) / b
        rho2 = u * u + v * v
        inside = rho2 < 1.0
        if not inside.any():
            continue
        level = bright_base * rng.uniform(0.6, 1.2)
        if rng.random() < dim_frac:
            level *= rng.uniform(0.12, 0.35)  # dim nucleus: still foreground
        profile = np.where(inside, level * (1.0 - 0.35 * rho2), 0.0)
        # Touching nuclei: keep the brighter one where they overlap.
        signal[y0:y1, x0:x1] = np.maximum(signal[y0:y1, x0:x1], profile)
        mask[y0:y1, x0:x1] |= inside
    # Chromatin texture inside nuclei.
    signal *= 1 + 0.18 * _smooth_noise(rng, size, size / 5)
    # Uneven background: low offset plus smooth illumination and faint cytoplasm haze.
    bg = rng.uniform(0.01, 0.08) + rng.uniform(0.0, 0.05) * (_smooth_noise(rng, size, 2) + 1.5) / 3
    haze = _blur(mask.astype(np.float32), rng.uniform(2, 6) * size / 128) * rng.uniform(0, 0.08)
    img: np.ndarray = np.clip(bg + haze + signal, 0, None)
    img = _blur(img, rng.uniform(0.4, 1.2) * size / 128)
    # Shot noise (signal dependent) plus read noise.
    photons = rng.uniform(80, 400)
    img = rng.poisson(img * photons).astype(np.float32) / photons
    img += rng.standard_normal(img.shape).astype(np.float32) * rng.uniform(0.003, 0.015)
    gain = 1.0 / max(float(np.percentile(img, 99.5)), 0.2) * rng.uniform(0.5, 0.95)
    img = img * gain
    # Mostly grey; sometimes a weak stain tint.
    tint = np.ones(3, np.float32) if rng.random() < 0.8 else rng.uniform(0.6, 1.0, 3).astype(np.float32)
    rgb = img[:, :, None] * tint
    return (np.clip(rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8), mask


def make_sample(kind: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Make one synthetic image and its mask in memory.

    Args:
        kind: ``"lesions"`` (dermoscopy-like) or ``"nuclei"`` (fluorescence-like).
        size: side of the square image in pixels (>= 16).
        rng: the random generator; the same generator state gives the same sample.

    Returns:
        ``(image, mask)``: ``uint8`` HxWx3 RGB and ``bool`` HxW.

    Example:
        >>> img, mask = make_sample("lesions", 64, np.random.default_rng(0))
        >>> img.shape, img.dtype, mask.shape, mask.dtype
        ((64, 64, 3), dtype('uint8'), (64, 64), dtype('bool'))
    """
    _check_kind(kind)
    if int(size) < 16:
        raise FocusNetError(f"synthetic image size {size} is too small; use a size of at least 16")
    if kind == "lesions":
        return _make_lesion(int(size), rng)
    return _make_nuclei(int(size), rng)


def generate(
    kind: str,
    out_dir: str | Path,
    count: int,
    size: int = 128,
    seed: int = 0,
    overwrite: bool = False,
    prefix: str | None = None,
) -> list[str]:
    """Write a synthetic folder dataset ``out_dir/images/<id>.png`` + ``out_dir/masks/<id>.png``.

    Sample ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so it does not depend on
    ``count``. Ids are ``lesion_0000``, ``lesion_0001``, ... (``nuclei_0000``, ... for nuclei), or
    ``<prefix>_0000``, ... with ``prefix`` (so a second set, e.g. new images to predict, does not
    reuse the names of a training set's different pictures).

    Args:
        kind: ``"lesions"`` or ``"nuclei"``.
        out_dir: dataset folder; created if missing. A non-empty folder is refused unless
            ``overwrite`` is true, which replaces the images/masks of earlier synthetic runs.
        count: number of image/mask pairs (>= 1).
        size: side of the square images in pixels.
        seed: random seed; the same seed writes identical files.
        overwrite: allow writing into a non-empty folder.
        prefix: the ids' prefix (letters, digits, ``-``; default ``lesion`` or ``nuclei``).

    Returns:
        The ids written, in order.

    Example:
        >>> ids = generate("lesions", "/tmp/lesions_demo", count=4, size=64, overwrite=True)
        >>> ids[0]
        'lesion_0000'
    """
    _check_kind(kind)
    count, size, seed = int(count), int(size), int(seed)
    if count < 1:
        raise FocusNetError(f"synthetic count must be at least 1 (got {count})")
    if size < 16:
        raise FocusNetError(f"synthetic image size {size} is too small; use a size of at least 16")
    if seed < 0:
        raise FocusNetError(f"synthetic seed must be >= 0 (got {seed})")
    stem = _PREFIX[kind] if prefix is None else str(prefix)
    if not re.fullmatch(r"[A-Za-z0-9-]+", stem):
        raise FocusNetError(f"synthetic prefix {stem!r}: use letters, digits and '-' only, e.g. 'new'")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FocusNetError(f"{out}: exists and is not a folder; choose another output folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FocusNetError(f"{out}: output folder is not empty; choose an empty folder or pass overwrite=True")
        # every earlier synthetic set goes (either kind, this prefix); files of other names stay
        synthetic_stems = "|".join(re.escape(s) for s in sorted({*_PREFIX.values(), stem}))
        for sub in ("images", "masks"):
            folder = out / sub
            if folder.is_dir():
                for f in folder.iterdir():
                    if f.is_file() and re.fullmatch(rf"({synthetic_stems})_\d{{4,}}\.png", f.name):
                        f.unlink()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    digits = max(4, len(str(count - 1)))
    ids = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        img, mask = make_sample(kind, size, rng)
        sid = f"{stem}_{i:0{digits}d}"
        Image.fromarray(img, mode="RGB").save(out / "images" / f"{sid}.png", compress_level=1)
        write_mask(out / "masks" / f"{sid}.png", mask)
        ids.append(sid)
    return ids
