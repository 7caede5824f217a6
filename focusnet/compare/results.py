"""The numbers of a comparison: each model's results, the protocol in words, versions and hardware.

:func:`collect` reads every model's run folder (through :class:`~focusnet.engine.rundir.RunDir`) and
makes the ``comparison`` dict that ``comparison.json``, the tables, figures and the report are made from.

Example:
    >>> comparison = collect(specs, configs, state, base, Path("configs/isic.yaml"), "quick", out)  # doctest: +SKIP
"""
from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import focusnet
from focusnet.compare.profiles import describe_profile, describe_run
from focusnet.compare.protocol import clean
from focusnet.compare.specs import ModelSpec
from focusnet.compare.stats import compare_statistics
from focusnet.complexity import measure
from focusnet.engine.config import TrainConfig
from focusnet.engine.plots import read_epoch_metrics
from focusnet.engine.rundir import EvalSummary, RunDir
from focusnet.errors import FocusNetError
from focusnet.vocab import uses_cuda

__all__ = ["collect", "eval_summary"]


def collect(specs: Sequence[ModelSpec], configs: dict[str, tuple[TrainConfig, list[str]]], state: dict[str, Any],
            base: TrainConfig, config_path: Path, profile: str, out_dir: Path) -> dict[str, Any]:
    """The ``comparison`` dict (``comparison.json``): the protocol, each model's results and the statistics.

    Args:
        specs: the models, in the order of the tables.
        configs: each model's config (and the dropped ``model_kwargs``), by run name.
        state: the state file's contents (status, errors and training time of each model).
        base: the comparison's base config (the protocol).
        config_path: the config file the comparison was asked with.
        profile: its profile name.
        out_dir: the comparison folder (runs under ``runs/<name>``).

    Example:
        >>> comparison = collect(specs, configs, state, base, Path("configs/isic.yaml"), "quick", out)  # doctest: +SKIP
    """
    models, split_info = [], None
    for spec in specs:
        entry = state["models"][spec.name]
        config = configs[spec.name][0]
        run_dir = out_dir / "runs" / spec.name
        run = RunDir(run_dir)
        row: dict[str, Any] = {"name": spec.name, "model": spec.model, "preset": config.preset,
                               "status": entry["status"], "error": entry.get("error"), "run_dir": str(run_dir)}
        try:
            kwargs = config.model_args()
            m = measure(spec.model, size=config.size, in_channels=kwargs.pop("in_channels"), **kwargs)
        except Exception:  # noqa: BLE001 - a model that cannot be built has failed already
            m = None
        row.update(
            params=m["params"] if m else None, gmacs=round(m["macs"] / 1e9, 4) if m else None, gmacs_size=config.size
        )
        row.update(train_seconds=round(float(entry.get("train_seconds", 0.0)), 1))
        if entry["status"] == "done":
            summary = eval_summary(run)
            row["summary"] = summary.get("original_resolution") or summary["model_resolution"]
            row["summary_model_res"] = summary["model_resolution"]
            row["metrics_resolution"] = "original" if summary.get("original_resolution") else "model"
            metrics_csv = run.file(RunDir.METRICS_CSV)
            metrics = read_epoch_metrics(metrics_csv) if metrics_csv.is_file() else {}
            row["curves"] = {k: {str(e): v for e, v in sorted(metrics.get(k, {}).items())}
                             for k in ("train_loss", "val_loss", "val_dice")}
            row["epochs_run"] = len(metrics.get("train_loss", {}))
            # numbered from 0 like every epoch focusnet shows (metrics.csv, curves, best.json); a key of "curves"
            row["best_epoch"] = run.checkpoint_epoch(RunDir.BEST_CKPT)
            split = run.read_split()
            if split_info is None:
                split_info = split
            elif split_info != split:
                row.update(
                    status="failed",
                    error=f"{run.file(RunDir.SPLIT_JSON)}: another split than the other models'; "
                    "delete this run and compare again",
                )
        models.append(row)

    s = base.size
    split_name = base.data.split
    sizes = "/".join(str(len(split_info[k])) for k in ("train", "val", "test")) if split_info else "?"
    done = [m for m in models if m["status"] == "done"]
    reference = next((m["name"] for m in models if m["model"] == "focusnetpp"), None)
    resolution = ("each image's original resolution (probabilities resized back, bilinear)"
                  if done and all(m["metrics_resolution"] == "original" for m in done) else f"{s}x{s} (model input)")
    comparison: dict[str, Any] = {
        "title": f"focusnet compare: {Path(base.data.source or '?').name}, {profile} profile",
        "dataset": base.data.format,
        "reference": reference,
        "protocol": {
            "run": describe_run(base, [m["name"] for m in models]),  # what ran, after profile and overrides
            "data": str(base.data.source),
            "format": base.data.format,
            "split": f"{split_name} ({sizes} train/val/test), split seed {base.data.split_seed}",
            "test_images": len(split_info["test"]) if split_info else None,
            "resolution": f"models trained and run at {s}x{s}; metrics at {resolution}",
            "threshold": f"foreground where probability > {base.threshold}",
            "aggregation": ("per-image mean ± population std (each image weighs the same); pooled = from the "
                            "confusion counts summed over the test images; empty-mask rule: 0/0 counts as 1"),
            "selection": (
                "best epoch by validation loss (val split; epochs numbered from 0); test split used once, at the end"
            ),
            "loss": f"ALL-HL {base.loss}",
            "optimizer": (
                f"{base.optimizer} lr {base.lr:g}, betas {list(base.betas)}, eps {base.eps:g}, "
                f"weight decay {base.weight_decay:g}"
            ),
            "schedule": f"{base.lr_schedule}, {base.epochs} epochs"
            + (f", at most {base.max_minutes:g} min per model" if base.max_minutes else ""),
            "batch_size": base.batch_size,
            "augmentation": base.to_dict()["augment"],
            "normalization": base.normalization,
            "seed": base.seed,
            "profile": describe_profile(profile, state.get("overrides") or []),
            "config": str(config_path),
            "overrides": " ".join(state.get("overrides") or []) or "none",
            "training_time": "wall time of the training attempts compare ran (evaluation excluded)",
            "versions": _versions(),
            "hardware": _hardware(base),
        },
        "models": models,
    }
    comparison["stats"] = compare_statistics(comparison)
    return clean(comparison)


def eval_summary(run: RunDir) -> EvalSummary:
    """The run's evaluation of the test split (written by compare's training step).

    Raises:
        FocusNetError: the run has no evaluation of the test split.

    Example:
        >>> summary = eval_summary(RunDir("runs/compare-isic/runs/unet"))  # doctest: +SKIP
    """
    summary = run.read_eval_summary("test")
    if summary is None:
        raise FocusNetError(f"{run.eval_dir('test')}: no evaluation of the test split; compare again to write it")
    return summary


def _versions() -> dict[str, str]:
    import lightning  # heavy: loaded when a comparison is collected, not on import

    return {"focusnet": getattr(focusnet, "__version__", "?"), "torch": torch.__version__,
            "lightning": lightning.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _hardware(config: TrainConfig) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    uses_gpu = torch.cuda.is_available() and uses_cuda(config.accelerator)
    gpu = torch.cuda.get_device_name(0) if uses_gpu else "no GPU used"
    threads = config.num_threads or torch.get_num_threads()
    return f"{cpu} ({os.cpu_count()} logical CPUs, {threads} torch threads); {gpu}"
