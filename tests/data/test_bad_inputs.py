"""Malformed inputs: each is refused with one line naming the file and the fix (exit code 2), or
handled by a documented rule with a warning and a count in the summary. Every case also checks that
nothing was written into the source folder (hash of the tree before and after) and, for refusals,
that no cache was written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focusnet.cli import main
from focusnet.data.cache import open_cache
from focusnet.data.paths import data_root
from tests.helpers import tree_digest

H, W = 24, 32
CROP = data_root() / "isic2018_task1_512crop"
CROP_JPG = sorted((CROP / "ISIC2018_Task1-2_Training_Input").glob("*.jpg"))[:1] if CROP.is_dir() else []


def rgb(seed: int, hw=(H, W)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8), mode="RGB")


def mask(hw=(H, W), value=255) -> Image.Image:
    m = np.zeros(hw, np.uint8)
    m[4:14, 6:22] = value
    return Image.fromarray(m, mode="L")


def make_folder(root: Path, n: int = 4) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(n):
        rgb(k).save(root / "images" / f"c{k}.png")
        mask().save(root / "masks" / f"c{k}.png")
    return root


def make_dsb(root: Path, n: int = 3) -> Path:
    for k in range(n):
        case = root / "stage1_train" / f"case{k}"
        (case / "images").mkdir(parents=True)
        (case / "masks").mkdir()
        rgb(k).convert("RGBA").save(case / "images" / f"case{k}.png")
        for j in range(2):
            m = np.zeros((H, W), np.uint8)
            m[2 + 8 * j : 8 + 8 * j, 3:9] = 255
            Image.fromarray(m, mode="L").save(case / "masks" / f"nucleus{j}.png")
    return root


def make_nnunet(root: Path, n: int = 3) -> Path:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for k in range(n):
        rgb(k).save(root / "imagesTr" / f"case_{k:03d}_0000.png")
        mask(value=1).save(root / "labelsTr" / f"case_{k:03d}.png")
    meta = {"channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "lesion": 1},
            "numTraining": n, "file_ending": ".png"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


# ---------------------------------------------------------------------------------- refusals
def c_missing_mask(src):
    (src / "masks" / "c1.png").unlink()
    return "folder", [], ["images/c1.png", "no mask for image 'c1'", "add the mask or remove the image"]


def c_orphan_mask(src):
    mask().save(src / "masks" / "zz.png")
    return "folder", [], ["masks/zz.png", "mask has no image 'zz'", "add the image or remove the mask"]


def c_size_mismatch(src):
    mask((10, 12)).save(src / "masks" / "c2.png")
    return "folder", [], ["masks/c2.png", "mask is 10x12 but image", f"is {H}x{W}", "re-export it"]


def c_unreadable(src):
    (src / "images" / "c1.png").write_bytes(b"this is not an image at all")
    return "folder", [], ["images/c1.png", "unreadable or truncated image", "re-export or remove this file"]


@pytest.mark.skipif(not CROP_JPG, reason="real data not found")
def c_truncated_jpeg(src):
    data = CROP_JPG[0].read_bytes()
    (src / "images" / "c1.png").unlink()
    (src / "images" / "c1.jpg").write_bytes(data[: len(data) // 2])  # a real JPEG cut in half
    return "folder", [], ["images/c1.jpg", "truncated", "re-export or remove this file"]


def c_nonbinary_mask(src):
    m = np.zeros((H, W), np.uint8)
    m[:, :10], m[:, 10:20] = 100, 255
    Image.fromarray(m).save(src / "masks" / "c0.png")
    return "folder", [], ["masks/c0.png", "mask is not binary (values 0, 100, 255)", "--mask-rule nonzero"]


def c_mask_suffix_not_given(src):
    """Masks named <id>_mask read without --mask-suffix (issue 17, item 6): suggest the suffix."""
    for path in sorted((src / "masks").iterdir()):
        path.rename(path.with_name(f"{path.stem}_mask{path.suffix}"))
    return "folder", [], ["masks/c0_mask.png", "mask has no image 'c0_mask'", "pass --mask-suffix _mask",
                          "data.mask_suffix=_mask"]


def c_jpeg_mask(src):
    """A JPEG mask: half, not nonzero (which counts the compression noise as lesion), is the fix."""
    (src / "masks" / "c0.png").unlink()
    mask().save(src / "masks" / "c0.jpg", quality=75)
    return "folder", [], ["masks/c0.jpg", "mask is not binary", "JPEG compression", "--mask-rule half"]


def c_colour_mask(src):
    m = np.zeros((H, W, 3), np.uint8)
    m[2:9, 2:9] = (255, 0, 0)
    Image.fromarray(m, mode="RGB").save(src / "masks" / "c3.png")
    return "folder", [], ["masks/c3.png", "differing colour channels", "single-channel"]


def c_duplicate_id(src):
    rgb(9).save(src / "images" / "c2.jpg")
    return "folder", [], ["c2", "duplicate id 'c2'", "keep one file per id"]


def c_empty_dataset(src):
    for p in list((src / "images").iterdir()) + list((src / "masks").iterdir()):
        p.unlink()
    (src / "images" / "README.txt").write_text("nothing here")
    return "folder", [], ["images: no images found", "add image/mask pairs"]


def c_missing_mask_folder(src):
    shutil.rmtree(src / "masks")
    return "folder", [], ["masks: mask folder not found", "put the masks in masks/"]


def c_split_unknown_ids(src):
    split = src.parent / "split.json"
    split.write_text(json.dumps({"train": ["c0", "c1"], "val": ["c2", "ghost"]}))
    return "folder", ["--split", str(split)], ["split.json", "the val split names 1 id(s) that are not in the dataset (first: 'ghost')", "remove them"]


def c_split_id_twice(src):
    split = src.parent / "split.json"
    split.write_text(json.dumps({"train": ["c0", "c1"], "val": ["c1"]}))
    return "folder", ["--split", str(split)], ["split.json", "'c1' is in both train and val", "each id belongs to one split"]


def c_split_bad_json(src):
    split = src.parent / "split.json"
    split.write_text('{"train": ["c0",')
    return "folder", ["--split", str(split)], ["split.json", "not valid JSON", "fix the file"]


def c_out_inside_source(src):
    return "folder", ["--out", str(src / "prepared")], ["inside the source folder", "choose --out outside it"]


def c_wrong_format(src):
    return "isic2018", [], ["no ISIC2018_Task1-2_Training_Input/ folder", "use --format folder"]


def c_unknown_split(src):
    return "folder", ["--split", "halves"], ["unknown split 'halves'", "bcdu, paper"]


def c_dsb_no_masks(src):
    shutil.rmtree(src / "stage1_train" / "case1" / "masks")
    return "dsb2018", [], ["stage1_train/case1", "has no masks", "add the nucleus masks or remove the case"]


def c_dsb_nucleus_size(src):
    mask((H, W + 4)).save(src / "stage1_train" / "case2" / "masks" / "nucleus1.png")
    return "dsb2018", [], ["case2/masks/nucleus1.png", f"mask is {H}x{W + 4} but image", "must have its image's size"]


def c_dsb_image_name(src):
    img = src / "stage1_train" / "case0" / "images" / "case0.png"
    img.rename(img.with_name("other.png"))
    return "dsb2018", [], ["images/other.png", "does not match its case folder 'case0'", "rename it to images/case0.png"]


def c_dsb_duplicate_case(src):
    shutil.copytree(src / "stage1_train" / "case0", src / "stage1_test" / "case0")
    return "dsb2018", [], ["stage1_train/case0", "duplicate id 'case0'", "keep each case in one stage folder"]


def c_nnunet_undeclared_label(src):
    mask(value=3).save(src / "labelsTr" / "case_001.png")
    return "nnunet", [], ["labelsTr/case_001.png", "label values 3 are not declared in dataset.json", "declare them"]


def c_nnunet_missing_channel(src):
    meta = json.loads((src / "dataset.json").read_text())
    for k in range(3):
        img = np.asarray(Image.open(src / "imagesTr" / f"case_{k:03d}_0000.png"))
        for c in range(3):
            if not (k == 2 and c == 1):
                Image.fromarray(img[:, :, c]).save(src / "imagesTr" / f"case_{k:03d}_{c:04d}.png")
    (src / "dataset.json").write_text(json.dumps(meta))
    return "nnunet", [], ["imagesTr/case_002_0001.png", "channel file missing for case 'case_002'", "add it"]


def c_nnunet_nifti(src):
    meta = json.loads((src / "dataset.json").read_text())
    meta["file_ending"] = ".nii.gz"
    (src / "dataset.json").write_text(json.dumps(meta))
    return "nnunet", [], ["dataset.json", "file_ending '.nii.gz' is not a 2D image type", "convert the images"]


def c_nnunet_missing_label(src):
    (src / "labelsTr" / "case_000.png").unlink()
    return "nnunet", [], ["case_000_0000.png", "no label map for case 'case_000'", "add it or remove"]


def c_nnunet_no_dataset_json(src):
    (src / "dataset.json").unlink()
    return "nnunet", [], ["dataset.json: not found", "not an nnU-Net raw dataset"]


def c_nnunet_bad_fold(src):
    folds = src.parent / "splits_final.json"
    folds.write_text(json.dumps([{"train": ["case_000", "case_001"], "val": ["case_002"]}]))
    return "nnunet", ["--split", str(folds), "--fold", "3"], ["splits_final.json", "has 1 fold(s), no fold 3", "choose a fold from 0 to 0"]


def c_nnunet_split_unknown(src):
    folds = src.parent / "splits_final.json"
    folds.write_text(json.dumps([{"train": ["case_000", "case_009"], "val": ["case_002"]}]))
    return "nnunet", ["--split", str(folds)], ["splits_final.json (fold 0)", "first: 'case_009'"]


REFUSED = [
    c_missing_mask, c_orphan_mask, c_size_mismatch, c_unreadable, c_truncated_jpeg, c_nonbinary_mask,
    c_colour_mask, c_duplicate_id, c_empty_dataset, c_missing_mask_folder, c_split_unknown_ids,
    c_mask_suffix_not_given, c_jpeg_mask,
    c_split_id_twice, c_split_bad_json, c_out_inside_source, c_wrong_format, c_unknown_split,
    c_dsb_no_masks, c_dsb_nucleus_size, c_dsb_image_name, c_dsb_duplicate_case, c_nnunet_undeclared_label,
    c_nnunet_missing_channel, c_nnunet_nifti, c_nnunet_missing_label, c_nnunet_no_dataset_json,
    c_nnunet_bad_fold, c_nnunet_split_unknown,
]
# Refusals of the folder reader itself: each ends with the page own-data.md says they point to.
FOLDER_READER = {
    c_missing_mask, c_orphan_mask, c_size_mismatch, c_nonbinary_mask, c_colour_mask, c_duplicate_id,
    c_empty_dataset, c_missing_mask_folder, c_mask_suffix_not_given, c_jpeg_mask,
}
MAKERS = {"folder": make_folder, "isic2018": make_folder, "dsb2018": make_dsb, "nnunet": make_nnunet}


def _source_for(case, tmp_path: Path) -> Path:
    name = case.__name__
    kind = "dsb2018" if "_dsb_" in name else "nnunet" if "_nnunet_" in name else "folder"
    return MAKERS[kind](tmp_path / "src")


def _run(fmt: str, src: Path, extra: list[str], out: Path, capsys, check: bool = False):
    args = ["prepare", "--format", fmt, "--source", str(src), "--out", str(out), "--size", "16", "--json"]
    if check:
        args.append("--check")
    if "--out" in extra:
        args = args[:5] + args[7:]
    rc = main(args + extra)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _marks(case):
    return getattr(case, "pytestmark", [])


@pytest.mark.parametrize("case", [pytest.param(c, marks=_marks(c), id=c.__name__[2:]) for c in REFUSED])
@pytest.mark.parametrize("check", [False, True], ids=["prepare", "check"])
def test_refused(case, check, tmp_path, capsys):
    if check and case is c_out_inside_source:
        pytest.skip("--check writes nothing, so --out is not used")
    src = _source_for(case, tmp_path)
    fmt, extra, expected = case(src)
    before = tree_digest(src)
    out = tmp_path / "out"
    rc, stdout, stderr = _run(fmt, src, extra, out, capsys, check=check)
    assert rc == 2, stdout
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("focusnet: error: "), stderr
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    if case in FOLDER_READER:
        assert lines[0].endswith("(see docs/how-to/own-data.md)"), lines[0]
    if case is c_jpeg_mask:
        assert "nonzero" not in lines[0], lines[0]
    assert tree_digest(src) == before  # nothing written into the source
    assert not list(out.rglob("manifest.json")) if out.exists() else True
    assert not [p for p in out.iterdir()] if out.exists() else True  # temp folders removed too


# ---------------------------------------------------------------- handled by documented rules
def h_16bit(src):
    arr = (np.random.default_rng(0).integers(0, 4096, (H, W))).astype(np.uint16)
    Image.fromarray(arr).save(src / "images" / "c1.png")
    return [], "1 16-bit or float image(s) scaled to 8 bits", {}


def h_palette(src):
    rgb(1).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(src / "images" / "c1.png")
    return [], "1 palette image(s) expanded", {}


def h_cmyk(src):
    (src / "images" / "c2.png").unlink()
    rgb(2).convert("CMYK").save(src / "images" / "c2.jpg")
    return [], "1 CMYK image(s) converted to RGB", {}


def h_greyscale(src):
    rgb(3).convert("L").save(src / "images" / "c3.png")
    rgb(0).convert("L").save(src / "images" / "c0.png")
    return [], "2 greyscale image(s) replicated to 3 channels", {}


def h_empty_mask(src):
    mask(value=0).save(src / "masks" / "c2.png")
    return [], "1 mask(s) with no foreground", {}


def h_nonbinary_with_rule(src):
    m = np.zeros((H, W), np.uint8)
    m[:, :10], m[:, 10:20] = 100, 255
    Image.fromarray(m).save(src / "masks" / "c0.png")
    return ["--mask-rule", "nonzero"], None, {}


def h_skip_bad(src):
    for k in (4, 5):
        rgb(k).save(src / "images" / f"c{k}.png")
        mask().save(src / "masks" / f"c{k}.png")
    (src / "images" / "c1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (src / "masks" / "c3.png").unlink()
    return ["--skip-bad"], "1 pair(s) could not be read and were left out (first: ", {"skipped": 2, "count": 4}


def h_split_leaves_ids_out(src):
    split = src.parent / "split.json"
    split.write_text(json.dumps({"train": ["c0", "c1"], "val": ["c2"]}))
    return ["--split", str(split)], "1 id(s) are in no split of the split file", {"splits": {"train": 2, "val": 1, "test": 0}}


HANDLED = [h_16bit, h_palette, h_cmyk, h_greyscale, h_empty_mask, h_nonbinary_with_rule, h_skip_bad, h_split_leaves_ids_out]


@pytest.mark.parametrize("case", HANDLED, ids=[c.__name__[2:] for c in HANDLED])
def test_handled_with_warning(case, tmp_path, capsys):
    src = make_folder(tmp_path / "src")
    extra, warning, expected = case(src)
    before = tree_digest(src)
    rc, stdout, stderr = _run("folder", src, extra, tmp_path / "out", capsys)
    assert rc == 0, stderr
    summary = json.loads(stdout)
    assert summary["count"] == expected.get("count", 4) and summary["skipped"] == expected.get("skipped", 0)
    if warning is None:
        assert summary["warnings"] == []
    else:
        assert len([w for w in summary["warnings"] if warning in w]) == 1, summary["warnings"]
    if "splits" in expected:
        assert summary["splits"] == expected["splits"]
    assert tree_digest(src) == before
    cache = open_cache(summary["cache"])
    assert cache.images.shape[0] == len(cache.ids) == summary["count"]


def test_dsb_test_cases_without_masks_are_skipped(tmp_path, capsys):
    src = make_dsb(tmp_path / "src")
    case = src / "stage1_test" / "t0" / "images"
    case.mkdir(parents=True)
    rgb(5).save(case / "t0.png")
    before = tree_digest(src)
    rc, stdout, _ = _run("dsb2018", src, [], tmp_path / "out", capsys)
    summary = json.loads(stdout)
    assert rc == 0 and summary["count"] == 3 and summary["skipped"] == 1 and summary["skipped_ids"] == ["t0"]
    assert "1 stage1_test case(s) without masks left out (first: t0)" in summary["warnings"]
    assert tree_digest(src) == before


def test_nnunet_count_mismatch_warns(tmp_path, capsys):
    src = make_nnunet(tmp_path / "src")
    meta = json.loads((src / "dataset.json").read_text())
    meta["numTraining"] = 7
    (src / "dataset.json").write_text(json.dumps(meta))
    rc, stdout, _ = _run("nnunet", src, [], tmp_path / "out", capsys)
    summary = json.loads(stdout)
    assert rc == 0 and summary["count"] == 3
    assert any("numTraining 7 but 3 cases" in w for w in summary["warnings"])


def test_at_least_15_distinct_malformed_inputs():
    assert len(REFUSED) + len(HANDLED) + 2 >= 15


def test_missing_folder_message_has_no_doubled_words(tmp_path) -> None:
    """'pass the folder folder' read as a typo (issue 17, item 6)."""
    import re

    import pytest as _pytest

    from focusnet.data.readers import get_reader
    from focusnet.errors import FocusNetError as _Error

    for fmt in ("folder", "isic2018", "dsb2018", "nnunet"):
        with _pytest.raises(_Error) as info:
            get_reader(fmt).list_items(tmp_path / "nowhere")
        message = str(info.value)
        assert not re.search(r"\b(\w+) \1\b", message), message
        assert "(see docs/how-to/" in message
