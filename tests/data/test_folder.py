"""Folder datasets: pairing, error messages, tensors, preload; plus a smoke test on real ISIC files."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from focusnet.data.folder import Pair, list_pairs, shared_mask_suffix
from focusnet.data.io import read_image, read_mask
from focusnet.data.paths import data_root
from focusnet.data.preprocess import normalize_image, resize_image, resize_mask
from focusnet.data.synthetic import generate
from focusnet.errors import FocusNetError
from tests.data.folder_dataset import SegmentationDataset


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate("lesions", root, count=5, size=40, seed=0)
    return root


@pytest.fixture()
def copy(demo, tmp_path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(demo, root)
    return root


def test_list_pairs_sorted_and_matched(demo):
    pairs = list_pairs(demo)
    assert [p.id for p in pairs] == [f"lesion_{i:04d}" for i in range(5)]
    assert all(p.image == demo / "images" / f"{p.id}.png" and p.mask == demo / "masks" / f"{p.id}.png" for p in pairs)
    assert isinstance(pairs[0], Pair)


def test_suffix_extensions_hidden_files(copy):
    masks = copy / "masks"
    for f in sorted(masks.iterdir()):
        f.rename(masks / f"{f.stem}_segmentation.PNG")  # upper-case extension
    (copy / "images" / "lesion_0000.png").rename(copy / "images" / "lesion_0000.JPG")  # name only; not decoded here
    (copy / "images" / ".DS_Store").write_bytes(b"junk")
    (copy / "images" / "._lesion_0001.png").write_bytes(b"junk")
    (copy / "masks" / "README.txt").write_text("not an image")
    (copy / "images" / "sub").mkdir()
    pairs = list_pairs(copy, mask_suffix="_segmentation")
    assert len(pairs) == 5
    assert pairs[0].image.name == "lesion_0000.JPG"
    assert pairs[0].mask.name == "lesion_0000_segmentation.PNG"


def test_missing_folders(tmp_path, copy):
    with pytest.raises(FocusNetError, match="dataset folder not found") as exc:
        list_pairs(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(exc.value)
    with pytest.raises(FocusNetError, match="image folder not found") as exc:
        list_pairs(copy, image_dir="imgs")
    assert str(copy / "imgs") in str(exc.value)
    shutil.rmtree(copy / "masks")
    with pytest.raises(FocusNetError, match="mask folder not found") as exc:
        list_pairs(copy)
    assert str(copy / "masks") in str(exc.value)
    pairs = list_pairs(copy, require_masks=False)
    assert len(pairs) == 5 and all(p.mask is None for p in pairs)


def test_image_without_mask(copy):
    (copy / "masks" / "lesion_0003.png").unlink()
    with pytest.raises(FocusNetError, match="no mask for image 'lesion_0003'") as exc:
        list_pairs(copy)
    msg = str(exc.value)
    assert str(copy / "images" / "lesion_0003.png") in msg and "\n" not in msg
    assert [p.mask is None for p in list_pairs(copy, require_masks=False)] == [False, False, False, True, False]


def test_orphan_mask(copy):
    (copy / "images" / "lesion_0002.png").unlink()
    with pytest.raises(FocusNetError, match="mask has no image 'lesion_0002'") as exc:
        list_pairs(copy)
    assert str(copy / "masks" / "lesion_0002.png") in str(exc.value)


def test_orphan_masks_sharing_a_suffix_suggest_it(copy):
    """Masks named <id>_mask without mask_suffix: the error names the suffix, not 'add the image'."""
    for path in sorted((copy / "masks").iterdir()):
        path.rename(path.with_name(f"{path.stem}_mask{path.suffix}"))
    with pytest.raises(FocusNetError) as exc:
        list_pairs(copy)
    msg = str(exc.value)
    assert str(copy / "masks" / "lesion_0000_mask.png") in msg
    assert "pass --mask-suffix _mask" in msg and "add the image" not in msg
    assert msg.endswith("(see docs/how-to/own-data.md)")
    assert len(list_pairs(copy, mask_suffix="_mask")) == 5  # the suggested fix works


def test_partly_given_suffix_suggests_the_whole_one(copy):
    for path in sorted((copy / "masks").iterdir()):
        path.rename(path.with_name(f"{path.stem}_x_mask{path.suffix}"))
    with pytest.raises(FocusNetError, match="pass --mask-suffix _x_mask "):
        list_pairs(copy, mask_suffix="_mask")


def test_orphans_without_a_shared_suffix_get_the_plain_fix(copy):
    (copy / "masks" / "lesion_0000.png").rename(copy / "masks" / "lesion_0000_mask.png")
    (copy / "masks" / "lesion_0001.png").rename(copy / "masks" / "lesion_0001_seg.png")
    with pytest.raises(FocusNetError, match="add the image or remove the mask") as exc:
        list_pairs(copy)
    assert "--mask-suffix" not in str(exc.value)


def test_shared_mask_suffix() -> None:
    assert shared_mask_suffix(["a_1_mask", "b_mask"], {"a", "a_1", "b"}) == "_mask"
    assert shared_mask_suffix(["zz"], {"a"}) is None
    assert shared_mask_suffix(["a_mask", "b_seg"], {"a", "b"}) is None


def test_jpeg_mask_suggests_half_not_nonzero(tmp_path):
    m = np.zeros((24, 32), np.uint8)
    m[4:14, 6:22] = 255
    Image.fromarray(m).save(tmp_path / "m.jpg", quality=75)
    with pytest.raises(FocusNetError) as exc:
        read_mask(tmp_path / "m.jpg")
    msg = str(exc.value)
    assert "--mask-rule half" in msg and "nonzero" not in msg and "own-data.md" in msg
    # the suggested rule recovers the rectangle; nonzero would grow it with compression noise
    assert (read_mask(tmp_path / "m.jpg", rule="half") == (m > 0)).mean() > 0.99
    assert read_mask(tmp_path / "m.jpg", rule="nonzero").sum() > (m > 0).sum()


def test_mask_without_suffix(copy):
    with pytest.raises(FocusNetError, match="does not end with '_seg'") as exc:
        list_pairs(copy, mask_suffix="_seg")
    assert str(copy / "masks" / "lesion_0000.png") in str(exc.value)


def test_duplicate_ids(copy):
    shutil.copy(copy / "images" / "lesion_0001.png", copy / "images" / "lesion_0001.jpg")
    with pytest.raises(FocusNetError, match="duplicate id 'lesion_0001'") as exc:
        list_pairs(copy)
    assert "lesion_0001.jpg" in str(exc.value) and "lesion_0001.png" in str(exc.value)


def test_empty_dataset(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("x")
    with pytest.raises(FocusNetError, match="no images found") as exc:
        list_pairs(tmp_path)
    assert str(tmp_path / "images") in str(exc.value)


def test_dataset_items(demo):
    ds = SegmentationDataset(list_pairs(demo), size=32)
    assert len(ds) == 5
    item = ds[2]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["image"].min() == 0.0 and item["image"].max() == 1.0  # per-image min-max
    assert item["mask"].shape == (1, 32, 32) and item["mask"].dtype == torch.float32
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert item["id"] == "lesion_0002" and item["orig_size"].tolist() == [40, 40]
    grey = SegmentationDataset(list_pairs(demo), size=16, channels=1, normalization="unit")[0]
    assert grey["image"].shape == (1, 16, 16) and 0 <= grey["image"].min() and grey["image"].max() <= 1
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["id"][0] == "lesion_0000"
    assert batch["orig_size"].shape == (4, 2)


def test_dataset_without_masks(copy):
    shutil.rmtree(copy / "masks")
    ds = SegmentationDataset(list_pairs(copy, require_masks=False), size=16)
    assert "mask" not in ds[0]
    with pytest.raises(FocusNetError, match="preload needs a mask"):
        ds.preload()


def test_dataset_bad_options(demo):
    with pytest.raises(FocusNetError, match="minmax, unit"):
        SegmentationDataset(list_pairs(demo), normalization="zscore")
    with pytest.raises(FocusNetError, match="channels"):
        SegmentationDataset(list_pairs(demo), channels=4)


def test_size_mismatch_names_both_files(copy):
    mask = copy / "masks" / "lesion_0001.png"
    Image.new("L", (30, 40)).save(mask)
    ds = SegmentationDataset(list_pairs(copy), size=16)
    with pytest.raises(FocusNetError, match="40x30 but image") as exc:
        ds[1]
    assert str(mask) in str(exc.value) and str(copy / "images" / "lesion_0001.png") in str(exc.value)
    with pytest.raises(FocusNetError, match="40x30"):
        ds.preload(workers=2)


def test_preload_matches_items(demo):
    ds = SegmentationDataset(list_pairs(demo), size=24)
    images, masks, ids, sizes = ds.preload(workers=2)
    assert images.shape == (5, 3, 24, 24) and masks.shape == (5, 1, 24, 24)
    assert ids == [p.id for p in ds.pairs] and sizes.tolist() == [[40, 40]] * 5
    for i in (0, 4):
        item = ds[i]
        assert torch.equal(images[i], item["image"]) and torch.equal(masks[i], item["mask"])
    images1, masks1, _, _ = ds.preload(workers=1)
    assert torch.equal(images, images1) and torch.equal(masks, masks1)


def test_real_isic_smoke():
    root = data_root() / "isic2018_task1_512crop"
    img_dir = root / "ISIC2018_Task1-2_Training_Input"
    mask_dir = root / "ISIC2018_Task1_Training_GroundTruth"
    if not img_dir.is_dir() or not mask_dir.is_dir():
        pytest.skip(f"real ISIC data not found under {root} (set FOCUSNET_DATA)")
    images = sorted(img_dir.glob("*.jpg"))[:2]
    assert images, f"no .jpg files in {img_dir}"
    for path in images:
        img = read_image(path)
        mask = read_mask(mask_dir / f"{path.stem}_segmentation.png")
        assert img.dtype == np.uint8 and img.shape[2] == 3 and mask.shape == img.shape[:2]
        assert 0 < mask.mean() < 1
        x = normalize_image(resize_image(img, 64))
        m = resize_mask(mask, 64)
        assert x.shape == (3, 64, 64) and x.min() == 0.0 and x.max() == 1.0
        assert m.shape == (64, 64) and abs(m.mean() - mask.mean()) < 0.05
