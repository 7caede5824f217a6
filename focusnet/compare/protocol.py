"""What makes a comparison one protocol, and the state file (``compare.json``) that records it.

Each model's config is the base config with that model (:func:`model_config`); the rest of it, less
the keys that may change between calls (devices, threads, the output folder), is the protocol
(:func:`protocol_key`). A comparison folder is continued only with the same protocol.

Example:
    >>> changed_keys(protocol_key(TrainConfig()), protocol_key(TrainConfig(epochs=3)))
    ['epochs']
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from focusnet.atomic import atomic_write
from focusnet.compare.specs import ModelSpec, accepted_kwargs
from focusnet.engine.config import TrainConfig, expand_path
from focusnet.errors import FocusNetError
from focusnet.models import list_models

__all__ = ["absolute_data", "changed_keys", "clean", "model_config", "protocol_key", "read_state", "write_json"]

# Keys that may differ between calls of the same comparison (they do not change the protocol).
_FREE_KEYS = ("accelerator", "devices", "num_nodes", "strategy", "num_threads", "num_workers",
              "progress_bar", "eval_batch_size", "out_dir")
_MODEL_KEYS = ("model", "preset", "model_kwargs")


def model_config(base: TrainConfig, spec: ModelSpec, run_dir: Path) -> tuple[TrainConfig, list[str]]:
    """The config of one model: ``base`` with its model, preset and constructor arguments (the
    preset as given: compare's training step resolves a default one).

    The base config's ``model_kwargs`` belong to the base config's model; another model gets those
    its constructor accepts (e.g. ``bn_momentum`` for every BatchNorm model that takes it); the
    others are dropped and returned.

    Example:
        >>> config, dropped = model_config(TrainConfig(), ModelSpec("unet"), Path("runs/c/unet"))
        >>> config.model, config.preset, dropped
        ('unet', None, [])
    """
    accepted = accepted_kwargs(spec.model) if spec.model in list_models() else None
    inherited = dict(base.model_kwargs)
    dropped = []
    if spec.model != base.model and accepted is not None:
        dropped = sorted(k for k in inherited if k not in accepted)
        inherited = {k: v for k, v in inherited.items() if k in accepted}
    config = base.replace(
        model=spec.model, preset=spec.preset, model_kwargs={**inherited, **spec.kwargs}, out_dir=str(run_dir)
    )
    return config, dropped


def protocol_key(config: TrainConfig) -> dict[str, Any]:
    """The settings that make a comparison one protocol: ``config`` without the free and the model keys.

    Example:
        >>> "model" in protocol_key(TrainConfig()), "seed" in protocol_key(TrainConfig())
        (False, True)
    """
    d = config.to_dict()
    for key in _FREE_KEYS + _MODEL_KEYS:
        d.pop(key, None)
    return d


def absolute_data(config: TrainConfig) -> TrainConfig:
    """``config`` with its data paths (source, cache, a split file) expanded and absolute.

    Example:
        >>> Path(absolute_data(TrainConfig()).data.cache_dir).is_absolute()
        True
    """
    d = config.to_dict()["data"]
    if d.get("source"):
        d["source"] = str(Path(expand_path(d["source"])).resolve())
    d["cache_dir"] = str(Path(expand_path(d["cache_dir"])).resolve())
    if str(d.get("split", "")).lower().endswith(".json"):
        d["split"] = str(Path(expand_path(d["split"])).resolve())
    return config.replace(data=d)


def changed_keys(now: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """Keys whose (plain JSON) values differ between two protocols.

    Example:
        >>> changed_keys({"epochs": 5, "lr": 0.001}, {"epochs": 50, "lr": 0.001})
        ['epochs']
    """
    return sorted(k for k in now.keys() | before.keys() if now.get(k) != before.get(k))


# ------------------------------------------------------------------------------------ state file
def read_state(path: Path) -> dict[str, Any] | None:
    """The comparison's state file (``compare.json``), or None when there is none yet.

    Raises:
        FocusNetError: a file that compare did not write, or that was damaged.

    Example:
        >>> read_state(Path("runs/none/compare.json")) is None
        True
    """
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FocusNetError(
            f"{path}: unreadable ({exc}); it is not a focusnet compare folder, or it was damaged: use another --out"
        ) from None
    if not isinstance(state, dict) or state.get("kind") != "focusnet-compare":
        raise FocusNetError(f"{path}: not written by focusnet compare; use another --out")
    return state


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (numpy numbers, paths and tuples as plain JSON).

    Example:
        >>> write_json(Path("runs/c/compare.json"), {"models": {}})  # doctest: +SKIP
    """
    atomic_write(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clean(value: Any) -> Any:
    """NaN -> None, recursively (strict JSON).

    Example:
        >>> clean({"dice": [0.5, float("nan")]})
        {'dice': [0.5, None]}
    """
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value
