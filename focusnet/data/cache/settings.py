"""The settings of ``prepare``: integer arguments, worker count, and the split setting and its split.

The split setting is a JSON-able dict that is part of the cache key (:func:`_split_setting`); the
split itself is made from it and the ids that were read (:func:`_final_split`).

Example:
    >>> _split_setting("random:0.8,0.1,0.1", "bcdu", 0)
    {'kind': 'random', 'ratios': [0.8, 0.1, 0.1]}
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from focusnet.data.splits import (
    bcdu_split,
    dsb_paper_split,
    load_split_file,
    random_split_ids,
    unassigned_ids,
    validate_split,
)
from focusnet.errors import FocusNetError

__all__ = ["DEFAULT_RATIOS", "SPLIT_KINDS"]

SPLIT_KINDS = ("default", "bcdu", "paper", "paper-test", "random", "random:TRAIN,VAL,TEST", "FILE.json")
DEFAULT_RATIOS = (0.7, 0.15, 0.15)


def _as_int(name: str, value, minimum: int) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise FocusNetError(f"{name} must be an integer, got {value!r}") from None
    if v != value and not isinstance(value, str):
        raise FocusNetError(f"{name} must be an integer, got {value!r}")
    if v < minimum:
        raise FocusNetError(f"{name} must be >= {minimum}, got {v}")
    return v


def _default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def _split_setting(split: str | Path, default: str, fold: int) -> dict:
    """The split spec as a JSON-able dict (part of the cache key)."""
    spec = str(split)
    if spec == "default":
        spec = default
    if spec in ("bcdu", "paper", "paper-test"):
        return {"kind": spec}
    if spec == "random" or spec.startswith("random:"):
        ratios: tuple[float, ...] = DEFAULT_RATIOS
        if spec.startswith("random:"):
            try:
                ratios = tuple(float(v) for v in spec[len("random:") :].split(","))
            except ValueError:
                raise FocusNetError(
                    f"split {spec!r}: ratios must be numbers, e.g. random:0.7,0.15,0.15"
                ) from None
        return {"kind": "random", "ratios": list(ratios)}
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".json" or path.exists():
        if not path.is_file():
            raise FocusNetError(
                f"{path}: split file not found; pass a JSON split file or one of: {', '.join(SPLIT_KINDS[:5])}"
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return {"kind": "file", "path": str(path.resolve()), "sha256": digest, "fold": int(fold)}
    raise FocusNetError(f"unknown split {spec!r}; choose one of: {', '.join(SPLIT_KINDS)}")


def _make_split(setting: dict, ids: list[str], seed: int) -> dict[str, list[str]]:
    kind = setting["kind"]
    if kind == "bcdu":
        return bcdu_split(ids)
    if kind in ("paper", "paper-test"):
        return dsb_paper_split(ids, seed=seed, with_test=kind == "paper-test")
    if kind == "random":
        return random_split_ids(ids, setting["ratios"], seed=seed)
    return load_split_file(setting["path"], ids, fold=setting["fold"])


def _final_split(
    setting: dict, listed: list[str], kept: list[str], seed: int, warnings: list[str]
) -> dict[str, list[str]]:
    if setting["kind"] != "file":
        return _make_split(setting, kept, seed)
    split = _make_split(setting, listed, seed)
    if len(kept) != len(listed):
        keep = set(kept)
        dropped = sum(1 for members in split.values() for i in members if i not in keep)
        split = {k: [i for i in v if i in keep] for k, v in split.items()}
        if dropped:
            warnings.append(f"{dropped} id(s) of the split file were left out as unreadable")
        split = validate_split(split, kept, setting["path"])
    rest = unassigned_ids(split, kept)
    if rest:
        warnings.append(f"{len(rest)} id(s) are in no split of the split file and are not used (first: {rest[0]})")
    return split
