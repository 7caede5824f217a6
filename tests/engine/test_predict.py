"""`focusnet predict`: masks of exactly each image's size (any size and format), 0/255 only, the
training preprocessing, flip TTA, probability maps and overlays, refusals before writing anything,
the CLI, and full-resolution ISIC 2018 images when the real data is present."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focusnet.cli import main
from focusnet.data.io import read_image
from focusnet.data.paths import data_root
from focusnet.data.preprocess import normalize_image, resize_image
from focusnet.engine.predict import (
    OVERLAY_MAX_SIDE,
    collect_inputs,
    overlay_image,
    predict,
    probabilities_to_size,
)
from focusnet.errors import FocusNetError
from focusnet.models import create_model
from focusnet.weights import load_model, save_weights
from tests.helpers import TINY_FOCUSNETPP_LITE as TINY

PRE = {"size": 32, "channels": 3, "normalization": "minmax"}
ISIC_IMAGES = "isic2018_task1/ISIC2018_Task1-2_Training_Input"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained FocusNet++ whose probabilities straddle 0.5 (biased last layer)."""
    torch.manual_seed(0)
    model = create_model("focusnetpp", **TINY).eval()
    with torch.no_grad():  # centre the logits of noise images on 0, so masks are partly foreground
        logits = model(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
        model.fusion[-1].bias -= logits.median()
    return save_weights(model, tmp_path_factory.mktemp("model") / "best", "focusnetpp", TINY, PRE)


def _write(path: Path, array: np.ndarray, **save_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save_kwargs)
    return path


@pytest.fixture()
def images(tmp_path: Path) -> dict[str, tuple[int, int]]:
    """Odd sizes and several formats: {file name: (height, width)}."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    specs = {
        "odd.png": ((53, 70), "RGB"),
        "wide.jpg": ((131, 200), "RGB"),
        "grey.bmp": ((47, 33), "L"),
        "alpha.png": ((64, 64), "RGBA"),
        "tall.tif": ((90, 17), "RGB"),
    }
    for name, ((h, w), mode) in specs.items():
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        _write(folder / name, arr[:, :, 0] if channels == 1 else arr)
    (folder / "notes.txt").write_text("not an image")
    return {name: hw for name, (hw, _) in specs.items()}


def _expected_probability(weights: Path, path: Path, tta: bool = False) -> np.ndarray:
    """Probabilities at the original size, computed step by step as training preprocesses."""
    model = load_model(weights)
    image = read_image(path, channels=3)
    x = torch.from_numpy(normalize_image(resize_image(image, 32), "minmax"))[None]
    with torch.no_grad():
        p = torch.sigmoid(model(x))
        if tta:
            p = (p + torch.sigmoid(model(x.flip(-1))).flip(-1) + torch.sigmoid(model(x.flip(-2))).flip(-2)) / 3
    return probabilities_to_size(p[0, 0].numpy(), image.shape[:2])


# ------------------------------------------------------------------------------------------ sizes
def test_masks_have_each_original_size_and_are_binary(weights: Path, images: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = predict(weights, tmp_path / "images", out, batch_size=2, progress=False)
    assert [r["id"] for r in rows] == sorted(Path(n).stem for n in images)  # sorted, notes.txt skipped
    assert sorted(os.listdir(out)) == sorted(f"{Path(n).stem}_mask.png" for n in images)
    fractions = []
    for row in rows:
        name = Path(row["input"]).name
        mask = Image.open(row["output"])
        assert mask.mode == "L" and row["orig_size"] == list(images[name])
        assert mask.size == (images[name][1], images[name][0])  # PIL: (width, height)
        values = set(np.unique(np.asarray(mask)).tolist())
        assert values <= {0, 255}
        fractions.append(row["foreground"])
        assert row["probabilities"] is None and row["overlay"] is None
    assert any(0.0 < f < 1.0 for f in fractions), "the test model should give mixed masks"


def test_mask_is_the_thresholded_bilinear_probability(weights: Path, images: dict, tmp_path: Path) -> None:
    src = tmp_path / "images" / "wide.jpg"
    rows = predict(weights, src, tmp_path / "out", save_probabilities=True, threshold=0.5, progress=False)
    prob = _expected_probability(weights, src)
    mask = np.asarray(Image.open(rows[0]["output"])) > 0
    assert np.array_equal(mask, prob > 0.5)
    saved = np.asarray(Image.open(rows[0]["probabilities"])).astype(np.float32) / 255.0
    assert saved.shape == (131, 200) and np.abs(saved - prob).max() <= 0.5 / 255 + 1e-6


def test_threshold_and_batch_size(weights: Path, images: dict, tmp_path: Path) -> None:
    one = predict(weights, tmp_path / "images", tmp_path / "b1", batch_size=1, progress=False)
    three = predict(weights, tmp_path / "images", tmp_path / "b3", batch_size=3, progress=False)
    for a, b in zip(one, three):
        assert np.array_equal(np.asarray(Image.open(a["output"])), np.asarray(Image.open(b["output"])))
    low = predict(weights, tmp_path / "images", tmp_path / "low", threshold=1e-6, progress=False)
    high = predict(weights, tmp_path / "images", tmp_path / "high", threshold=1 - 1e-6, progress=False)
    assert all(r["foreground"] == 1.0 for r in low) and all(r["foreground"] == 0.0 for r in high)


def test_tta_shapes_and_values(weights: Path, images: dict, tmp_path: Path) -> None:
    rows = predict(weights, tmp_path / "images", tmp_path / "tta", tta=True, save_probabilities=True, progress=False)
    for row in rows:
        h, w = images[Path(row["input"]).name]
        assert Image.open(row["output"]).size == (w, h) and Image.open(row["probabilities"]).size == (w, h)
    src = tmp_path / "images" / "odd.png"
    row = next(r for r in rows if r["input"] == str(src))
    expected = _expected_probability(weights, src, tta=True) > 0.5
    assert np.array_equal(np.asarray(Image.open(row["output"])) > 0, expected)


def test_probabilities_and_overlays(weights: Path, images: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = predict(weights, tmp_path / "images", out, save_probabilities=True, save_overlays=True, progress=False)
    assert len(os.listdir(out)) == 3 * len(images)
    for row in rows:
        h, w = images[Path(row["input"]).name]
        prob, overlay = Image.open(row["probabilities"]), Image.open(row["overlay"])
        assert prob.mode == "L" and prob.size == (w, h)
        assert overlay.mode == "RGB" and overlay.size == (w, h)
    assert not [p for p in os.listdir(out) if p.startswith(".")], "temporary files left behind"


def test_large_image_overlay_is_downscaled_and_smaller(weights: Path, tmp_path: Path) -> None:
    """A full-resolution photo made a 5.7 MB overlay PNG (issue 17, item 11): overlays are at most
    OVERLAY_MAX_SIDE on a side, the mask keeps the original size."""
    import io

    h, w = 1536, 2304
    yy, xx = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(1).integers(0, 24, (h, w, 3))
    photo = np.clip(np.stack([xx * 200 // w, yy * 200 // h, (xx + yy) * 100 // (w + h)], -1) + noise, 0, 255)
    _write(tmp_path / "big" / "photo.png", photo.astype(np.uint8))
    row = predict(weights, tmp_path / "big", tmp_path / "out", save_overlays=True, progress=False)[0]
    mask = np.asarray(Image.open(row["output"])) > 0
    overlay = Image.open(row["overlay"])
    assert mask.shape == (h, w) and overlay.size == (OVERLAY_MAX_SIDE, round(h * OVERLAY_MAX_SIDE / w))
    full = io.BytesIO()
    Image.fromarray(overlay_image(photo.astype(np.uint8), mask)).save(full, format="PNG")
    assert os.path.getsize(row["overlay"]) < full.tell() / 3


def test_overlay_contour_stays_visible_when_shown_smaller() -> None:
    """The contour was 1/500 of the side: shown at a quarter of its size it blended away."""
    side = 1024
    mask = np.zeros((side, side), bool)
    mask[256:768, 256:768] = True
    out = overlay_image(np.zeros((side, side, 3), np.uint8), mask)
    shown = np.asarray(Image.fromarray(out).resize((side // 4, side // 4), Image.BOX)).astype(int)
    yellow = (shown[..., 0] > 200) & (shown[..., 1] > 200) & (shown[..., 2] < 60)
    assert yellow.sum() >= 4 * (512 // 4 - 2)  # the square's border, all round
    # the line scales with the image: 4 pixels at 1024, 1 pixel at 64
    assert out[512, 256:262, 1].tolist() == [255, 255, 255, 255, 0, 0]
    small = overlay_image(np.zeros((64, 64, 3), np.uint8), mask[::16, ::16])
    assert small[32, 16:18, 1].tolist() == [255, 0]


def test_inputs_file_glob_list_and_suffix(weights: Path, images: dict, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    rows = predict(weights, str(folder / "*.png"), tmp_path / "g", suffix="_seg", progress=False)
    assert sorted(Path(r["output"]).name for r in rows) == ["alpha_seg.png", "odd_seg.png"]
    rows = predict(weights, [folder / "wide.jpg", folder / "grey.bmp", folder / "wide.jpg"], tmp_path / "l", progress=False)
    assert [r["id"] for r in rows] == ["wide", "grey"]  # list order kept, duplicates dropped
    files, folders = collect_inputs(folder)
    assert len(files) == len(images) and folders == [folder]


def test_model_object_and_grey_model(images: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("focusnetpp", **TINY, in_channels=1).eval()
    path = save_weights(model, tmp_path / "grey", "focusnetpp", {**TINY, "in_channels": 1},
                        {"size": [32, 48], "channels": 1, "normalization": "unit"})
    loaded = load_model(path)
    rows = predict(loaded, tmp_path / "images", tmp_path / "out", save_overlays=True, progress=False)
    for row in rows:
        h, w = images[Path(row["input"]).name]
        assert Image.open(row["output"]).size == (w, h) and Image.open(row["overlay"]).mode == "RGB"
    with pytest.raises(FocusNetError, match="carries no config"):
        predict(model, tmp_path / "images", tmp_path / "out2", progress=False)


# --------------------------------------------------------------------------------------- refusals
def test_refuses_to_overwrite_unless_asked(weights: Path, images: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    predict(weights, tmp_path / "images", out, progress=False)
    first = out / "odd_mask.png"
    first.write_bytes(b"sentinel")
    (out / "wide_mask.png").unlink()
    with pytest.raises(FocusNetError, match=r"alpha_mask\.png and 3 more: output already exists; pass --overwrite"):
        predict(weights, tmp_path / "images", out, progress=False)
    assert first.read_bytes() == b"sentinel" and not (out / "wide_mask.png").exists(), "nothing may be written"
    # a new kind of output is refused too when any planned output exists
    with pytest.raises(FocusNetError, match="already exists"):
        predict(weights, tmp_path / "images", out, save_overlays=True, progress=False)
    assert not list(out.glob("*_overlay.png"))
    predict(weights, tmp_path / "images", out, overwrite=True, progress=False)
    assert Image.open(first).size == (70, 53) and (out / "wide_mask.png").is_file()


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda t: (t / "images", t / "images"), "the output folder is inside the input folder"),
        (lambda t: (t / "images", t / "images" / "masks"), "the output folder is inside the input folder"),
        (lambda t: (str(t / "images" / "*.png"), t / "images"), "the output folder is inside the input folder"),
        (lambda t: (t / "nothing_here", t / "out"), "nothing_here: no such file or folder"),
        (lambda t: (str(t / "images" / "*.gif"), t / "out"), "no image files match this pattern"),
        (lambda t: ((t / "empty").mkdir() or t / "empty", t / "out"), "empty: no images in this folder"),
        (lambda t: ([t / "images", _write(t / "other" / "odd.jpg", np.zeros((8, 8, 3), np.uint8))], t / "out"),
         "their outputs would overwrite each other"),
    ],
    ids=["out-is-input", "out-inside-input", "out-is-glob-folder", "missing", "glob-no-match", "empty-folder",
         "same-stem"],
)
def test_refusals_write_nothing(weights: Path, images: dict, tmp_path: Path, make, fragment: str) -> None:
    inputs, out = make(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(FocusNetError, match=fragment):
        predict(weights, inputs, out, progress=False)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_bad_arguments(weights: Path, images: dict, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    for kwargs, fragment in [
        ({"batch_size": 0}, "--batch-size"),
        ({"threshold": 1.0}, "--threshold"),
        ({"suffix": "_prob", "save_probabilities": True}, "clashes"),
        ({"suffix": "a/b"}, "folder separator"),
        ({"backend": "tensorrt"}, "unknown backend"),
        ({"backend": "onnxruntime"}, "pass --onnx FILE"),
    ]:
        with pytest.raises(FocusNetError, match=fragment):
            predict(weights, folder, tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------- CLI
def test_cli_predict(weights: Path, images: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["predict", str(weights), str(tmp_path / "images"), str(out), "--batch-size", "3", "--tta", "--probabilities"]
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"predicted {len(images)} mask(s) (+ probability maps) into {out}") and "\n" not in line
    assert len(list(out.glob("*_mask.png"))) == len(images) and len(list(out.glob("*_prob.png"))) == len(images)
    assert main(args) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    # several INPUT arguments, as an unquoted shell glob gives them
    several = ["predict", str(weights), str(tmp_path / "images" / "odd.png"), str(tmp_path / "images" / "wide.jpg"),
               str(tmp_path / "two"), "--suffix", "_m"]
    assert main(several) == 0
    assert sorted(os.listdir(tmp_path / "two")) == ["odd_m.png", "wide_m.png"]


# --------------------------------------------------------------------------------------------- ONNX
def test_onnxruntime_backend_matches_torch(weights: Path, images: dict, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install '.[onnx]')")
    export = pytest.importorskip("focusnet.engine.export", reason="focusnet.engine.export is not written yet")
    onnx = export.export_model(load_model(weights), tmp_path / "m.onnx", format="onnx", example_size=32)
    ref = predict(weights, tmp_path / "images", tmp_path / "t", save_probabilities=True, progress=False)
    got = predict(weights, tmp_path / "images", tmp_path / "o", backend="onnxruntime", onnx_path=onnx,
                  save_probabilities=True, progress=False)
    for a, b in zip(ref, got):
        pa = np.asarray(Image.open(a["probabilities"])).astype(int)
        pb = np.asarray(Image.open(b["probabilities"])).astype(int)
        assert pa.shape == pb.shape and np.abs(pa - pb).max() <= 1
        ma, mb = np.asarray(Image.open(a["output"])), np.asarray(Image.open(b["output"]))
        assert (ma != mb).mean() < 0.01  # only pixels within float noise of the threshold may differ


# ---------------------------------------------------------------------------------------- real data
def test_full_resolution_isic_images(weights: Path, tmp_path: Path) -> None:
    folder = data_root() / ISIC_IMAGES
    if not folder.is_dir():
        pytest.skip(f"real data absent: {folder} (set FOCUSNET_DATA to the folder holding isic2018_task1)")
    sources = sorted(folder.glob("*.jpg"))[:3]
    if not sources:
        pytest.skip(f"real data absent: no .jpg images in {folder}")
    rows = predict(weights, sources, tmp_path / "isic", progress=False)
    assert len(rows) == len(sources)
    for src, row in zip(sources, rows):
        with Image.open(src) as im:
            width, height = im.size
        mask = Image.open(row["output"])
        assert mask.size == (width, height) and row["orig_size"] == [height, width]
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}
    assert not list(folder.glob("*_mask.png")), "the dataset folder must not be written to"


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_keep_the_umask_mode(weights: Path, images: dict, tmp_path: Path, umask: int) -> None:
    """Masks, probability maps, overlays and exported models get 0666 less the umask, as every other
    output does (they were 0600: mkstemp's mode survived the rename)."""
    from focusnet.engine.export import export

    old = os.umask(umask)
    try:
        predict(weights, tmp_path / "images" / "odd.png", tmp_path / "out", save_probabilities=True,
                save_overlays=True, progress=False)
        model = load_model(weights)
        export(model, tmp_path / "model.onnx", "onnx", example_size=32)
        export(model, tmp_path / "model.pt", "torchscript", example_size=32)
    finally:
        os.umask(old)
    written = sorted((tmp_path / "out").iterdir()) + [tmp_path / "model.onnx", tmp_path / "model.pt"]
    assert len(written) == 5
    for path in written:
        assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~umask), path.name


def test_one_image_to_a_png_file(weights: Path, images: dict, tmp_path: Path) -> None:
    """`predict MODEL img.jpg out.png` writes the mask to out.png (it used to make a folder of that name)."""
    target = tmp_path / "out.png"
    assert main(["predict", str(weights), str(tmp_path / "images" / "wide.jpg"), str(target), "--no-progress"]) == 0
    assert target.is_file()
    with Image.open(target) as img:
        assert img.size == (200, 131) and img.mode == "L"
    assert main(["predict", str(weights), str(tmp_path / "images"), str(tmp_path / "many.png")]) == 2  # five images
    assert main(["predict", str(weights), str(tmp_path / "images" / "wide.jpg"), str(target)]) == 2  # exists
    assert not (tmp_path / "many.png").exists()


def test_every_mask_empty_is_warned_about(images: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model that predicts nothing (an undertrained run) gets a warning from predict and score."""
    model = create_model("focusnetpp", **TINY).eval()
    with torch.no_grad():
        model.fusion[-1].bias.fill_(-100.0)
    empty = save_weights(model, tmp_path / "empty" / "best", "focusnetpp", TINY, PRE)
    assert main(["predict", str(empty), str(tmp_path / "images"), str(tmp_path / "masks"), "--no-progress"]) == 0
    assert "every predicted mask is empty (5 of 5 images" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "masks"), str(tmp_path / "masks"), "--pred-suffix", "_mask",
                 "--true-suffix", "_mask"]) == 0
    assert "every predicted mask is empty" in capsys.readouterr().err


def test_unreadable_image_stops_unless_skipped(weights: Path, images: dict, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable image stops predict with its name, how many masks were already written and the flag that
    goes on; with --skip-bad it gets a row with the reason (in input order, no outputs), a warning names it,
    every other image gets its mask, and the exit code is 0."""
    folder = tmp_path / "images"
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 16)  # sorts between alpha.png and grey.bmp
    args = ["predict", str(weights), str(folder), str(tmp_path / "out"), "--batch-size", "1", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "broken.png: unreadable or truncated image" in err and "or pass --skip-bad" in err
    assert "the masks of the first 1 image(s) are written" in err  # alpha.png, the first in name order
    assert sorted(os.listdir(tmp_path / "out")) == ["alpha_mask.png"]

    rows = predict(weights, folder, tmp_path / "skip", batch_size=3, skip_bad=True, progress=False)
    assert [r["id"] for r in rows] == sorted(Path(n).stem for n in [*images, "broken.png"])
    bad = [r for r in rows if "error" in r]
    assert [r["id"] for r in bad] == ["broken"] and bad[0]["output"] is None and "unreadable" in bad[0]["error"]
    assert sorted(os.listdir(tmp_path / "skip")) == sorted(f"{Path(n).stem}_mask.png" for n in images)

    assert main([*args[:3], str(tmp_path / "cli"), "--skip-bad", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"predicted {len(images)} mask(s) into ") and "skipped 1 unreadable image(s)" in out
    assert "warning: skipped 1 image(s) that could not be read: " in err and "broken.png" in err
