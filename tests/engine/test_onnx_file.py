"""An exported ONNX file carries its model config (focusnet.engine.onnx_file): written by export,
read back by OnnxPredictor, replaced rather than duplicated, refused with a clear message when broken;
`focusnet predict FILE.onnx` then needs nothing else."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focusnet.cli import main
from focusnet.engine.predict import predict
from focusnet.errors import FocusNetError
from focusnet.models import create_model
from focusnet.weights import load_model, load_model_config, save_weights
from focusnet.weights.config import CONFIG_METADATA_KEY
from tests.helpers import TINY_FOCUSNETPP_LITE as TINY

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install '.[onnx]')")
onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install '.[onnx]')")
from focusnet.engine.export import export, export_model  # noqa: E402 - after the skips: needs onnxruntime
from focusnet.engine.onnx_file import OnnxPredictor, embed_config  # noqa: E402

PRE = {"size": 32, "channels": 3, "normalization": "minmax"}
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny FocusNet++ saved with a non-default threshold, so the config read back is recognisable."""
    torch.manual_seed(0)
    model = create_model("focusnetpp", **TINY).eval()
    return save_weights(model, tmp_path_factory.mktemp("model") / "best", "focusnetpp", TINY, PRE, threshold=0.4)


@pytest.fixture(scope="module")
def exported(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = export(load_model(weights), tmp_path_factory.mktemp("onnx") / "model.onnx", example_size=32)
    assert result.config_embedded
    return result.path


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for name, (h, w) in {"a.png": (40, 52), "b.jpg": (70, 33)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    return folder


def test_export_writes_the_weights_config(weights: Path, exported: Path) -> None:
    read = OnnxPredictor(exported).config
    assert read is not None and read.to_dict() == load_model_config(weights).to_dict()
    assert read.threshold == 0.4 and read.size == (32, 32)


def test_a_bare_model_exports_without_a_config(tmp_path: Path) -> None:
    result = export(create_model("focusnetpp", **TINY), tmp_path / "bare.onnx", example_size=32)
    assert not result.config_embedded and OnnxPredictor(result.path).config is None


def test_an_explicit_config_wins_and_replaces_the_entry(weights: Path, exported: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(exported))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "owner", "lab"
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    changed = load_model_config(weights)
    changed.threshold = 0.7
    embed_config(path, changed)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert [p.key for p in onnx.load(str(path)).metadata_props].count(CONFIG_METADATA_KEY) == 1
    assert props["owner"] == "lab" and json.loads(props[CONFIG_METADATA_KEY])["threshold"] == 0.7
    assert export_model(load_model(weights), tmp_path / "x.onnx", example_size=32, config=changed).is_file()
    assert OnnxPredictor(tmp_path / "x.onnx").config.threshold == 0.7  # type: ignore[union-attr]


def test_a_broken_config_or_file_is_named(exported: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(exported))
    for p in proto.metadata_props:
        if p.key == CONFIG_METADATA_KEY:
            p.value = "{not json"
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(FocusNetError, match=r"bad\.onnx \(ONNX metadata\): the config it holds is not valid JSON") as info:
        OnnxPredictor(bad)
    assert str(info.value).endswith("; export it again")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(FocusNetError, match=r"junk\.onnx: not a valid ONNX model"):
        OnnxPredictor(junk)


def test_predict_from_the_onnx_file_alone(weights: Path, exported: Path, images: Path, tmp_path: Path) -> None:
    """The file alone gives what the weights plus --onnx give (same preprocessing, same threshold 0.4)."""
    alone = predict(exported, images, tmp_path / "alone", save_probabilities=True, progress=False)
    paired = predict(weights, images, tmp_path / "paired", onnx_path=exported, save_probabilities=True, progress=False)
    assert len(alone) == len(paired) == 2
    for a, b in zip(alone, paired):
        for key in ("output", "probabilities"):
            assert np.array_equal(np.asarray(Image.open(a[key])), np.asarray(Image.open(b[key])))
        assert a["orig_size"] == b["orig_size"]


def test_predict_refusals_for_onnx_models(exported: Path, images: Path, tmp_path: Path) -> None:
    bare = export(create_model("focusnetpp", **TINY), tmp_path / "bare.onnx", example_size=32).path
    for model, kwargs, fragment in [
        (bare, {}, r"bare\.onnx: carries no focusnet config.*export it again from the run folder"),
        (exported, {"backend": "torch"}, r"model\.onnx: is an exported ONNX model, which the torch backend cannot run"),
        (exported, {"onnx_path": bare}, r"MODEL is already an ONNX file; leave out --onnx"),
    ]:
        with pytest.raises(FocusNetError, match=fragment):
            predict(model, images, tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_cli_export_then_predict(weights: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", str(weights), "--out", str(out)]) == 0
    assert f"it carries the model's preprocessing and threshold: focusnet predict {out}" in capsys.readouterr().out
    assert main(["predict", str(out), str(images), str(tmp_path / "masks")]) == 0
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["a_mask.png", "b_mask.png"]
