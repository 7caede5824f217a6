"""Score a run's checkpoint on one split of its data.

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

import math
from pathlib import Path

import torch
from torch import nn

from focusnet.errors import FocusNetError

__all__ = ["evaluate_checkpoint", "load_model"]

_MODEL_PREFIX = "model."


def _device(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def load_model(run_dir: str | Path, checkpoint: str = "best.ckpt") -> nn.Module:
    """The run's model with the checkpoint's weights, in eval mode, on the CPU.

    Args:
        run_dir: a run folder written by :func:`focusnet.engine.train.train`.
        checkpoint: file name inside ``run_dir`` (``best.ckpt`` or ``last.ckpt``) or a path.
    """
    return _load(run_dir, checkpoint)[0]


def _load(run_dir: str | Path, checkpoint: str) -> tuple[nn.Module, int | None]:
    """(model in eval mode, the checkpoint's epoch or None)."""
    from focusnet.engine.train import build_model, read_config

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    path = Path(checkpoint) if Path(checkpoint).is_absolute() else run_dir / checkpoint
    if not path.is_file():
        raise FocusNetError(f"{path}: checkpoint not found; did training finish?")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
        raise FocusNetError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise FocusNetError(f"{path}: not a Lightning checkpoint or state dict")
    # The LightningModule stores the network as `model`; the loss has no parameters or buffers.
    weights = {k[len(_MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(_MODEL_PREFIX)} or state
    model = build_model(config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise FocusNetError(
            f"{path}: weights do not fit the model in {run_dir / 'config.json'} ({str(exc).splitlines()[0]})"
        ) from None
    epoch = ckpt.get("epoch") if isinstance(ckpt.get("epoch"), int) else None
    return model.eval(), epoch


def evaluate_checkpoint(
    run_dir: str | Path,
    split: str = "test",
    checkpoint: str = "best.ckpt",
    device: str | torch.device | None = None,
) -> dict:
    """Score ``checkpoint`` of ``run_dir`` on the ``split`` ids of its ``split.json``.

    Returns:
        The :func:`focusnet.metrics.summarize` dict (``focusnet score --json`` schema) with
        ``protocol`` holding the split, resolution, threshold, model, preset, run and checkpoint.
    """
    from focusnet.engine import train as train_mod
    from focusnet.metrics import confusion_counts, summarize

    run_dir = Path(run_dir)
    config = train_mod.read_config(run_dir)
    split_ids = train_mod.read_split(run_dir)
    if split not in split_ids:
        raise FocusNetError(f"split: unknown split {split!r}; choose one of: {', '.join(split_ids)}")
    model, epoch = _load(run_dir, checkpoint)
    dev = torch.device(device) if device is not None else _device(config.accelerator)
    model.to(dev)
    data = train_mod.load_split_tensors(config, split_ids, parts=(split,))[split]
    threshold_logit = math.log(config.threshold / (1.0 - config.threshold))

    counts = []
    with train_mod.torch_threads(config.num_threads), torch.inference_mode():
        for start in range(0, len(data), config.eval_batch_size):
            images = data.images[start : start + config.eval_batch_size].to(dev)
            masks = data.masks[start : start + config.eval_batch_size].to(dev)
            pred = model(images) > threshold_logit
            counts.append(confusion_counts(pred, masks > 0.5).cpu())

    protocol = {
        "split": split,
        "resolution": f"{config.size}x{config.size} (model input)",
        "threshold": config.threshold,
        "model": config.model,
        "preset": config.preset,
        "run": str(run_dir),
        "checkpoint": checkpoint + (f" (epoch {epoch})" if epoch is not None else ""),
        "selection": "lowest val_loss on the val split",
    }
    return summarize(torch.cat(counts), data.ids, empty_score=1.0, protocol=protocol)

