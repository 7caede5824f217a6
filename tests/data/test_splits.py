"""Deterministic train/val/test splits: seeded random, the paper's (BCDU ISIC, DSB) and split files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from focusnet.data.splits import (
    bcdu_split,
    dsb_paper_split,
    load_split_file,
    random_split_ids,
    scaled_counts,
    unassigned_ids,
    validate_split,
)
from focusnet.errors import FocusNetError

IDS = [f"case_{i:03d}" for i in range(100)]


def test_split_is_deterministic_and_order_free():
    a = random_split_ids(IDS, seed=3)
    b = random_split_ids(list(reversed(IDS)), seed=3)
    assert a == b
    assert random_split_ids(IDS, seed=4) != a


def test_split_disjoint_covering_sized():
    s = random_split_ids(IDS, (0.7, 0.15, 0.15), seed=0)
    assert list(s) == ["train", "val", "test"]
    assert [len(s[k]) for k in s] == [70, 15, 15]
    assert sorted(s["train"] + s["val"] + s["test"]) == IDS
    assert all(s[k] == sorted(s[k]) for k in s)


@pytest.mark.parametrize("n", [3, 4, 5, 7, 11])
def test_small_splits_non_empty(n):
    s = random_split_ids([str(i) for i in range(n)])
    assert all(len(v) >= 1 for v in s.values())
    assert sum(len(v) for v in s.values()) == n


def test_zero_fraction_gives_empty_split():
    s = random_split_ids(IDS[:10], (0.8, 0.2, 0.0))
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (8, 2, 0)


def test_too_few_ids():
    with pytest.raises(FocusNetError, match="cannot split 2"):
        random_split_ids(["a", "b"])


@pytest.mark.parametrize(
    "fractions, pattern",
    [
        ((0.5, 0.3), "three numbers"),
        ((0.5, 0.6, -0.1), ">= 0"),
        ((0.5, 0.3, 0.3), "sum to 1"),
        (("a", 1, 0), "three numbers"),
    ],
)
def test_bad_fractions(fractions, pattern):
    with pytest.raises(FocusNetError, match=pattern):
        random_split_ids(IDS, fractions)


def test_duplicate_ids():
    with pytest.raises(FocusNetError, match="duplicate id 'a'"):
        random_split_ids(["a", "b", "a", "c"])


# ----------------------------------------------------------------------- the paper's splits, files
ISIC_IDS = [f"ISIC_{i:07d}" for i in range(0, 2 * 2594, 2)]  # 2594 ids with gaps, like the real ones


def test_bcdu_split_counts_positions_and_order_free():
    shuffled = list(ISIC_IDS)
    np.random.default_rng(1).shuffle(shuffled)
    s = bcdu_split(shuffled)
    assert [len(s[k]) for k in ("train", "val", "test")] == [1815, 259, 520]
    assert s["train"] == ISIC_IDS[:1815] and s["val"] == ISIC_IDS[1815:2074] and s["test"] == ISIC_IDS[2074:]
    assert bcdu_split(reversed(ISIC_IDS)) == s  # sorted first: the same on every machine


@pytest.mark.parametrize("n, expected", [(400, [280, 40, 80]), (24, [17, 2, 5]), (3, [1, 1, 1]), (2594 * 2, [3630, 518, 1040])])
def test_bcdu_split_scaled(n, expected):
    s = bcdu_split([f"id{i:05d}" for i in range(n)])
    assert [len(s[k]) for k in ("train", "val", "test")] == expected


def test_scaled_counts_exact_and_sum():
    assert scaled_counts(2594, (1815, 259, 520)) == [1815, 259, 520]
    assert scaled_counts(670, (540, 130, 0)) == [540, 130, 0]
    for n in range(3, 200):
        c = scaled_counts(n, (1815, 259, 520))
        assert sum(c) == n and min(c) >= 1


def test_dsb_paper_split():
    ids = [f"{i:064x}" for i in range(670)]
    s = dsb_paper_split(ids, seed=0)
    assert (len(s["train"]), len(s["val"]), s["test"]) == (540, 130, [])
    assert sorted(s["train"] + s["val"]) == ids
    assert dsb_paper_split(list(reversed(ids)), seed=0) == s
    assert dsb_paper_split(ids, seed=1) != s
    t = dsb_paper_split(ids, seed=0, with_test=True)
    assert [len(t[k]) for k in ("train", "val", "test")] == [410, 130, 130]
    small = dsb_paper_split(ids[:200], seed=0)
    assert (len(small["train"]), len(small["val"])) == (161, 39)
    with pytest.raises(FocusNetError, match="cannot split 1 image"):
        dsb_paper_split(["a"])


def test_validate_split_and_unassigned():
    ids = ["a", "b", "c", "d"]
    s = validate_split({"train": ["b", "a"], "val": ["c"]}, ids)
    assert s == {"train": ["a", "b"], "val": ["c"], "test": []}
    assert unassigned_ids(s, ids) == ["d"]
    with pytest.raises(FocusNetError, match=r"names 1 id\(s\) that are not in the dataset \(first: 'zz'\)"):
        validate_split({"train": ["a", "zz"]}, ids)
    with pytest.raises(FocusNetError, match="'a' is in both train and val"):
        validate_split({"train": ["a"], "val": ["a"]}, ids)
    with pytest.raises(FocusNetError, match="unknown split name 'holdout'"):
        validate_split({"train": ["a"], "holdout": ["b"]}, ids)
    with pytest.raises(FocusNetError, match="train split is empty"):
        validate_split({"train": [], "val": ["a"]}, ids)


def test_load_split_file_ours_and_nnunet(tmp_path):
    ids = [f"case_{i}" for i in range(6)]
    ours = tmp_path / "split.json"
    ours.write_text(json.dumps({"train": ids[:4], "val": ids[4:5], "test": ids[5:]}))
    assert load_split_file(ours, ids) == {"train": ids[:4], "val": ids[4:5], "test": ids[5:]}
    folds = tmp_path / "splits_final.json"
    folds.write_text(json.dumps([{"train": ids[:4], "val": ids[4:]}, {"train": ids[2:], "val": ids[:2]}]))
    assert load_split_file(folds, ids) == {"train": ids[:4], "val": ids[4:], "test": []}
    assert load_split_file(folds, ids, fold=1)["val"] == ids[:2]
    with pytest.raises(FocusNetError, match=r"has 2 fold\(s\), no fold 2"):
        load_split_file(folds, ids, fold=2)
    with pytest.raises(FocusNetError, match=r"\(fold 0\): the train split names 4 id"):
        load_split_file(folds, ["other"])
    bad = tmp_path / "bad.json"
    bad.write_text("{train: [")
    with pytest.raises(FocusNetError, match="bad.json: split file is not valid JSON"):
        load_split_file(bad, ids)
