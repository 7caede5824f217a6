"""The four readers on real layouts: the ISIC and DSB subsets of the shared data, and nnU-Net raw and
folder datasets the tests write (into tmp_path) from a few of those real files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focusnet.data.io import read_image, read_mask
from focusnet.data.paths import data_root
from focusnet.data.readers import FORMATS, Item, get_reader
from focusnet.errors import FocusNetError

REAL = data_root()
ISIC = REAL / "isic2018_task1"
CROP = REAL / "isic2018_task1_512crop"
DSB = REAL / "dsb2018"
needs_isic = pytest.mark.skipif(not ISIC.is_dir(), reason=f"real data not found at {ISIC}")
needs_crop = pytest.mark.skipif(not CROP.is_dir(), reason=f"real data not found at {CROP}")
needs_dsb = pytest.mark.skipif(not DSB.is_dir(), reason=f"real data not found at {DSB}")


def dsb_union(case: Path) -> np.ndarray:
    """Reference union of a DSB case's nucleus masks, read independently of the reader."""
    masks = [np.asarray(Image.open(p)) > 0 for p in sorted((case / "masks").glob("*.png"))]
    return np.logical_or.reduce(masks)


def small_dsb_cases(n: int) -> list[Path]:
    """The n DSB 256x256 cases with the fewest (but at least 3) mask files (fast to read)."""
    cases = sorted((DSB / "stage1_train").iterdir())
    cases = [c for c in cases if Image.open(c / "images" / f"{c.name}.png").size == (256, 256)]
    cases = [c for c in cases if len(list((c / "masks").iterdir())) >= 3]
    return sorted(cases, key=lambda c: (len(list((c / "masks").iterdir())), c.name))[:n]


