"""Masks for new images of any size: ``focusnet predict MODEL INPUT OUTPUT_DIR``.

Every image goes through the training preprocessing, read with the model config's ``channels``,
resized to the config's ``size`` (:func:`~focusnet.data.preprocess.resize_image`, anti-aliased
bilinear) and scaled with its ``normalization``. The model's sigmoid probabilities are then
resized back to the image's original height and width with a bilinear resize **of the
probabilities** (anti-aliased when the image is smaller than the model input), and only then
thresholded: a pixel is foreground when its probability is strictly above the threshold (the
training module's ``logits > logit(threshold)``). Masks therefore have smooth boundaries at any
size, and always exactly the original image's size.

With ``tta=True`` the probabilities are the mean over the identity, a horizontal flip and a
vertical flip of the input (each flipped back before averaging).

Outputs, per image ``<stem>.<ext>``, in ``output_dir``:

* ``<stem><suffix>.png``: the binary mask, 0/255, 8-bit grey (``suffix`` defaults to ``_mask``);
* ``<stem>_prob.png`` (optional): the probability map scaled to 0-255;
* ``<stem>_overlay.png`` (optional): the image with the mask tinted red and its contour in yellow,
  for looking at: downscaled to at most ``OVERLAY_MAX_SIDE`` (1024) pixels on the longer side (a
  full-resolution ISIC photo made a 5.7 MB PNG), with a contour about 1/250 of that side thick, so
  it stays visible when the picture is shown smaller. The mask is always at the original size.

Nothing is written when any output already exists (unless ``overwrite``), when the output folder
is an input folder or lies inside one, or when no input matches; each output file is written to a
temporary name and renamed, so an interrupted run leaves no half-written PNG.

Example:
    >>> from focusnet.engine.predict import predict
    >>> rows = predict("runs/isic-focusnetpp", "photos/", "masks/", tta=True)  # doctest: +SKIP
    >>> rows[0]["orig_size"]  # doctest: +SKIP
    [2016, 3024]
"""
from __future__ import annotations

import glob
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from focusnet.atomic import replace_into, temp_path
from focusnet.data.io import IMAGE_EXTENSIONS, read_image
from focusnet.data.preprocess import normalize_image, resize_image
from focusnet.errors import FocusNetError
from focusnet.weights import load_model, load_model_config

__all__ = ["BACKENDS", "collect_inputs", "predict", "probabilities_to_size", "overlay_image"]

BACKENDS = ("torch", "onnxruntime")
PROB_SUFFIX = "_prob"
OVERLAY_SUFFIX = "_overlay"
#: Longest side of an overlay; larger images are downscaled for it (the mask keeps the original size).
OVERLAY_MAX_SIDE = 1024
#: Contour thickness of an overlay, as a fraction of its longer side (at least one pixel).
_CONTOUR_FRACTION = 1 / 250
_TINT = np.array([255, 0, 0], np.float32)  # mask tint (red)
_CONTOUR = np.array([255, 255, 0], np.uint8)  # mask contour (yellow)
_TINT_ALPHA = 0.35


# ------------------------------------------------------------------------------------------ inputs
def _is_glob(text: str) -> bool:
    return glob.has_magic(text)


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )


