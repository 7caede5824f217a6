"""Deterministic train/val/test splits of dataset ids."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from focusnet.errors import FocusNetError

SPLIT_NAMES = ("train", "val", "test")


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        fr = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise FocusNetError(f"split fractions {fractions!r} must be three numbers, e.g. 0.7 0.15 0.15") from None
    if len(fr) != 3:
        raise FocusNetError(
            f"split fractions {fractions!r} must be three numbers (train, val, test), e.g. 0.7 0.15 0.15"
        )
    if any(not math.isfinite(f) or f < 0 for f in fr):
        raise FocusNetError(f"split fractions {fr} must each be >= 0, e.g. 0.7 0.15 0.15")
    if abs(sum(fr) - 1.0) > 1e-6:
        raise FocusNetError(f"split fractions {fr} sum to {sum(fr):g}; they must sum to 1, e.g. 0.7 0.15 0.15")
    return fr  # type: ignore[return-value]


def _counts(n: int, fr: tuple[float, float, float]) -> list[int]:
    """Largest-remainder counts summing to ``n``; every positive fraction gets at least one id."""
    raw = [f * n for f in fr]
    counts = [int(math.floor(r)) for r in raw]
    order = sorted(range(3), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    for i in range(3):
        if fr[i] > 0 and counts[i] == 0:
            donor = max(range(3), key=lambda j: (counts[j], -j))
            counts[donor] -= 1
            counts[i] += 1
    return counts


def random_split_ids(
    ids: Iterable[str], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, list[str]]:
    """Split ids at random into ``train``/``val``/``test``, reproducibly.

    The ids are sorted first and then permuted with ``numpy.random.default_rng(seed)``, so the
    result does not depend on the input order. Counts use largest remainders; every split with a
    positive fraction gets at least one id (a zero fraction gives an empty split). Each list is
    returned sorted.

    Args:
        ids: unique dataset ids.
        fractions: ``(train, val, test)``, each >= 0, summing to 1.
        seed: permutation seed.

    Example:
        >>> s = random_split_ids([f"img{i}" for i in range(10)], (0.6, 0.2, 0.2), seed=0)
        >>> [len(s[k]) for k in ("train", "val", "test")]
        [6, 2, 2]
    """
    fr = _check_fractions(fractions)
    if int(seed) < 0:
        raise FocusNetError(f"split seed must be >= 0 (got {seed})")
    ids = sorted(str(i) for i in ids)
    seen = set()
    for i in ids:
        if i in seen:
            raise FocusNetError(f"duplicate id {i!r} in the ids to split; ids must be unique")
        seen.add(i)
    needed = sum(1 for f in fr if f > 0)
    if len(ids) < needed:
        raise FocusNetError(
            f"cannot split {len(ids)} image(s) into {needed} non-empty splits; add images (at least {needed})"
        )
    perm = np.random.default_rng(int(seed)).permutation(len(ids))
    shuffled = [ids[k] for k in perm]
    n_train, n_val, _ = _counts(len(ids), fr)
    parts = (shuffled[:n_train], shuffled[n_train : n_train + n_val], shuffled[n_train + n_val :])
    return {name: sorted(part) for name, part in zip(SPLIT_NAMES, parts)}
