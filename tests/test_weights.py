"""Weights for use: safetensors + JSON config, loaded in a fresh process without unpickling,
run-folder resolution, and one clear error (exit code 2 through the CLI) per bad weights file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import focusnet
from focusnet.cli import main
from focusnet.errors import FocusNetError
from focusnet.models import create_model
from focusnet.weights import FORMAT, SavedModelConfig, load_model, load_model_config, save_weights
from tests.helpers import TINY_FOCUSNETPP_LITE as TINY

PRE = {"size": 32, "channels": 3, "normalization": "minmax"}
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_model(seed: int = 0) -> nn.Module:
    """A tiny FocusNet++ with non-trivial BatchNorm statistics (so buffers are really tested)."""
    torch.manual_seed(seed)
    model = create_model("focusnetpp", **TINY)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    save_weights(_tiny_model(), tmp_path / "run" / "weights" / "best", "focusnetpp", TINY, PRE, threshold=0.4,
                 extra={"epoch": 3})
    return tmp_path / "run"


def _image(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "in" / "a.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


# ------------------------------------------------------------------------------------------- save
def test_save_writes_safetensors_and_json(run_dir: Path) -> None:
    from safetensors import safe_open

    weights = run_dir / "weights" / "best.safetensors"
    sidecar = run_dir / "weights" / "best.json"
    assert weights.is_file() and sidecar.is_file()
    assert sorted(p.name for p in weights.parent.iterdir()) == ["best.json", "best.safetensors"], "temp files left"
    data = json.loads(sidecar.read_text())
    assert data["format"] == FORMAT and data["model"] == "focusnetpp" and data["weights"] == "best.safetensors"
    assert data["kwargs"]["preset"] == "lite" and data["kwargs"]["widths"] == [8, 8, 8, 8, 8]
    assert data["kwargs"]["in_channels"] == 3 and data["kwargs"]["num_classes"] == 1
    assert data["preprocessing"] == PRE and data["threshold"] == 0.4 and data["extra"] == {"epoch": 3}
    assert data["focusnet_version"] == focusnet.__version__ and data["created"]
    with safe_open(str(weights), framework="pt") as fh:
        meta = fh.metadata()
        keys = set(fh.keys())
    assert meta["format"] == FORMAT
    embedded = json.loads(meta["focusnet_config"])
    assert embedded == {k: v for k, v in data.items() if k != "weights"}
    assert keys == set(_tiny_model().state_dict())  # parameters and BatchNorm buffers
    assert any(k.endswith("running_var") for k in keys) and any(k.endswith("num_batches_tracked") for k in keys)


def test_save_fills_defaults_and_accepts_file_names(tmp_path: Path) -> None:
    model = create_model("unet", base_width=4)
    path = save_weights(model, tmp_path / "u.safetensors", "unet", {"base_width": 4}, {**PRE, "normalization": "unit"})
    assert path == tmp_path / "u.safetensors" and (tmp_path / "u.json").is_file()
    cfg = load_model_config(tmp_path / "u.json")
    assert cfg.kwargs == {"in_channels": 3, "num_classes": 1, "base_width": 4} and cfg.preset is None
    cfg = load_model_config(save_weights(_tiny_model(), tmp_path / "f", "focusnetpp", {**TINY, "preset": None}, PRE))
    assert cfg.preset == "paper"  # the model's default preset is written out explicitly


def test_load_accepts_a_header_length_whose_first_byte_is_pickles_opcode(tmp_path: Path) -> None:
    """A safetensors file starts with its header's length, 8 bytes little-endian: for one header size
    in 256 its first byte is 0x80, a pickle's first opcode. Such weights load (two of twelve
    head-to-head runs of session 17 wrote one), and a real pickle is still refused."""
    model = _tiny_model()
    for pad in range(0, 1024, 8):
        path = save_weights(model, tmp_path / "w", "focusnetpp", TINY, PRE, extra={"pad": "x" * pad})
        head = path.read_bytes()[:9]
        if head[0] == 0x80:
            break
    else:
        raise AssertionError("no padding gave a header length with first byte 0x80")
    assert head[8:9] == b"{"
    loaded = load_model(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    torch.save(model.state_dict(), tmp_path / "p.safetensors")  # a pickle, misnamed
    with pytest.raises(FocusNetError, match="is a PyTorch pickle checkpoint"):
        load_model(tmp_path / "p.safetensors")


def test_save_refuses_kwargs_that_do_not_rebuild_the_model(tmp_path: Path) -> None:
    with pytest.raises(FocusNetError, match=r"does not match .*widths=\[16, 8, 8, 8, 8\].*(missing keys|shape mismatch)"):
        save_weights(_tiny_model(), tmp_path / "w" / "x", "focusnetpp", {**TINY, "widths": (16, 8, 8, 8, 8)}, PRE)
    with pytest.raises(FocusNetError, match="preprocessing.channels is 1"):
        save_weights(_tiny_model(), tmp_path / "w" / "x", "focusnetpp", TINY, {**PRE, "channels": 1})
    with pytest.raises(FocusNetError, match="threshold"):
        save_weights(_tiny_model(), tmp_path / "w" / "x", "focusnetpp", TINY, PRE, threshold=1.5)
    assert not (tmp_path / "w").exists()


def test_save_unwraps_compiled_models(tmp_path: Path) -> None:
    model = _tiny_model()

    class Wrapper(nn.Module):  # what torch.compile returns: the model as ``_orig_mod``
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self._orig_mod = inner

    path = save_weights(Wrapper(model), tmp_path / "c", "focusnetpp", TINY, PRE)
    loaded = load_model(path)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


# ------------------------------------------------------------------------------------------- load
def test_load_in_fresh_process_gives_same_probabilities(run_dir: Path, tmp_path: Path) -> None:
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    np.save(tmp_path / "x.npy", x.numpy())
    with torch.no_grad():
        expected = torch.sigmoid(_tiny_model()(x)).numpy()
    code = (
        "import sys, numpy as np, torch, focusnet\n"
        "torch.set_num_threads(1)\n"
        "model = focusnet.load_model(sys.argv[1])\n"
        "assert not model.training and model.focusnet_config.threshold == 0.4\n"
        "with torch.no_grad():\n"
        "    p = torch.sigmoid(model(torch.from_numpy(np.load(sys.argv[2])))).numpy()\n"
        "np.save(sys.argv[3], p)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = tmp_path / "p.npy"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(run_dir), str(tmp_path / "x.npy"), str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    got = np.load(out)
    assert got.shape == expected.shape == (3, 1, 32, 32)
    assert float(np.abs(got - expected).max()) <= 1e-6


def test_load_never_unpickles(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    model = load_model(run_dir)
    assert isinstance(model.focusnet_config, SavedModelConfig)


def test_path_resolution(run_dir: Path) -> None:
    weights = run_dir / "weights" / "best.safetensors"
    expected = _tiny_model().state_dict()
    for path in (run_dir, run_dir / "weights", weights, run_dir / "weights" / "best.json", str(weights)):
        model = load_model(path)
        assert not model.training
        assert model.focusnet_config.describe() == (
            "focusnetpp(preset='lite', in_channels=3, num_classes=1, widths=[8, 8, 8, 8, 8], "
            "head_mid=[8, 8, 8, 8], stem_width=8, fusion_mid=8)"
        )
        for k, v in model.state_dict().items():
            assert torch.equal(v, expected[k]), (path, k)
    cfg = load_model_config(run_dir)
    assert cfg.size == (32, 32) and cfg.channels == 3 and cfg.normalization == "minmax" and cfg.threshold == 0.4


def test_edited_json_threshold_wins_and_lone_safetensors_loads(run_dir: Path) -> None:
    sidecar = run_dir / "weights" / "best.json"
    data = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**data, "threshold": 0.7}))
    assert load_model_config(run_dir).threshold == 0.7
    sidecar.unlink()  # the copy inside the weights file is used
    assert load_model(run_dir).focusnet_config.threshold == 0.4


# ----------------------------------------------------------------------------------------- errors
def _corrupt(run_dir: Path, kind: str) -> tuple[Path, str]:
    """Make one broken weights input; returns (path to pass, expected message fragment)."""
    weights = run_dir / "weights" / "best.safetensors"
    sidecar = run_dir / "weights" / "best.json"
    if kind == "missing":
        return run_dir / "nope.safetensors", "nope.safetensors: file not found"
    if kind == "not_safetensors":
        bad = run_dir / "notes.safetensors"
        bad.write_text("these are not weights")
        return bad, "notes.safetensors: not a safetensors file"
    if kind == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 3])
        return weights, "best.safetensors: truncated safetensors file"
    if kind == "truncated_data":
        data = weights.read_bytes()
        weights.write_bytes(data[:-64])
        return weights, "best.safetensors: not a valid safetensors file or truncated"
    if kind == "config_missing":
        from safetensors.torch import save_file

        bare = run_dir / "bare.safetensors"
        save_file({k: v.contiguous() for k, v in _tiny_model().state_dict().items()}, str(bare))
        return bare, "bare.safetensors: no model config: bare.json is missing"
    if kind == "config_invalid":
        sidecar.write_text("{not json")
        return run_dir, "best.json: invalid JSON in the model config (line 1"
    if kind == "config_not_focusnet":
        sidecar.write_text(json.dumps({"model": "unet"}))
        return run_dir, "best.json: not a focusnet model config"
    if kind == "config_bad_value":
        data = json.loads(sidecar.read_text())
        data["preprocessing"]["normalization"] = "zscore"
        sidecar.write_text(json.dumps(data))
        return run_dir, "best.json: preprocessing.normalization must be one of minmax, unit"
    if kind == "config_unknown_model":
        data = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**data, "model": "nosuchnet"}))
        return run_dir, "best.json: unknown model 'nosuchnet'"
    if kind == "weights_mismatch":
        data = json.loads(sidecar.read_text())
        data["kwargs"]["widths"] = [16, 8, 8, 8, 8]
        sidecar.write_text(json.dumps(data))
        return run_dir, "weights do not fit the config's model focusnetpp(preset='lite', in_channels=3, num_classes=1, widths=[16"
    if kind == "ckpt":
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        ckpt.parent.mkdir()
        torch.save({"state_dict": {}}, ckpt)
        return ckpt, "last.ckpt: is a PyTorch pickle checkpoint; focusnet loads only safetensors weights; use the run's weights/*.safetensors"
    if kind == "pt_renamed":
        pt = run_dir / "model.bin"
        torch.save({}, pt)
        return pt, "model.bin: is a PyTorch pickle checkpoint; focusnet loads only safetensors weights"
    if kind == "empty_folder":
        empty = run_dir / "empty"
        empty.mkdir()
        return empty, "empty: no weights/best.safetensors in this folder"
    raise AssertionError(kind)


ERROR_KINDS = [
    "missing", "not_safetensors", "truncated", "truncated_data", "config_missing", "config_invalid",
    "config_not_focusnet", "config_bad_value", "config_unknown_model", "weights_mismatch", "ckpt",
    "pt_renamed", "empty_folder",
]


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_load_errors_name_the_file_and_the_fix(run_dir: Path, kind: str) -> None:
    path, fragment = _corrupt(run_dir, kind)
    with pytest.raises(FocusNetError) as info:
        load_model(path)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_mismatch_names_keys_and_both_models(run_dir: Path) -> None:
    path, _ = _corrupt(run_dir, "weights_mismatch")
    with pytest.raises(FocusNetError) as info:
        load_model(path)
    message = str(info.value)
    assert "shape mismatch encoder." in message and "file (8" in message and "model (16" in message
    assert "the weights were saved for focusnetpp(preset='lite', in_channels=3, num_classes=1, widths=[8, 8" in message
    assert "(+" in message  # only the first few keys are listed


def test_checkpoint_error_points_to_the_safetensors(run_dir: Path) -> None:
    path, _ = _corrupt(run_dir, "ckpt")
    with pytest.raises(FocusNetError, match=r"\(here: .*weights/best\.safetensors\)"):
        load_model(path)


@pytest.mark.parametrize("kind", ["missing", "truncated", "config_invalid", "weights_mismatch", "ckpt"])
def test_cli_exit_code_2(run_dir: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    path, fragment = _corrupt(run_dir, kind)
    out = tmp_path / "masks"
    code = main(["predict", str(path), str(_image(tmp_path)), str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("focusnet: error: ") and fragment in err and err.count("\n") == 1
    assert not out.exists(), "nothing may be written when the model cannot be loaded"
