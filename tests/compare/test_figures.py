"""focusnet.compare.figures: case selection, colours, thumbnails and the PNG/PDF figures (tiny synthetic data)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from focusnet.compare.figures import (
    PALETTE,
    TRUTH_COLOR,
    case_thumbnail_png,
    dice_distributions,
    model_colors,
    qualitative_grid,
    select_cases,
    training_curves,
)

IDS = [f"img{i}" for i in range(6)]


def _blob(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def make_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for i, image_id in enumerate(IDS):
        truth = _blob(24, 32, 12, 16, 6 + i % 3)
        cases.append({
            "id": image_id,
            "image": rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8),
            "truth": truth,
            # unet predicts at a lower "model resolution": the figures resize it
            "predictions": {"focusnetpp": _blob(24, 32, 12, 17, 6), "unet": _blob(12, 16, 6, 8, 2 + i % 2)},
            "dice": {"focusnetpp": 0.9 - 0.1 * i, "unet": 0.5 + 0.05 * i},
        })
    return cases


def make_model(name: str, dice: list[float], curves: bool = True) -> dict:
    rows = [{"id": i, "dice": d, "jaccard": d / (2 - d)} for i, d in zip(IDS, dice)]
    model = {
        "name": name, "model": name, "preset": None, "status": "done", "error": None,
        "params": 1000, "gmacs": 0.1, "train_seconds": 1.0, "epochs_run": 3, "best_epoch": 2,
        "summary": {"per_image": rows, "mean": {"dice": float(np.mean(dice))}, "std": {"dice": float(np.std(dice))},
                    "count": len(rows)},
    }
    if curves:
        model["curves"] = {"train_loss": {"0": 0.9, "1": 0.7, "2": 0.6},
                           "val_loss": {0: 0.95, 1: 0.8, 2: None},
                           "val_dice": {"0": 0.4, "1": 0.6, "2": 0.7}}
    return model


def make_comparison() -> dict:
    return {
        "title": "synthetic", "dataset": "folder", "reference": "focusnetpp", "protocol": {"epochs": 3},
        "models": [
            make_model("focusnetpp", [0.9 - 0.1 * i for i in range(6)]),
            make_model("unet", [0.5 + 0.05 * i for i in range(6)], curves=False),
            {"name": "broken", "model": "r2unet", "status": "failed", "error": "CUDA out of memory"},
        ],
    }


def assert_png_pdf(paths, stem) -> None:
    assert [p.name for p in paths] == [f"{stem.name}.png", f"{stem.name}.pdf"]
    with Image.open(paths[0]) as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
        im.load()
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert not [p for p in stem.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_select_cases_known_dict_and_deterministic():
    dice = {"a": 0.9, "b": 0.5, "c": 0.7, "d": float("nan"), "e": 0.1, "f": 0.7, "g": None, "h": 0.3, "i": 0.9}
    picks = select_cases(dice, per_group=2)
    # ranking (Dice desc, id asc): a .9, i .9, c .7, f .7, b .5, h .3, e .1 -> middle index 3 (f)
    assert picks == [("best", "a"), ("best", "i"), ("median", "c"), ("median", "f"), ("worst", "h"), ("worst", "e")]
    shuffled = dict(reversed(list(dice.items())))
    assert select_cases(shuffled, per_group=2) == picks
    assert select_cases({}, per_group=2) == []


@pytest.mark.parametrize("n, groups", [(1, ["best"]), (3, ["best", "best", "worst"]),
                                       (4, ["best", "best", "worst", "worst"]),
                                       (5, ["best", "best", "median", "worst", "worst"])])
def test_select_cases_few_images_no_duplicates(n, groups):
    picks = select_cases({f"x{i}": i / 10 for i in range(n)}, per_group=2)
    assert [g for g, _ in picks] == groups
    assert len({i for _, i in picks}) == len(picks)


def test_model_colors_stable_and_distinct():
    known = ["focusnetpp", "unet", "focusnet", "attention_unet", "unetpp", "bcdunet", "r2unet", "wide_unet", "fcn"]
    colors = model_colors(known)
    assert len(set(colors.values())) == len(known)
    assert model_colors(reversed(known)) == colors
    assert model_colors(["unet"])["unet"] == colors["unet"]
    mixed = model_colors(["focusnetpp-paper", "focusnetpp-lite", "custom<1>", "focusnetpp"])
    assert len(set(mixed.values())) == 4 and mixed["focusnetpp"] == PALETTE[0]
    assert TRUTH_COLOR not in colors.values()


def test_case_thumbnail_png_contours():
    image = np.full((40, 80, 3), 128, np.uint8)
    truth = _blob(40, 80, 20, 30, 10)
    pred = _blob(20, 40, 10, 25, 5)  # other resolution
    data = case_thumbnail_png(image, truth, pred, size=60, color="#0072B2")
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.size == (60, 30)
        px = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in px}
    assert (0x00, 0xC2, 0x8A) in colours and (0x00, 0x72, 0xB2) in colours and (128, 128, 128) in colours
    # grey float image, no prediction
    data = case_thumbnail_png(np.linspace(0, 1, 100).reshape(10, 10), truth[:10, 25:35], None, size=96)
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (96, 96)


def test_figures_written_and_closed(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    comparison = make_comparison()
    cases = make_cases(np.random.default_rng(0))
    picks = select_cases({c["id"]: c["dice"]["focusnetpp"] for c in cases}, per_group=1)
    stem = tmp_path / "figs" / "qualitative"
    names = ["focusnetpp", "unet", "broken"]  # broken has no predictions: empty panels
    assert_png_pdf(qualitative_grid(cases, picks + [("best", "missing-id")], names, stem), stem)
    stem = tmp_path / "figs" / "training_curves"
    assert_png_pdf(training_curves(comparison, stem), stem)  # unet has no curves, broken failed
    stem = tmp_path / "figs" / "dice_distribution"
    assert_png_pdf(dice_distributions(comparison, stem), stem)
    assert plt.get_fignums() == before


def test_figures_one_model_and_nothing_to_plot(tmp_path):
    one = {"models": [make_model("focusnetpp", [0.8, 0.7, 0.9, 0.6, 0.85, 0.75], curves=False)]}
    assert_png_pdf(training_curves(one, tmp_path / "tc"), tmp_path / "tc")
    assert_png_pdf(dice_distributions(one, tmp_path / "dd.v1"), tmp_path / "dd.v1")
    failed_only = {"models": [{"name": "x", "status": "failed", "error": "boom"}]}
    assert_png_pdf(dice_distributions(failed_only, tmp_path / "none"), tmp_path / "none")
    assert_png_pdf(qualitative_grid([], [], ["x"], tmp_path / "grid"), tmp_path / "grid")


def test_training_curves_star_the_best_epoch(tmp_path, monkeypatch):
    """best_epoch is numbered from 0, as the curves' keys are, so its star is drawn (it never was
    while compare counted best_epoch from 1)."""
    from focusnet.compare import figures

    drawn = {}
    real_save = figures._save

    def spy(fig, out_stem):
        drawn["stars"] = [(line.get_xdata()[0], line.get_ydata()[0]) for ax in fig.axes for line in ax.lines
                          if line.get_marker() == "*"]
        return real_save(fig, out_stem)

    monkeypatch.setattr(figures, "_save", spy)
    training_curves(make_comparison(), tmp_path / "tc")
    assert drawn["stars"] == [(2, 0.7)]  # focusnetpp's best epoch 2 (the third), on its val Dice curve