def collect_inputs(inputs: str | Path | Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """The image files named by ``inputs`` and the folders they were listed from.

    Each entry is a file (taken as it is), a folder (its images, not recursive, sorted by name,
    hidden files skipped) or a glob pattern (``*``, ``?``, ``[...]``, ``**`` for sub-folders; only
    files with an image extension, sorted). Duplicates are dropped, keeping the first.

    Returns:
        ``(files, folders)``: ``folders`` are the input folders, the folders the glob matches lie
        in and, for ``**`` patterns, the pattern's fixed root (outputs must not be written there).

    Raises:
        FocusNetError: an entry that is neither an existing file, a folder nor a glob, or nothing
            matches at all.
    """
    entries = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not entries:
        raise FocusNetError("no INPUT given; pass an image file, a folder of images or a glob such as 'images/*.jpg'")
    files: list[Path] = []
    folders: list[Path] = []
    for entry in entries:
        text = os.path.expanduser(str(entry))
        path = Path(text)
        if path.is_dir():
            folders.append(path)
            found = _image_files(path)
            if not found:
                raise FocusNetError(
                    f"{path}: no images in this folder (looked for {', '.join(IMAGE_EXTENSIONS)}, not in sub-folders); "
                    "pass a folder of images or a glob such as 'images/**/*.jpg'"
                )
            files += found
        elif path.is_file():
            files.append(path)
        elif _is_glob(text):
            matched = sorted(
                Path(p) for p in glob.glob(text, recursive=True)
                if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_EXTENSIONS
            )
            if not matched:
                raise FocusNetError(f"{text}: no image files match this pattern; check the pattern (quote it in the shell)")
            files += matched
            folders += sorted({p.parent for p in matched})
            if "**" in text:
                root = Path(text.split("**", 1)[0] or ".")
                folders.append(root)
        else:
            raise FocusNetError(f"{text}: no such file or folder; pass an image file, a folder of images or a glob")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, folders


# --------------------------------------------------------------------------------- post-processing
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
    out = np.asarray(Image.fromarray(prob, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)
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


def _overlay(image: np.ndarray, mask: np.ndarray, prob: np.ndarray, threshold: float) -> np.ndarray:
    """The overlay of ``image`` (HxWxC uint8, its ``mask``) at :func:`overlay_size`.

    A downscaled overlay thresholds the model-size probabilities ``prob`` resized to its own size.
    """
    h, w = image.shape[:2]
    oh, ow = overlay_size(h, w)
    if (oh, ow) == (h, w):
        return overlay_image(image, mask)
    rgb = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    small = np.asarray(Image.fromarray(rgb, mode="RGB").resize((ow, oh), Image.BOX))
    return overlay_image(small, probabilities_to_size(prob, (oh, ow)) > threshold)


def _save_png(path: Path, array: np.ndarray, mode: str) -> None:
    """Write ``array`` as a PNG under a temporary name, then rename it to ``path`` (umask's file mode)."""
    _save_image(path, Image.fromarray(array, mode=mode), format="PNG")


def _save_image(path: Path, image: Image.Image, **kwargs: Any) -> None:
    """``image.save(path, **kwargs)`` through a temporary file renamed into place (umask's file mode)."""
    tmp = temp_path(path)
    try:
        image.save(tmp, **kwargs)
        replace_into(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -------------------------------------------------------------------------------------- backends
def _torch_runner(model, device) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    model.eval()
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(x).to(device=device, dtype=dtype))
            return torch.sigmoid(logits.float()).cpu().numpy()

    return run


def _onnx_runner(onnx_path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    try:
        from focusnet.engine.export import OnnxPredictor  # needs onnxruntime, an optional extra
    except ImportError as exc:  # onnxruntime missing, or an old focusnet
        raise FocusNetError(f"backend onnxruntime is unavailable ({exc}); pip install 'focusnet[onnx]'") from None
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FocusNetError(f"{onnx_path}: ONNX file not found; export one with `focusnet export` or fix the path")
    predictor = OnnxPredictor(onnx_path)

    def run(x: np.ndarray) -> np.ndarray:
        logits = np.asarray(predictor(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float32)
        return 1.0 / (1.0 + np.exp(-logits))

    return run


def _with_tta(run: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Mean sigmoid probability over the identity, a horizontal and a vertical flip."""

    def tta(x: np.ndarray) -> np.ndarray:
        total = run(x)
        total = total + run(np.ascontiguousarray(x[..., ::-1]))[..., ::-1]
        total = total + run(np.ascontiguousarray(x[..., ::-1, :]))[..., ::-1, :]
        return total / np.float32(3.0)

    return tta


def _resolve_model(model_or_path, backend: str, onnx_path, device, config):
    """``(run(x) -> probabilities, SavedModelConfig, description)``."""
    import torch.nn as nn

    if backend not in BACKENDS:
        raise FocusNetError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if isinstance(model_or_path, nn.Module):
        cfg = config if config is not None else getattr(model_or_path, "focusnet_config", None)
        if cfg is None:
            raise FocusNetError(
                "the model carries no config (preprocessing, threshold); load it with focusnet.load_model "
                "or pass config=SavedModelConfig(...)"
            )
        source = f"{cfg.describe()} (in memory)"
    else:
        path = Path(model_or_path)
        if backend == "onnxruntime" and onnx_path is None and path.suffix.lower() == ".onnx":
            raise FocusNetError(
                f"{path}: an ONNX file holds no preprocessing config; pass the .safetensors weights (or run folder) "
                "as MODEL and this file with --onnx"
            )
        cfg = config if config is not None else load_model_config(path)
        source = str(path)
    if backend == "onnxruntime":
        if onnx_path is None:
            raise FocusNetError("backend onnxruntime needs the exported model: pass --onnx FILE (onnx_path=...)")
        return _onnx_runner(onnx_path), cfg, f"{source} via {onnx_path}"
    if isinstance(model_or_path, nn.Module):
        model = model_or_path
        if device is not None:
            model = model.to(device)
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else "cpu"
    else:
        device = device or "cpu"
        model = load_model(model_or_path, device=device)
    return _torch_runner(model, device), cfg, source


# ------------------------------------------------------------------------------------------ plan
def _plan(files: list[Path], folders: list[Path], out: Path, suffix: str, probs: bool, overlays: bool, overwrite: bool):
    if any(sep in suffix for sep in ("/", "\\")) or suffix in (".", ".."):
        raise FocusNetError(f"--suffix {suffix!r}: must be plain text without a folder separator, e.g. _mask")
    kinds = [("mask", suffix)] + [("probabilities", PROB_SUFFIX)] * probs + [("overlay", OVERLAY_SUFFIX)] * overlays
    names = [s for _, s in kinds]
    if len(set(names)) != len(names):
        raise FocusNetError(f"--suffix {suffix!r} clashes with the {PROB_SUFFIX}/{OVERLAY_SUFFIX} outputs; choose another suffix")
    out_r = out.resolve()
    for folder in folders:
        f = folder.resolve()
        if out_r == f or f in out_r.parents:
            raise FocusNetError(
                f"{out}: the output folder is inside the input folder {folder}; the masks would be read as inputs "
                "next time: choose an output folder outside it"
            )
    by_stem: dict[str, Path] = {}
    inputs = {f.resolve() for f in files}
    plan = []
    for f in files:
        if f.stem in by_stem:
            raise FocusNetError(
                f"{f}: same name as {by_stem[f.stem]}; their outputs would overwrite each other: predict them into "
                "different folders"
            )
        by_stem[f.stem] = f
        targets = {kind: out / f"{f.stem}{s}.png" for kind, s in kinds}
        for target in targets.values():
            if target.resolve() in inputs:
                raise FocusNetError(f"{target}: this output would replace an input image; choose another --suffix or folder")
        plan.append((f, targets))
    if not overwrite:
        existing = [t for _, targets in plan for t in targets.values() if t.exists()]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise FocusNetError(f"{existing[0]}{more}: output already exists; pass --overwrite to replace, or choose another folder")
    return plan


def _plan_one_file(files: list[Path], target: Path, extras: bool, overwrite: bool) -> list:
    """The plan of ``predict MODEL IMAGE OUT.png``: the one image's mask written to ``OUT.png``."""
    if len(files) != 1:
        raise FocusNetError(
            f"{target}: a .png OUTPUT takes exactly one input image (got {len(files)}); give an output folder instead"
        )
    if extras:
        raise FocusNetError(f"{target}: --probabilities and --overlays need an output folder; give one instead of a .png file")
    if target.resolve() == files[0].resolve():
        raise FocusNetError(f"{target}: this output would replace the input image; choose another file name")
    if target.exists() and not overwrite:
        raise FocusNetError(f"{target}: output already exists; pass --overwrite to replace it, or choose another name")
    return [(files[0], {"mask": target})]


def _progress(total: int, enabled: bool):
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="img", desc="predict", file=sys.stderr, leave=False, dynamic_ncols=True)
        except ImportError:  # pragma: no cover - tqdm comes with lightning
            pass

    class _NoBar:
        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

    return _NoBar()


def _batches(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------------------- predict
def predict(
    model_or_path: Any,
    inputs: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    *,
    suffix: str = "_mask",
    save_probabilities: bool = False,
    save_overlays: bool = False,
    tta: bool = False,
    batch_size: int = 4,
    threshold: float | None = None,
    backend: str = "torch",
    onnx_path: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    device: str | None = None,
    config: Any = None,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """Predict binary masks at each image's original size and write them as PNGs.

    Args:
        model_or_path: a ``.safetensors`` file, its ``.json``, a run folder, or a model from
            :func:`focusnet.load_model` (or any model, with ``config``).
        inputs: an image file, a folder (non-recursive), a glob pattern, or a list of them.
        output_dir: where the PNGs go (created); or, for one input image, a ``.png`` file name for
            its mask.
        suffix: mask file name is ``<stem><suffix>.png``.
        save_probabilities: also write ``<stem>_prob.png`` (probability x 255).
        save_overlays: also write ``<stem>_overlay.png`` (at most ``OVERLAY_MAX_SIDE`` pixels on a side).
        tta: average the probabilities over identity, horizontal and vertical flips.
        batch_size: images per forward pass.
        threshold: foreground when probability > threshold; default: the model config's.
        backend: ``"torch"`` or ``"onnxruntime"`` (then ``onnx_path`` is the exported model and
            ``model_or_path`` only supplies the config).
        onnx_path: the ``.onnx`` file for the onnxruntime backend.
        overwrite: replace existing outputs (otherwise refuse before writing anything).
        progress: show a progress bar on stderr.
        device: torch device (default: the CPU, or the given model's device).
        config: a :class:`~focusnet.weights.SavedModelConfig` for a model without ``focusnet_config``.
        workers: threads reading and writing images (default: CPUs, at most 4).

    Returns:
        One dict per image, in input order: ``id`` (the stem), ``input``, ``output`` (the mask),
        ``orig_size`` (``[height, width]``), ``probabilities`` and ``overlay`` (paths or None) and
        ``foreground`` (fraction of mask pixels).

    Raises:
        FocusNetError: bad arguments, no matching inputs, existing outputs without ``overwrite``,
            an output folder inside an input folder, or an unreadable image (outputs written for
            earlier images are kept).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise FocusNetError(f"--batch-size must be an integer >= 1; got {batch_size!r}")
    if threshold is not None and (isinstance(threshold, bool) or not 0.0 < float(threshold) < 1.0):
        raise FocusNetError(f"--threshold must be a number in (0, 1); got {threshold!r}")
    output_dir = Path(output_dir).expanduser()
    if output_dir.exists() and not output_dir.is_dir():
        raise FocusNetError(f"{output_dir}: exists and is not a folder; choose an output folder")
    files, folders = collect_inputs(inputs)
    if output_dir.suffix.lower() == ".png" and not output_dir.is_dir():  # `predict MODEL img.jpg out.png`
        plan = _plan_one_file(files, output_dir, save_probabilities or save_overlays, overwrite)
        output_dir = output_dir.parent
    else:
        plan = _plan(files, folders, output_dir, suffix, save_probabilities, save_overlays, overwrite)
    run, cfg, _ = _resolve_model(model_or_path, backend, onnx_path, device, config)
    if cfg.num_classes != 1:
        raise FocusNetError(
            f"{cfg.describe()}: predict writes binary masks and needs a one-class model (num_classes=1), "
            f"not {cfg.num_classes}"
        )
    thr = float(cfg.threshold if threshold is None else threshold)
    forward = _with_tta(run) if tta else run
    channels, size, norm = cfg.channels, cfg.size, cfg.normalization
    output_dir.mkdir(parents=True, exist_ok=True)

    def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
        image = read_image(path, channels=channels)
        return image, normalize_image(resize_image(image, size), norm)

    def finish(item) -> dict[str, Any]:
        (path, targets), image, prob = item
        h, w = image.shape[:2]
        full = probabilities_to_size(prob, (h, w))
        mask = full > thr
        _save_png(targets["mask"], np.where(mask, 255, 0).astype(np.uint8), "L")
        if "probabilities" in targets:
            _save_png(targets["probabilities"], np.round(full * 255.0).astype(np.uint8), "L")
        if "overlay" in targets:
            rgb = image if channels == 3 else read_image(path, channels=3)
            _save_png(targets["overlay"], _overlay(rgb, mask, prob, thr), "RGB")
        return {
            "id": path.stem,
            "input": str(path),
            "output": str(targets["mask"]),
            "orig_size": [int(h), int(w)],
            "probabilities": str(targets["probabilities"]) if "probabilities" in targets else None,
            "overlay": str(targets["overlay"]) if "overlay" in targets else None,
            "foreground": float(mask.mean()),
        }

    n_workers = workers or max(1, min(4, os.cpu_count() or 1))
    results: list[dict[str, Any]] = []
    bar = _progress(len(plan), progress)
    try:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for batch in _batches(plan, batch_size):
                loaded = list(pool.map(load, [p for p, _ in batch]))
                x = np.stack([x for _, x in loaded])
                probs = forward(x)
                if probs.ndim != 4 or probs.shape[:2] != (len(batch), 1):
                    raise FocusNetError(
                        f"{cfg.describe()}: expected outputs of shape (B, 1, H, W), got {tuple(probs.shape)}; "
                        "predict needs a one-class segmentation model"
                    )
                items = [(entry, image, probs[i, 0]) for i, (entry, (image, _)) in enumerate(zip(batch, loaded))]
                for row in pool.map(finish, items):
                    results.append(row)
                    bar.update(1)
    finally:
        bar.close()
    return results
