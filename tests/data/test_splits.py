"""Deterministic train/val/test splits."""
from __future__ import annotations

import pytest

from focusnet.data.splits import random_split_ids
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
