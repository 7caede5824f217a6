"""One epoch of training through the engine for every registered model and preset.

Each model is shrunk through its ``build`` keyword arguments (base width 4-8; FocusNet++ presets keep
their block layout with all widths 8) and trained for one epoch on 12 synthetic 32x32 lesions at
batch 4 with :func:`focusnet.engine.train.train`; the run must hold a checkpoint and a finite
test summary. 32x32 suits every model (FCN-8s needs multiples of 32, BCDU-Net of 8, the rest 16).
"""
from __future__ import annotations

import json
import math

import pytest

from focusnet.engine.config import TrainConfig
from focusnet.models import list_models, list_presets

SIZE = 32

# Keyword arguments that shrink each model (see each model's ``build``); models not listed here
# fail the coverage test below, so a new model must say how it is shrunk.
SHRINK: dict[str, dict] = {
    "attention_unet": {"base_width": 4},
    "bcdunet": {"base_width": 4},
    "fcn": {"base_width": 4, "fc_width": 16},
    "focusnet": {"base_width": 8},  # a multiple of 8
    "r2unet": {"base_width": 4},
    "unet": {"base_width": 4},
    "unetpp": {"base_width": 4},
    "wide_unet": {"base_width": 4},
}


def _focusnetpp_shrink(preset: str) -> dict:
    from focusnet.models.focusnetpp import PRESETS

    cfg = PRESETS[preset]
    return {
        "widths": (8,) * len(cfg.widths),
        "stem_width": 8,
        "head_mid": tuple(None if m is None else 8 for m in cfg.head_mid),
        "fusion_mid": 8,
    }


def _cases() -> list:
    cases = []
    for name in list_models():
        presets = list_presets(name)
        for preset in presets or (None,):
            cases.append(pytest.param(name, preset, {}, id=f"{name}-{preset}" if preset else name))
    # UNet++ "accurate mode": the engine trains every deep-supervision head
    cases.append(pytest.param("unetpp", None, {"deep_supervision": True}, id="unetpp-deep_supervision"))
    cases.append(pytest.param("focusnetpp", "lite", {"deep_supervision": True}, id="focusnetpp-lite-deep_supervision"))
    return cases


def _shrink(name: str, preset: str | None) -> dict:
    if name == "focusnetpp":
        return _focusnetpp_shrink(preset)
    return dict(SHRINK[name])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """12 synthetic 32x32 lesions (6/3/3 split) and one shared cache folder (prepared once)."""
    from focusnet.data.synthetic import generate

    root = tmp_path_factory.mktemp("lesions")
    generate("lesions", root, count=12, size=SIZE, seed=0, overwrite=True)
    cache_dir = tmp_path_factory.mktemp("prepared")
    return {"format": "folder", "source": str(root), "split": "random:0.5,0.25,0.25", "cache_dir": str(cache_dir)}


def test_every_model_has_a_shrink_rule():
    missing = [m for m in list_models() if m != "focusnetpp" and m not in SHRINK]
    assert not missing, f"add a SHRINK entry for {missing}"


@pytest.mark.parametrize(("name", "preset", "extra"), _cases())
def test_one_epoch_through_the_engine(name, preset, extra, data, tmp_path):
    from focusnet.engine.train import train

    config = TrainConfig(
        model=name,
        preset=preset,
        model_kwargs={**_shrink(name, preset), **extra},
        data=dict(data),
        out_dir=str(tmp_path / "run"),
        size=SIZE,
        batch_size=4,
        epochs=1,
        lr=1e-3,
        lr_schedule="constant",
        progress_bar=False,
        num_threads=1,
    )
    run = train(config)
    assert (run / "best.ckpt").is_file() or (run / "weights" / "best.safetensors").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["count"] == 3
    for group in ("mean", "pooled"):
        for metric, value in summary[group].items():
            assert value is not None and math.isfinite(value), (group, metric)
    assert math.isfinite(summary["thresholded_jaccard"])
