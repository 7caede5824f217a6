"""The prepared cache: exact preprocessing, no-op re-runs, keys, atomic layout, loading, the CLI."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from focusnet.cli import main
from focusnet.data.cache import IMAGES, MANIFEST, MASKS, normalize_batch, open_cache, prepare
from focusnet.data.folder import list_pairs
from focusnet.data.paths import data_root
from focusnet.data.preprocess import normalize_image, resize_mask
from focusnet.errors import FocusNetError
from tests.data.folder_dataset import SegmentationDataset
from tests.helpers import tree_digest

REAL = data_root()
CROP = REAL / "isic2018_task1_512crop"
DSB = REAL / "dsb2018"
ISIC_DIRS = ("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth")
needs_crop = pytest.mark.skipif(not CROP.is_dir(), reason=f"real data not found at {CROP}")
needs_dsb = pytest.mark.skipif(not DSB.is_dir(), reason=f"real data not found at {DSB}")


def crop_subset(dst: Path, n: int) -> Path:
    """An ISIC-layout copy of the first n real 512x512 pairs."""
    for d in ISIC_DIRS:
        (dst / d).mkdir(parents=True)
    for img in sorted((CROP / ISIC_DIRS[0]).glob("*.jpg"))[:n]:
        shutil.copy2(img, dst / ISIC_DIRS[0])
        shutil.copy2(CROP / ISIC_DIRS[1] / f"{img.stem}_segmentation.png", dst / ISIC_DIRS[1])
    return dst


@pytest.fixture(scope="module")
def crop_cache(tmp_path_factory):
    """``focusnet prepare`` of the 400 real 512crop pairs at 256, twice (the second is a no-op)."""
    if not CROP.is_dir():
        pytest.skip(f"real data not found at {CROP}")
    out = tmp_path_factory.mktemp("prepared")
    before = tree_digest(CROP)
    first = prepare("isic2018", CROP, out, size=256, progress=False)
    t0 = time.perf_counter()
    second = prepare("isic2018", CROP, out, size=256, progress=False)
    noop_seconds = time.perf_counter() - t0
    assert tree_digest(CROP) == before  # nothing written into the source
    return first, second, noop_seconds


@needs_crop
def test_prepare_real_512crop(crop_cache):
    first, second, noop_seconds = crop_cache
    assert first["count"] == 400 and first["splits"] == {"train": 280, "val": 40, "test": 80}
    assert first["skipped"] == 0 and first["warnings"] == [] and not first["noop"]
    cache = Path(first["cache"])
    assert cache.name.startswith("isic2018-256-") and sorted(p.name for p in cache.iterdir()) == [IMAGES, MANIFEST, MASKS]
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".")]  # no temp folders left
    assert np.load(cache / IMAGES, mmap_mode="r").shape == (400, 256, 256, 3)
    assert np.load(cache / MASKS, mmap_mode="r").shape == (400, 256, 256)
    assert first["cache_bytes"] >= 400 * 256 * 256 * 4
    assert second["noop"] and second["cache"] == first["cache"] and second["count"] == 400
    assert noop_seconds < 5
    manifest = json.loads((cache / MANIFEST).read_text())
    assert manifest["ids"] == sorted(manifest["ids"]) and len(manifest["files"]) == 800
    assert manifest["settings"]["normalization"] == "minmax" and manifest["settings"]["split"] == {"kind": "bcdu"}
    assert manifest["splits"]["train"] == manifest["ids"][:280]  # bcdu: positional on sorted ids
    assert manifest["items"][0]["images"] == [f"{ISIC_DIRS[0]}/{manifest['ids'][0]}.jpg"]


@needs_crop
def test_cache_equals_direct_pipeline(crop_cache):
    """Cache tensors are bit-identical to reading, resizing and normalising each file directly."""
    ds = open_cache(Path(crop_cache[0]["cache"]).parent)
    assert len(ds) == 400 and ds.size == 256 and ds.orig_sizes[ds.ids[0]] == (512, 512)
    images, masks, ids = ds.tensors("val")
    assert images.shape == (40, 3, 256, 256) and masks.shape == (40, 1, 256, 256) and ids == ds.splits["val"]
    assert images.dtype == masks.dtype == torch.float32 and set(masks.unique().tolist()) <= {0.0, 1.0}
    pairs = {p.id: p for p in list_pairs(CROP, *ISIC_DIRS, mask_suffix="_segmentation")}
    direct = SegmentationDataset([pairs[i] for i in ids[:6]], size=256)
    for k in range(6):
        item = direct[k]
        assert torch.equal(item["image"], images[k]) and torch.equal(item["mask"], masks[k])
    assert ds.orig_size_tensor("val").shape == (40, 2)
    picked, _, picked_ids = ds.tensors([ids[3], ids[0]])  # an explicit id list (e.g. a run's split.json)
    assert picked_ids == [ids[3], ids[0]] and torch.equal(picked[1], images[0])
    with pytest.raises(FocusNetError, match=r"1 id\(s\) are not in this cache \(first: 'ISIC_nope'\)"):
        ds.tensors(["ISIC_nope"])
    unit, _, _ = ds.tensors("val", normalization="unit")
    assert torch.equal(unit[0], torch.from_numpy(normalize_image(np.asarray(ds.images[ds.rows("val")[0]]), "unit")))


@needs_crop
def test_dataset_view_and_batches(crop_cache):
    ds = open_cache(crop_cache[0]["cache"])
    view = ds.dataset("test")
    assert len(view) == 80
    item = view[3]
    images, masks, ids = ds.tensors("test")
    assert item["id"] == ids[3] and torch.equal(item["image"], images[3]) and torch.equal(item["mask"], masks[3])
    assert item["orig_size"].tolist() == [512, 512]
    clone = pickle.loads(pickle.dumps(view))  # DataLoader workers get a picklable, lazily opened view
    assert clone._cache is None and torch.equal(clone[3]["image"], images[3])
    batch = next(iter(DataLoader(view, batch_size=8)))
    assert batch["image"].shape == (8, 3, 256, 256) and batch["mask"].shape == (8, 1, 256, 256)
    batches = list(ds.loader("test", batch_size=32, shuffle=False))
    assert [len(b["id"]) for b in batches] == [32, 32, 16] and batches[0]["orig_size"].shape == (32, 2)
    assert torch.equal(batches[0]["image"], images[:32]) and torch.equal(batches[2]["mask"], masks[64:])
    assert sorted(i for b in ds.loader("test", batch_size=32, seed=2) for i in b["id"]) == ids
    x, y = next(ds.batches("train", batch_size=8, seed=1))
    assert x.shape == (8, 3, 256, 256) and y.shape == (8, 1, 256, 256)
    assert sum(len(b[0]) for b in ds.batches("val", batch_size=8, shuffle=False)) == 40
    rows = ds.rows("val")[[5, 1, 3]]
    bx, _ = ds.batch(rows)
    assert torch.equal(bx, images_from(ds, rows))


def images_from(ds, rows):
    return torch.stack([torch.from_numpy(normalize_image(np.asarray(ds.images[r]))) for r in rows])


def test_normalize_batch_matches_normalize_image():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(4, 9, 7, 3), dtype=np.uint8)
    batch[1] = 77  # constant image -> zeros
    batch[2] = rng.integers(40, 60, size=(9, 7, 3))
    for mode in ("minmax", "unit"):
        got = normalize_batch(torch.from_numpy(batch), mode)
        want = np.stack([normalize_image(b, mode) for b in batch])
        assert got.dtype == torch.float32 and np.array_equal(got.numpy(), want)
    with pytest.raises(FocusNetError, match="unknown normalization 'zscore'"):
        normalize_batch(torch.from_numpy(batch), "zscore")


@needs_crop
def test_keys_noop_and_rebuild(tmp_path):
    src = crop_subset(tmp_path / "isic", 5)
    out = tmp_path / "out"
    a = prepare("isic2018", src, out, size=32, progress=False, workers=1)
    assert a["splits"] == {"train": 3, "val": 1, "test": 1}
    assert prepare("isic2018", src, out, size=32, progress=False)["noop"]
    others = [
        prepare("isic2018", src, out, size=48, progress=False),
        prepare("isic2018", src, out, size=32, normalization="unit", progress=False),
        prepare("isic2018", src, out, size=32, channels=1, progress=False),
        prepare("isic2018", src, out, size=32, split="random", seed=3, progress=False),
    ]
    keys = {a["key"]} | {o["key"] for o in others}
    assert len(keys) == 5 and all(not o["noop"] for o in others)
    assert open_cache(out / [o for o in others if o["channels"] == 1][0]["key"]).images.shape == (5, 32, 32, 1)
    with pytest.raises(FocusNetError, match="holds 5 caches"):
        open_cache(out)
    # a changed source file (new mtime) rebuilds the same cache in place
    img = sorted((src / ISIC_DIRS[0]).iterdir())[0]
    os.utime(img, ns=(img.stat().st_atime_ns, img.stat().st_mtime_ns + 10**9))
    again = prepare("isic2018", src, out, size=32, progress=False)
    assert not again["noop"] and again["key"] == a["key"]
    assert prepare("isic2018", src, out, size=32, progress=False)["noop"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@needs_crop
def test_check_only_writes_nothing(tmp_path):
    src = crop_subset(tmp_path / "isic", 3)
    out = tmp_path / "out"
    before = tree_digest(src)
    s = prepare("isic2018", src, out, size=32, check_only=True, progress=False)
    assert s["check_only"] and s["count"] == 3 and s["cache"] is None
    assert not out.exists() and tree_digest(src) == before


@needs_dsb
def test_dsb_cache_masks_are_union(tmp_path):
    cases = sorted((DSB / "stage1_train").iterdir())
    cases = [c for c in cases if Image.open(c / "images" / f"{c.name}.png").size == (256, 256)][:3]
    for c in cases:
        shutil.copytree(c, tmp_path / "dsb" / "stage1_train" / c.name)
    s = prepare("dsb2018", tmp_path / "dsb", tmp_path / "out", size=64, progress=False)
    assert s["count"] == 3 and s["splits"] == {"train": 2, "val": 1, "test": 0}
    assert s["conversions"] == {"image(s) with an alpha channel: alpha dropped": 3} and s["warnings"] == []
    ds = open_cache(s["cache"])
    for row, cid in enumerate(ds.ids):
        union = np.logical_or.reduce(
            [np.asarray(Image.open(p)) > 0 for p in sorted((DSB / "stage1_train" / cid / "masks").glob("*.png"))]
        )
        np.testing.assert_array_equal(ds.masks[row].astype(bool), resize_mask(union, 64))


@needs_crop
def test_split_files_and_nnunet_folds(tmp_path):
    src = crop_subset(tmp_path / "isic", 6)
    ids = sorted(p.stem for p in (src / ISIC_DIRS[0]).iterdir())
    ours = tmp_path / "split.json"
    ours.write_text(json.dumps({"train": ids[:3], "val": ids[3:5]}))
    s = prepare("isic2018", src, tmp_path / "out", size=16, split=str(ours), progress=False)
    assert s["splits"] == {"train": 3, "val": 2, "test": 0}
    assert any("1 id(s) are in no split" in w for w in s["warnings"])
    folds = tmp_path / "splits_final.json"
    folds.write_text(json.dumps([{"train": ids[:4], "val": ids[4:]}, {"train": ids[2:], "val": ids[:2]}]))
    s1 = prepare("isic2018", src, tmp_path / "out", size=16, split=str(folds), fold=1, progress=False)
    assert open_cache(s1["cache"]).splits["val"] == ids[:2]
    s0 = prepare("isic2018", src, tmp_path / "out", size=16, split=str(folds), progress=False)
    assert s0["key"] != s1["key"]


@needs_crop
def test_cli_json_and_text(tmp_path, capsys):
    src = crop_subset(tmp_path / "isic", 4)
    args = ["prepare", "--format", "isic2018", "--source", str(src), "--out", str(tmp_path / "out"), "--size", "32"]
    assert main(args + ["--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert {"count", "splits", "skipped", "warnings", "cache", "seconds", "cache_bytes"} <= set(s)
    assert s["count"] == 4 and s["skipped"] == 0 and s["warnings"] == [] and not s["noop"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("up to date: 4 pairs") and "splits:   train" in text
    assert main(args + ["--check"]) == 0
    assert capsys.readouterr().out.startswith("checked 4 pairs")
