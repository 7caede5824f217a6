"""Score a run's best weights on one split of its data.

:func:`evaluate_run` (``focusnet evaluate RUN_DIR``) scores at model and at original resolution and
writes ``<run>/eval/<split>/`` (per-image CSVs, ``summary.json``, ``summary.md``);
:func:`evaluate_checkpoint` is the model-resolution score training writes to ``summary.json``: both
build it with :func:`focusnet.engine.split_score.split_summary` from the same per-image counts.

The model is rebuilt from the run's ``config.json`` and its weights are read with
``torch.load(..., weights_only=True)`` (no arbitrary unpickling). Predicted masks are the model's
probabilities thresholded at ``config.threshold``, scored at the model input resolution
(``size x size``), per image, with :func:`focusnet.metrics.summarize`.

Example:
    >>> result = evaluate_checkpoint("runs/demo-20250101-120000", split="test")  # doctest: +SKIP
    >>> round(result["mean"]["dice"], 3)  # doctest: +SKIP
    0.912
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from focusnet.atomic import atomic_write
from focusnet.data.cache import PreparedDataset
from focusnet.data.readers import get_reader
from focusnet.engine.predict import probabilities_to_size
from focusnet.engine.rundir import EvalSummary, RunDir, ScoreSummary, torch_threads
from focusnet.engine.split_score import selection_rule, split_summary
from focusnet.errors import FocusNetError
from focusnet.metrics import _EMPTY_RULE, METRIC_NAMES, THRESHOLDED_JACCARD_CUTOFF, confusion_counts, summarize
from focusnet.vocab import uses_cuda
from focusnet.weights import load_model as load_safetensors

__all__ = [
    "EvalData", "evaluate_checkpoint", "evaluate_run", "format_evaluation_markdown", "load_eval_data", "load_checkpoint"
]


def _device(accelerator: str) -> torch.device:
    if uses_cuda(accelerator) and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def load_checkpoint(run_dir: str | Path, checkpoint: str = "best.ckpt") -> nn.Module:
    """The run's model with the checkpoint's weights, in eval mode, on the CPU.

    Args:
        run_dir: a run folder written by :func:`focusnet.engine.train.train`.
        checkpoint: file name inside ``run_dir`` (``best.ckpt`` or ``last.ckpt``) or a path.
    """
    return _load(run_dir, checkpoint)[0]


def _load(run_dir: str | Path, checkpoint: str) -> tuple[nn.Module, int | None]:
    """(model in eval mode, the checkpoint's epoch or None)."""
    return RunDir(run_dir).load_checkpoint(checkpoint)


def evaluate_checkpoint(
    run_dir: str | Path,
    split: str = "test",
    checkpoint: str = "best.ckpt",
    device: str | torch.device | None = None,
) -> ScoreSummary:
    """Score ``checkpoint`` of ``run_dir`` on the ``split`` ids of its ``split.json``.

    Returns:
        The :func:`focusnet.metrics.summarize` dict (``focusnet score --json`` schema) with
        ``protocol`` holding the split, resolution, threshold, model, preset, run and checkpoint.
    """
    run_dir = Path(run_dir)
    config = RunDir(run_dir).read_config()
    data = load_eval_data(run_dir, split)  # from the run's prepared cache
    model, epoch = RunDir(run_dir).load_checkpoint(checkpoint, config)
    dev = torch.device(device) if device is not None else _device(config.accelerator)
    model.to(dev)
    threshold_logit = math.log(config.threshold / (1.0 - config.threshold))

    counts = []
    with torch_threads(config.num_threads), torch.inference_mode():
        for start in range(0, len(data), config.eval_batch_size):
            images = data.images[start : start + config.eval_batch_size].to(dev)
            masks = data.masks[start : start + config.eval_batch_size].to(dev)
            pred = model(images) > threshold_logit
            counts.append(confusion_counts(pred, masks > 0.5).cpu())

    return split_summary(torch.cat(counts), data.ids, config, run_dir, checkpoint, epoch, split)


# =========================================================================== evaluate_run (CLI)
EVAL_DIR = RunDir.EVAL_DIR
MODEL_RES_CSV = "per_image_model_res.csv"
ORIGINAL_RES_CSV = "per_image_original_res.csv"
SUMMARY_JSON = RunDir.SUMMARY_JSON
SUMMARY_MD = "summary.md"
CSV_COLUMNS = ("id", "orig_h", "orig_w", "tp", "fp", "fn", "tn", "precision", "recall", "dice", "jaccard")
RESIZE_BACK_RULE = (
    "the model's sigmoid probabilities are resized to each image's original height x width with a "
    "bilinear resize (Pillow BILINEAR, anti-aliased when shrinking; focusnet.engine.predict."
    "probabilities_to_size), then thresholded"
)


@dataclass
class EvalData:
    """One split of a run's data at model resolution, and how to read each original mask.

    Attributes:
        images: float32 (N, C, S, S), normalised as in training.
        masks: float32 (N, 1, S, S) 0/1, the masks as the model was trained on them.
        ids: N ids, in split order.
        orig_sizes: int64 (N, 2) original (h, w).
        read_original_mask: ``id -> bool (h, w)`` mask read from the source files.
        source: one line saying where the data came from.
    """

    images: torch.Tensor
    masks: torch.Tensor
    ids: list[str]
    orig_sizes: torch.Tensor
    read_original_mask: Callable[[str], np.ndarray]
    source: str

    def __len__(self) -> int:
        return len(self.ids)


def load_eval_data(run_dir: str | Path, split: str = "test") -> EvalData:
    """The ``split`` ids of the run's ``split.json``, from the prepared cache the run trained on.

    Model-resolution tensors come from the cache (the one the run recorded; for a run folder
    from before that record, the cache of its ``data`` settings, prepared again if needed), original
    masks from the source files named in its manifest, read with its reader.
    """
    run = RunDir(run_dir)
    config = run.read_config()
    split_ids = run.read_split()
    if split not in split_ids:
        raise FocusNetError(f"split: unknown split {split!r}; choose one of: {', '.join(split_ids)}")
    ids = split_ids[split]
    if not ids:
        raise FocusNetError(f"{run.file(RunDir.SPLIT_JSON)}: the {split} split is empty; nothing to evaluate")
    return _cache_data(run.prepared_cache(config), config, ids)


def _cache_data(ds: PreparedDataset, config: Any, ids: list[str]) -> EvalData:
    normalization = getattr(config, "normalization", None)
    images, masks, ids = ds.tensors(ids, normalization=normalization)
    sizes = ds.orig_size_tensor(ids)
    settings = ds.manifest["settings"]
    source = Path(settings["source"])
    items: dict[str, Any] = {}

    def read(image_id: str) -> np.ndarray:
        if not items:  # list the source once, on the first original mask
            if not source.is_dir():
                raise FocusNetError(
                    f"{source}: source folder of the cache {ds.path} not found; original-resolution "
                    "scores need the original masks (use --no-original-resolution to skip them)"
                )
            reader = get_reader(settings["format"])
            listing = reader.list_items(
                source, channels=settings["channels"], mask_rule=settings["mask_rule"],
                **settings.get("reader_options", {}),
            )
            items.update({item.id: item for item in listing.items})
        if image_id not in items:
            raise FocusNetError(
                f"{source}: no item {image_id!r} any more; the source changed since the cache was prepared"
            )
        return items[image_id].load()[1]

    described = f"cache {ds.path} (source {source}, format {settings['format']})"
    return EvalData(images, masks, list(ids), sizes, read, described)


def _fingerprint(path: Path) -> str:
    """``sha256:<hex>`` of a weights file: which weights an evaluation scored."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def interrupted_note(run_dir: str | Path) -> str | None:
    """:meth:`RunDir.interrupted_note <focusnet.engine.rundir.RunDir.interrupted_note>` of ``run_dir`` (for the CLI)."""
    return RunDir(run_dir).interrupted_note()


def stale_evaluations(run_dir: str | Path) -> list[Path]:
    """The ``eval/<split>`` folders of ``run_dir`` that scored other weights than its current best ones.

    After ``focusnet train --resume`` trains further, these are out of date; ``focusnet evaluate
    --overwrite`` replaces them. Evaluations written before ``weights_sha256`` existed are not listed.
    """
    run = RunDir(run_dir)
    try:
        current = _fingerprint(run.weights_file())
    except (FocusNetError, OSError):
        return []
    stale = []
    for summary in run.eval_summaries():
        try:
            earlier = json.loads(summary.read_text()).get("weights_sha256")
        except (OSError, ValueError, AttributeError):
            continue
        if earlier is not None and earlier != current:
            stale.append(summary.parent)
    return stale


def load_best_model(run_dir: str | Path, device: torch.device) -> tuple[nn.Module, str]:
    """``(the run's best model, which file it came from)``: ``weights/best.safetensors`` when present
    (no unpickling), else ``best.ckpt`` (``weights_only``), with a note when training was interrupted."""
    run = RunDir(run_dir)
    if run.best_weights.is_file():
        return load_safetensors(run.best_weights, device=device), RunDir.BEST_WEIGHTS
    model, epoch = run.load_checkpoint(RunDir.BEST_CKPT)
    label = RunDir.BEST_CKPT + (f" (epoch {epoch}, numbered from 0)" if epoch is not None else "")
    note = run.interrupted_note()
    if note is not None:
        label += "; " + note.split(": ", 1)[1]
    return model.to(device), label


def _check_outputs(out_dir: Path, overwrite: bool) -> None:
    existing = [n for n in (MODEL_RES_CSV, ORIGINAL_RES_CSV, SUMMARY_JSON, SUMMARY_MD) if (out_dir / n).exists()]
    if existing and not overwrite:
        raise FocusNetError(
            f"{out_dir}: already holds an evaluation ({', '.join(existing)}); pass --overwrite to replace it"
        )


def _earlier_evaluation(out_dir: Path, fingerprint: str, settings: dict, overwrite: bool) -> EvalSummary | None:
    """The existing evaluation in ``out_dir`` when it scored the same weights with the same settings.

    Then nothing needs to be written and the caller returns it (an evaluation is a function of the
    weights, the data and these settings). An evaluation of other weights (the run was trained
    further, e.g. by ``--resume``) or with other settings is refused unless ``overwrite``.
    """
    if overwrite or not (out_dir / SUMMARY_JSON).is_file():
        _check_outputs(out_dir, overwrite)
        return None
    try:
        earlier = json.loads((out_dir / SUMMARY_JSON).read_text())
    except (OSError, ValueError):
        earlier = None
    if not isinstance(earlier, dict) or "weights_sha256" not in earlier:
        _check_outputs(out_dir, overwrite)
        return None
    if earlier["weights_sha256"] != fingerprint:
        raise FocusNetError(
            f"{out_dir}: holds an evaluation of earlier weights (the run was trained further since, e.g. by "
            "--resume), so it is stale; pass --overwrite to replace it"
        )
    differ = [k for k, v in settings.items() if earlier.get("settings", {}).get(k) != v]
    if differ:
        raise FocusNetError(
            f"{out_dir}: already holds an evaluation of these weights with other settings ({', '.join(differ)}); "
            "pass --overwrite to replace it"
        )
    return {**earlier, "reused": True}


def _csv_text(result: Mapping[str, Any], sizes: list[tuple[int, int]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row, (h, w) in zip(result["per_image"], sizes):
        values = [row["id"], h, w, row["tp"], row["fp"], row["fn"], row["tn"]]
        values += ["" if row[k] is None else repr(float(row[k])) for k in ("precision", "recall", "dice", "jaccard")]
        writer.writerow(values)
    return buf.getvalue()


def _md_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_evaluation_markdown(summary: Mapping[str, Any]) -> str:
    """``summary.md``: one table per resolution (per-image mean ± std, median, pooled) and the protocol."""
    lines = [
        f"# Evaluation of `{summary['run']}` on the {summary['split']} split",
        "",
        f"- model: {summary['model']}" + (f" (preset {summary['preset']})" if summary.get("preset") else ""),
        f"- weights: {summary['weights']}",
        f"- data: {summary['data']}",
        f"- images: {summary['count']}",
        f"- threshold: foreground where probability > {summary['threshold']}",
        f"- empty-mask rule: {summary['empty_rule']} (empty_score = {summary['empty_score']})",
        f"- aggregation: {summary['aggregation']}; std is the population standard deviation (ddof=0)",
        "",
    ]
    for key, title in (("model_resolution", "Model resolution"), ("original_resolution", "Original resolution")):
        result = summary.get(key)
        lines.append(f"## {title}")
        lines.append("")
        if result is None:
            lines += ["Not computed (--no-original-resolution).", ""]
            continue
        lines.append(f"Resolution: {result['protocol']['resolution']}.")
        if key == "original_resolution":
            lines.append(f"Resize: {result['protocol']['resize']}.")
        lines += ["", "| metric | mean ± std (per image) | median | pooled |", "|---|---|---|---|"]
        for name in METRIC_NAMES:
            lines.append(
                f"| {name} | {_md_value(result['mean'][name])} ± {_md_value(result['std'][name])} | "
                f"{_md_value(result['median'][name])} | {_md_value(result['pooled'][name])} |"
            )
        cutoff = result["protocol"].get("thresholded_jaccard_cutoff", THRESHOLDED_JACCARD_CUTOFF)
        lines += [
            "",
            f"ISIC 2018 thresholded Jaccard (per-image J < {cutoff} counts as 0): "
            f"{_md_value(result['thresholded_jaccard'])}",
            "",
        ]
    return "\n".join(lines)


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    threshold: float = 0.5,
    empty_score: float = 1.0,
    original_resolution: bool = True,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
) -> EvalSummary:
    """Evaluate a run's best weights on one split, at model and at original resolution; write the results.

    Steps: the model is loaded from ``<run>/weights/best.safetensors`` when present (no
    unpickling), else from ``best.ckpt`` with ``torch.load(weights_only=True)``. The split's images
    are preprocessed as in training and run through the model.

    * Model resolution: ``sigmoid(logits) > threshold`` against the masks as the model was
      trained on them (resized to ``size x size``: bilinear, then ``>= 0.5``).
    * Original resolution: the probabilities are resized to each image's original ``h x w``
      (bilinear, :func:`focusnet.engine.predict.probabilities_to_size`), thresholded
      (``> threshold``) and compared with the original mask read from the source files (the data
      folder, or the source named in the cache's manifest through its reader).

    Writes, under ``<run>/eval/<split>/``: ``per_image_model_res.csv`` and
    ``per_image_original_res.csv`` (id, orig_h, orig_w, tp, fp, fn, tn, precision, recall, dice,
    jaccard), ``summary.json`` and ``summary.md``. When they exist already, an evaluation of the
    same weights (``weights_sha256``) with the same settings is returned as it is (``reused``: true)
    and nothing is written; an evaluation of other weights or settings is refused unless
    ``overwrite``.

    Args:
        run_dir: a run folder written by :func:`focusnet.engine.train.train`.
        split: ``train``, ``val`` or ``test`` (ids from the run's ``split.json``).
        threshold: probability threshold, in (0, 1).
        empty_score: score of a 0/0 ratio on a perfect image (see
            :func:`focusnet.metrics.metrics_from_counts`); in [0, 1] or nan.
        original_resolution: also score at each image's original resolution.
        overwrite: replace an earlier evaluation of this split.
        device: torch device (default: the config's accelerator, CPU when no GPU).
        batch_size: images per forward pass (default: the config's ``eval_batch_size``).

    Returns:
        The ``summary.json`` dict: ``split``, ``threshold``, ``empty_score``, ``empty_rule``,
        ``aggregation``, ``run``, ``model``, ``preset``, ``weights``, ``data``, ``count``,
        ``model_resolution`` and ``original_resolution`` (each in the ``focusnet score --json``
        schema, with the protocol; ``original_resolution`` is None when not computed) and
        ``files`` (the written files, relative to the run folder), ``weights_sha256`` and
        ``settings`` (what makes two evaluations the same), and ``reused`` when an existing
        evaluation was returned.

    Raises:
        FocusNetError: not a run folder, unknown split, bad threshold/empty score, missing weights
            or data, or an existing evaluation without ``overwrite``.
    """
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    if not (isinstance(threshold, (int, float)) and 0.0 < float(threshold) < 1.0):
        raise FocusNetError(f"threshold: must be a probability strictly between 0 and 1; got {threshold!r}")
    threshold = float(threshold)
    if not (math.isnan(empty_score) or 0.0 <= empty_score <= 1.0):
        raise FocusNetError(
            f"--empty-score must be between 0 and 1 (or nan to leave such images out); got {empty_score}"
        )
    config = run.read_config()
    out_dir = run.eval_dir(split)
    fingerprint = _fingerprint(run.weights_file())
    settings = {"threshold": threshold, "empty_score": None if math.isnan(empty_score) else float(empty_score),
                "original_resolution": bool(original_resolution)}
    earlier = _earlier_evaluation(out_dir, fingerprint, settings, overwrite)
    if earlier is not None:
        return earlier
    data = load_eval_data(run_dir, split)
    dev = torch.device(device) if device is not None else _device(config.accelerator)
    model, weights = load_best_model(run_dir, dev)
    batch = int(batch_size or config.eval_batch_size)
    sizes = [(int(h), int(w)) for h, w in data.orig_sizes.tolist()]

    model_counts, orig_counts = [], []
    with torch_threads(config.num_threads), torch.inference_mode():
        for start in range(0, len(data.ids), batch):
            probs = torch.sigmoid(model(data.images[start : start + batch].to(dev)).float())
            truth = data.masks[start : start + batch].to(dev) > 0.5
            model_counts.append(confusion_counts(probs > threshold, truth).cpu())
            if not original_resolution:
                continue
            probs_np = probs[:, 0].cpu().numpy()
            for k, prob in enumerate(probs_np):
                image_id, (h, w) = data.ids[start + k], sizes[start + k]
                true = data.read_original_mask(image_id)
                if true.shape != (h, w):
                    raise FocusNetError(
                        f"{image_id}: the original mask is {true.shape[0]}x{true.shape[1]} but the data was "
                        f"loaded at original size {h}x{w}; the source changed since the run"
                    )
                pred = probabilities_to_size(prob, (h, w)) > threshold
                orig_counts.append(confusion_counts(pred, true))

    common = {
        "split": split,
        "threshold": threshold,
        "threshold_rule": f"foreground where the model's probability > {threshold}",
        "model": config.model,
        "preset": config.preset,
        "run": str(run_dir),
        "weights": weights,
        "data": data.source,
        "selection": "best weights: " + selection_rule(config.monitor),
    }
    s = config.size
    model_res: ScoreSummary = summarize(
        torch.cat(model_counts),
        data.ids,
        empty_score=empty_score,
        protocol={
            **common,
            "resolution": f"{s}x{s} (model input)",
            "true_masks": "the training masks: resized to the model input (bilinear, then >= 0.5)",
        },
    )
    orig_res: ScoreSummary | None = None
    if original_resolution:
        orig_res = summarize(
            torch.cat(orig_counts),
            data.ids,
            empty_score=empty_score,
            protocol={
                **common,
                "resolution": "original (each image's own height x width)",
                "resize": RESIZE_BACK_RULE,
                "true_masks": f"the original masks read from the source files (mask_rule {config.mask_rule})",
            },
        )

    files = [MODEL_RES_CSV] + ([ORIGINAL_RES_CSV] if original_resolution else []) + [SUMMARY_JSON, SUMMARY_MD]
    summary = EvalSummary(**{
        "split": split,
        "threshold": threshold,
        "empty_score": None if math.isnan(empty_score) else float(empty_score),
        "empty_rule": _EMPTY_RULE,
        "aggregation": model_res["protocol"]["aggregation"],
        "run": str(run_dir),
        "model": config.model,
        "preset": config.preset,
        "weights": weights,
        "weights_sha256": fingerprint,
        "settings": settings,
        "data": data.source,
        "count": len(data.ids),
        "model_resolution": model_res,
        "original_resolution": orig_res,
        "files": [str(Path(EVAL_DIR) / split / f) for f in files],
    })
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_outputs(out_dir, overwrite)  # again: another evaluation may have finished meanwhile
    atomic_write(out_dir / MODEL_RES_CSV, _csv_text(model_res, sizes))
    if orig_res is not None:
        atomic_write(out_dir / ORIGINAL_RES_CSV, _csv_text(orig_res, sizes))
    elif (out_dir / ORIGINAL_RES_CSV).exists():  # stale, from an earlier evaluation
        (out_dir / ORIGINAL_RES_CSV).unlink()
    atomic_write(out_dir / SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    atomic_write(out_dir / SUMMARY_MD, format_evaluation_markdown(summary) + "\n")
    return summary
