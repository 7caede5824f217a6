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

This module is the command; :mod:`focusnet.engine.predict_files` finds the inputs and plans the
outputs, :mod:`focusnet.engine.backends` runs the model (torch or onnxruntime, with or without
TTA) and :mod:`focusnet.engine.postprocess` resizes the probabilities back and draws the overlays.

Example:
    >>> from focusnet.engine.predict import predict
    >>> rows = predict("runs/isic-focusnetpp", "photos/", "masks/", tta=True)  # doctest: +SKIP
    >>> rows[0]["orig_size"]  # doctest: +SKIP
    [2016, 3024]
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from focusnet.data.io import read_image
from focusnet.data.preprocess import normalize_image, resize_image
from focusnet.engine.backends import resolve_model, with_tta
from focusnet.engine.postprocess import (
    OVERLAY_MAX_SIDE,  # noqa: F401 - the old import path
    overlay,
    overlay_image,
    probabilities_to_size,
    save_png,
)
from focusnet.engine.predict_files import OVERLAY_SUFFIX, PROB_SUFFIX, collect_inputs, plan_one_file, plan_outputs  # noqa: F401 - the old import path (scoring)
from focusnet.errors import FocusNetError
from focusnet.vocab import BACKENDS

__all__ = ["BACKENDS", "collect_inputs", "predict", "probabilities_to_size", "overlay_image"]


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


def _skipped_row(path: Path, reason: str) -> dict[str, Any]:
    """The result row of an image left out by ``skip_bad``: the reason, and no outputs."""
    return {"id": path.stem, "input": str(path), "output": None, "orig_size": None, "probabilities": None,
            "overlay": None, "foreground": None, "error": reason}


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
    backend: str | None = None,
    onnx_path: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    device: str | None = None,
    config: Any = None,
    workers: int | None = None,
    skip_bad: bool = False,
) -> list[dict[str, Any]]:
    """Predict binary masks at each image's original size and write them as PNGs.

    Args:
        model_or_path: a ``.safetensors`` file, its ``.json``, a run folder, an ``.onnx`` file
            written by ``focusnet export`` from one of those (it carries the config and runs in
            onnxruntime), or a model from :func:`focusnet.load_model` (or any model, with ``config``).
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
            ``model_or_path`` only supplies the config); default: ``onnxruntime`` for an ``.onnx``
            model or with ``onnx_path``, else ``torch``.
        onnx_path: the ``.onnx`` file for the onnxruntime backend.
        overwrite: replace existing outputs (otherwise refuse before writing anything).
        progress: show a progress bar on stderr.
        device: torch device (default: the CPU, or the given model's device).
        config: a :class:`~focusnet.weights.SavedModelConfig` for a model without ``focusnet_config``.
        workers: threads reading and writing images (default: CPUs, at most 4).
        skip_bad: leave out images that cannot be read (their row has ``error`` and no outputs)
            instead of stopping at the first.

    Returns:
        One dict per image, in input order: ``id`` (the stem), ``input``, ``output`` (the mask),
        ``orig_size`` (``[height, width]``), ``probabilities`` and ``overlay`` (paths or None) and
        ``foreground`` (fraction of mask pixels); with ``skip_bad``, an image that could not be read
        has ``error`` (the reason) and None for the rest.

    Raises:
        FocusNetError: bad arguments, no matching inputs, existing outputs without ``overwrite``,
            an output folder inside an input folder, or (without ``skip_bad``) an unreadable image
            (the masks already written are kept; the message says how many).
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
        plan = plan_one_file(files, output_dir, save_probabilities or save_overlays, overwrite)
        output_dir = output_dir.parent
    else:
        plan = plan_outputs(files, folders, output_dir, suffix, save_probabilities, save_overlays, overwrite)
    run, cfg, _ = resolve_model(model_or_path, backend, onnx_path, device, config)
    if cfg.num_classes != 1:
        raise FocusNetError(
            f"{cfg.describe()}: predict writes binary masks and needs a one-class model (num_classes=1), "
            f"not {cfg.num_classes}"
        )
    thr = float(cfg.threshold if threshold is None else threshold)
    forward = with_tta(run) if tta else run
    channels, size, norm = cfg.channels, cfg.size, cfg.normalization
    output_dir.mkdir(parents=True, exist_ok=True)

    def load(path: Path) -> tuple[np.ndarray, np.ndarray] | str:
        """The image and the network input, or (with ``skip_bad``) why it cannot be read."""
        try:
            image = read_image(path, channels=channels)
        except FocusNetError as exc:
            if skip_bad:
                return str(exc)
            raise
        return image, normalize_image(resize_image(image, size), norm)

    def finish(item) -> dict[str, Any]:
        (path, targets), image, prob = item
        h, w = image.shape[:2]
        full = probabilities_to_size(prob, (h, w))
        mask = full > thr
        save_png(targets["mask"], np.where(mask, 255, 0).astype(np.uint8), "L")
        if "probabilities" in targets:
            save_png(targets["probabilities"], np.round(full * 255.0).astype(np.uint8), "L")
        if "overlay" in targets:
            rgb = image if channels == 3 else read_image(path, channels=3)
            save_png(targets["overlay"], overlay(rgb, mask, prob, thr), "RGB")
        return {
            "id": path.stem,
            "input": str(path),
            "output": str(targets["mask"]),
            "orig_size": [int(h), int(w)],
            "probabilities": str(targets["probabilities"]) if "probabilities" in targets else None,
            "overlay": str(targets["overlay"]) if "overlay" in targets else None,
            "foreground": float(mask.mean()),
        }

    def predict_batch(batch: list, loaded: list, pool: ThreadPoolExecutor) -> list[dict[str, Any]]:
        """One forward pass over the batch's images; their outputs written, their rows in order."""
        probs = forward(np.stack([x for _, x in loaded]))
        if probs.ndim != 4 or probs.shape[:2] != (len(batch), 1):
            raise FocusNetError(
                f"{cfg.describe()}: expected outputs of shape (B, 1, H, W), got {tuple(probs.shape)}; "
                "predict needs a one-class segmentation model"
            )
        items = [(entry, image, probs[i, 0]) for i, (entry, (image, _)) in enumerate(zip(batch, loaded))]
        return list(pool.map(finish, items))

    n_workers = workers or max(1, min(4, os.cpu_count() or 1))
    results: list[dict[str, Any]] = []
    bar = _progress(len(plan), progress)
    try:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for whole_batch in _batches(plan, batch_size):
                try:
                    read = list(pool.map(load, [p for p, _ in whole_batch]))
                except FocusNetError as exc:
                    written = f" (the masks of the first {len(results)} image(s) are written)" if results else ""
                    raise FocusNetError(
                        f"{exc.message}, or pass --skip-bad to predict the other images{written}", see=exc.see
                    ) from None
                batch = [entry for entry, got in zip(whole_batch, read) if not isinstance(got, str)]
                loaded = [got for got in read if not isinstance(got, str)]
                predicted = iter(predict_batch(batch, loaded, pool) if batch else [])
                for (path, _), got in zip(whole_batch, read):  # in input order, skipped images included
                    results.append(_skipped_row(path, got) if isinstance(got, str) else next(predicted))
                    bar.update(1)
    finally:
        bar.close()
    return results
