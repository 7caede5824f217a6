"""Deterministic train/val/test splits of dataset ids: seeded random, the paper's (BCDU-Net ISIC 2018,
DSB 2018) and split files (ours or nnU-Net's ``splits_final.json``)."""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

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
    return fr


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


# ------------------------------------------------------------------------------ the paper's splits
BCDU_COUNTS = (1815, 259, 520)
"""BCDU-Net's ISIC 2018 split of the 2594 Task 1 training images (train, val, test), by position."""
DSB_PAPER_COUNTS = (540, 130)
"""FocusNet++'s DSB 2018 split of 670 images (train, val)."""
DSB_PAPER_TEST_COUNTS = (410, 130, 130)
"""Our train/val/test variant of the DSB split: the paper's 130 validation images, plus as many
test images taken out of its 540 training images."""


def _unique_sorted(ids: Iterable[str]) -> list[str]:
    out = sorted(str(i) for i in ids)
    for a, b in zip(out, out[1:]):
        if a == b:
            raise FocusNetError(f"duplicate id {a!r} in the ids to split; ids must be unique")
    return out


def scaled_counts(n: int, weights: Sequence[int]) -> list[int]:
    """Split ``n`` items in the proportions of integer ``weights``, exactly (largest remainders).

    ``n == sum(weights)`` gives ``weights`` itself. Ties go to the earlier part; every part with a
    positive weight gets at least one item when ``n`` allows.

    Example:
        >>> scaled_counts(2594, (1815, 259, 520)), scaled_counts(400, (1815, 259, 520))
        ([1815, 259, 520], [280, 40, 80])
    """
    total = sum(weights)
    counts = [n * w // total for w in weights]
    rems = [n * w % total for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-rems[i], i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    for i, w in enumerate(weights):
        if w > 0 and counts[i] == 0:
            donor = max(range(len(weights)), key=lambda j: (counts[j], -j))
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return counts


def bcdu_split(ids: Iterable[str]) -> dict[str, list[str]]:
    """The ISIC 2018 split of BCDU-Net / FocusNet++: ids sorted, then positional 1815 / 259 / 520.

    With exactly 2594 ids (the ISIC 2018 Task 1 training set) the counts are 1815/259/520; with
    another number they are scaled in the same proportions (largest remainders, see
    :func:`scaled_counts`). Sorting makes the split the same on every machine; the authors' own
    membership cannot be recovered, because their file order was an unsorted ``glob``.

    Example:
        >>> s = bcdu_split([f"ISIC_{i:07d}" for i in range(2594)])
        >>> [len(s[k]) for k in ("train", "val", "test")], s["val"][0]
        ([1815, 259, 520], 'ISIC_0001815')
    """
    ids = _unique_sorted(ids)
    if len(ids) < 3:
        raise FocusNetError(f"cannot split {len(ids)} image(s) into train/val/test; add images (at least 3)")
    n_train, n_val, _ = scaled_counts(len(ids), BCDU_COUNTS)
    return {"train": ids[:n_train], "val": ids[n_train : n_train + n_val], "test": ids[n_train + n_val :]}


def dsb_paper_split(ids: Iterable[str], seed: int = 0, with_test: bool = False) -> dict[str, list[str]]:
    """The DSB 2018 split of the paper: seeded 540 / 130 train/val of 670 images (proportional otherwise).

    The ids are sorted, then permuted with ``numpy.random.default_rng(seed)``; the first part is
    train. ``with_test=True`` gives train/val/test 410/130/130 (the paper's validation size kept and
    a test split of the same size taken from its training part), since the paper reports results
    on its validation split. ``test`` is empty when ``with_test`` is false. Lists are sorted.

    Example:
        >>> s = dsb_paper_split([f"{i:04x}" for i in range(670)], seed=0)
        >>> len(s["train"]), len(s["val"]), len(s["test"])
        (540, 130, 0)
    """
    if int(seed) < 0:
        raise FocusNetError(f"split seed must be >= 0 (got {seed})")
    ids = _unique_sorted(ids)
    weights = DSB_PAPER_TEST_COUNTS if with_test else DSB_PAPER_COUNTS + (0,)
    needed = 3 if with_test else 2
    if len(ids) < needed:
        raise FocusNetError(f"cannot split {len(ids)} image(s) into {needed} non-empty splits; add images")
    counts = scaled_counts(len(ids), weights)
    perm = np.random.default_rng(int(seed)).permutation(len(ids))
    shuffled = [ids[k] for k in perm]
    a, b = counts[0], counts[0] + counts[1]
    return {"train": sorted(shuffled[:a]), "val": sorted(shuffled[a:b]), "test": sorted(shuffled[b:])}


# ------------------------------------------------------------------------------------- split files
def validate_split(split: dict, ids: Iterable[str], source: str = "split") -> dict[str, list[str]]:
    """Check a ``{"train": [...], "val": [...], "test": [...]}`` split against the dataset's ids.

    Refuses unknown split names, ids that are not in the dataset, an id in two splits, and an
    empty train split. Ids in no split are allowed (they are simply not used); see
    :func:`unassigned_ids`. Returns all three keys, each list sorted.

    Example:
        >>> validate_split({"train": ["b", "a"], "val": ["c"]}, ["a", "b", "c"])
        {'train': ['a', 'b'], 'val': ['c'], 'test': []}
    """
    if not isinstance(split, dict):
        raise FocusNetError(
            f"{source}: a split must be a JSON object {{\"train\": [...], \"val\": [...], \"test\": [...]}}"
        )
    extra = [k for k in split if k not in SPLIT_NAMES]
    if extra:
        raise FocusNetError(
            f"{source}: unknown split name {extra[0]!r}; the split names are {', '.join(SPLIT_NAMES)}"
        )
    known = set(str(i) for i in ids)
    out: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for name in SPLIT_NAMES:
        members = split.get(name, [])
        if not isinstance(members, (list, tuple)) or not all(isinstance(i, str) for i in members):
            raise FocusNetError(f"{source}: split {name!r} must be a list of id strings")
        unknown = [i for i in members if i not in known]
        if unknown:
            raise FocusNetError(
                f"{source}: the {name} split names {len(unknown)} id(s) that are not in the dataset "
                f"(first: {unknown[0]!r}); remove them from the split file or add their image/mask pairs"
            )
        for i in members:
            if i in owner:
                where = "twice in" if owner[i] == name else f"in both {owner[i]} and"
                raise FocusNetError(f"{source}: id {i!r} is {where} {name}; each id belongs to one split")
            owner[i] = name
        out[name] = sorted(members)
    if not out["train"]:
        raise FocusNetError(f"{source}: the train split is empty; list the training ids under \"train\"")
    return out


def unassigned_ids(split: dict[str, list[str]], ids: Iterable[str]) -> list[str]:
    """Ids of the dataset that no split names (sorted)."""
    used = {i for members in split.values() for i in members}
    return sorted(i for i in ids if i not in used)


def load_split_file(path: str | Path, ids: Iterable[str], fold: int = 0) -> dict[str, list[str]]:
    """Read a split file and check it against the dataset's ids.

    Accepted forms:

    * ours (also a training run's ``split.json``): ``{"train": [...], "val": [...], "test": [...]}``
      (``val`` and ``test`` may be left out);
    * nnU-Net's ``splits_final.json``: a list of folds ``[{"train": [...], "val": [...]}, ...]``;
      ``fold`` picks one (default 0) and ``test`` is empty.

    Raises:
        FocusNetError: unreadable or malformed file, a fold that does not exist, unknown ids, an id
            in two splits (see :func:`validate_split`).

    Example:
        >>> split = load_split_file("splits_final.json", ids, fold=1)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FocusNetError(f"{path}: split file not found; pass a JSON file {{\"train\": [...], \"val\": [...]}}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FocusNetError(f"{path}: split file is not valid JSON ({exc}); fix the file") from None
    if isinstance(data, list):
        if not data or not all(isinstance(f, dict) for f in data):
            raise FocusNetError(f"{path}: expected nnU-Net folds [{{\"train\": [...], \"val\": [...]}}, ...]")
        if not 0 <= int(fold) < len(data):
            raise FocusNetError(
                f"{path}: has {len(data)} fold(s), no fold {fold}; choose a fold from 0 to {len(data) - 1}"
            )
        data = data[int(fold)]
        source = f"{path} (fold {fold})"
    else:
        source = str(path)
    return validate_split(data, ids, source)