def write_nnunet(root: Path, items: list[Item], split_channels: bool) -> Path:
    """An nnU-Net v2 raw dataset made from reader items (images as PNG, labels 0/1)."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for item in items:
        image, mask = item.load()
        if split_channels:
            for c in range(3):
                Image.fromarray(image[:, :, c], mode="L").save(root / "imagesTr" / f"{item.id}_{c:04d}.png")
        else:
            Image.fromarray(image, mode="RGB").save(root / "imagesTr" / f"{item.id}_0000.png")
        Image.fromarray(mask.astype(np.uint8), mode="L").save(root / "labelsTr" / f"{item.id}.png")
    meta = {
        "channel_names": {"0": "R", "1": "G", "2": "B"},
        "labels": {"background": 0, "lesion": 1},
        "numTraining": len(items),
        "file_ending": ".png",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_registry():
    assert FORMATS == ("folder", "isic2018", "dsb2018", "nnunet")
    defaults = {f: get_reader(f).default_split for f in FORMATS}
    assert defaults == {"isic2018": "bcdu", "dsb2018": "paper", "folder": "random", "nnunet": "random"}
    with pytest.raises(FocusNetError, match="unknown data format .kaggle.; choose one of: folder, isic2018"):
        get_reader("kaggle")


@needs_isic
def test_isic_full_resolution():
    listing = get_reader("isic2018").list_items(ISIC)
    assert len(listing) == 24 and listing.ids == sorted(listing.ids)
    assert all(i.id.startswith("ISIC_") and len(i.id) == 12 for i in listing)
    item = min(listing.items, key=lambda i: i.images[0].stat().st_size)
    assert item.images[0].name == f"{item.id}.jpg"
    assert item.masks == (ISIC / "ISIC2018_Task1_Training_GroundTruth" / f"{item.id}_segmentation.png",)
    image, mask = item.load()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert mask.dtype == bool and mask.shape == image.shape[:2] and 0 < mask.mean() < 1
    np.testing.assert_array_equal(image, read_image(item.images[0]))
    np.testing.assert_array_equal(mask, read_mask(item.masks[0]))


@needs_crop
def test_isic_512crop():
    listing = get_reader("isic2018").list_items(CROP)
    assert len(listing) == 400 and not listing.warnings and not listing.skipped
    image, mask, notes = listing.items[0].load_noted()
    assert image.shape == (512, 512, 3) and mask.shape == (512, 512) and notes == []
    grey = get_reader("isic2018").list_items(CROP, channels=1).items[0]
    g, _, gnotes = grey.load_noted()
    assert g.shape == (512, 512, 1) and gnotes == ["rgb_to_grey"]


@needs_dsb
def test_dsb_layout_and_union():
    listing = get_reader("dsb2018").list_items(DSB)
    cases = sorted(p.name for p in (DSB / "stage1_train").iterdir() if p.is_dir())
    assert listing.ids == cases and len(listing) == 200 and not listing.skipped
    by_id = {i.id: i for i in listing}
    for case in small_dsb_cases(2) + [DSB / "stage1_train" / cases[0]]:
        item = by_id[case.name]
        assert len(item.masks) == len(list((case / "masks").glob("*.png"))) > 1
        image, mask, notes = item.load_noted()
        raw = np.asarray(Image.open(case / "images" / f"{case.name}.png"))
        assert raw.shape[2] == 4 and "alpha" in notes
        np.testing.assert_array_equal(image, raw[:, :, :3])  # alpha dropped, colours untouched
        np.testing.assert_array_equal(mask, dsb_union(case))  # union of the nucleus masks


@needs_dsb
def test_dsb_stage1_test_rgb_and_stage_folder(tmp_path):
    a, b, c, d = small_dsb_cases(4)
    root = tmp_path / "dsb"
    shutil.copytree(a, root / "stage1_train" / a.name)
    shutil.copytree(b, root / "stage1_train" / b.name)
    shutil.copytree(c, root / "stage1_test" / c.name)  # test case with masks: used
    (root / "stage1_test" / d.name / "images").mkdir(parents=True)  # test case without masks: skipped
    shutil.copy(d / "images" / f"{d.name}.png", root / "stage1_test" / d.name / "images")
    (root / "stage1_train_labels.csv").write_text("ImageId,EncodedPixels\n")  # ignored
    # an RGB (no alpha) image, as in stage1_test
    rgb = root / "stage1_train" / b.name / "images" / f"{b.name}.png"
    Image.open(rgb).convert("RGB").save(rgb)
    listing = get_reader("dsb2018").list_items(root)
    assert listing.ids == sorted([a.name, b.name, c.name])
    assert listing.skipped == [d.name] and "1 stage1_test case(s) without masks left out" in listing.warnings[0]
    item = {i.id: i for i in listing}[b.name]
    image, mask, notes = item.load_noted()
    assert "alpha" not in notes
    np.testing.assert_array_equal(image, np.asarray(Image.open(b / "images" / f"{b.name}.png"))[:, :, :3])
    np.testing.assert_array_equal(mask, dsb_union(b))
    # the stage folder itself is accepted
    assert get_reader("dsb2018").list_items(root / "stage1_train").ids == sorted([a.name, b.name])


@needs_dsb
def test_folder_written_from_dsb(tmp_path):
    """images/ + masks/ with a suffix, in PNG, BMP and TIFF, masks 0/255 and 0/1."""
    cases = small_dsb_cases(3)
    root = tmp_path / "nuclei"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    fmts = [".png", ".bmp", ".tif"]
    for k, case in enumerate(cases):
        rgb = Image.open(case / "images" / f"{case.name}.png").convert("RGB")
        rgb.save(root / "images" / f"{case.name}{fmts[k]}")
        scale = 1 if k == 1 else 255
        Image.fromarray((dsb_union(case) * scale).astype(np.uint8), mode="L").save(root / "masks" / f"{case.name}_mask.png")
    (root / "images" / "notes.txt").write_text("ignored")
    listing = get_reader("folder").list_items(root, mask_suffix="_mask")
    assert listing.ids == sorted(c.name for c in cases)
    dsb = {i.id: i for i in get_reader("dsb2018").list_items(DSB)}
    for item in listing:
        image, mask = item.load()
        ref_image, ref_mask = dsb[item.id].load()
        np.testing.assert_array_equal(image, ref_image)
        np.testing.assert_array_equal(mask, ref_mask)


@needs_crop
@pytest.mark.parametrize("split_channels", [True, False])
def test_nnunet_written_from_isic(tmp_path, split_channels):
    isic = get_reader("isic2018").list_items(CROP).items[:3]
    root = write_nnunet(tmp_path / "Dataset501_ISIC", isic, split_channels)
    listing = get_reader("nnunet").list_items(root)
    assert listing.ids == [i.id for i in isic] and not listing.warnings
    item = listing.items[1]
    assert len(item.images) == (3 if split_channels else 1)
    assert item.images[0].name == f"{item.id}_0000.png" and item.masks[0].name == f"{item.id}.png"
    for ours, ref in zip(listing, isic):
        image, mask = ours.load()
        ref_image, ref_mask = ref.load()
        np.testing.assert_array_equal(image, ref_image)
        np.testing.assert_array_equal(mask, ref_mask)
    grey, _ = get_reader("nnunet").list_items(root, channels=1).items[0].load()
    np.testing.assert_array_equal(grey, read_image(isic[0].images[0], channels=1))


@needs_crop
def test_nnunet_several_labels_merged(tmp_path):
    isic = get_reader("isic2018").list_items(CROP).items[:1]
    root = write_nnunet(tmp_path / "Dataset502", isic, split_channels=False)
    label_path = root / "labelsTr" / f"{isic[0].id}.png"
    label = np.asarray(Image.open(label_path)).copy()
    label[:10] = 2 * label[:10]  # a second foreground class in the top rows
    Image.fromarray(label).save(label_path)
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "lesion": 1, "core": 2}
    meta["numTraining"] = 5
    (root / "dataset.json").write_text(json.dumps(meta))
    listing = get_reader("nnunet").list_items(root)
    assert any("merged into one foreground" in w for w in listing.warnings)
    assert any("numTraining 5 but 1 cases" in w for w in listing.warnings)
    _, mask = listing.items[0].load()
    np.testing.assert_array_equal(mask, label > 0)
