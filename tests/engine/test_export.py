"""Inference path: eval-mode BatchNorm folding, ONNX export with dynamic axes checked in ONNX
Runtime against PyTorch, TorchScript round trip, and `focusnet export` refusing to overwrite."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from focusnet.cli import main
from focusnet.data.synthetic import make_sample
from focusnet.engine import export
from focusnet.models import create_model, list_presets

PROB_TOL = 1e-4  # max abs difference of sigmoid probabilities, ONNX Runtime vs PyTorch


def _randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so folding is really tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


def _fold_atol(model: nn.Module, expected: torch.Tensor) -> float:
    """Absolute tolerance of folded against unfolded outputs, from fp32 rounding.

    A convolution's output changes by about ``eps * sqrt(fan_in)`` relative when its weights are
    rescaled (rounding of a K-term dot product grows like sqrt(K)); the changes of successive layers
    add up, so the bound is ``eps * sum_l sqrt(fan_in_l)`` times the output's magnitude. FCN at 32x32
    gives about 2e-4 against measured differences of 6e-6 (AVX-512) to 1.4e-5 (AVX2); a wrong fold
    (a missing or doubled BatchNorm) changes outputs by O(0.1).
    """
    terms = sum(math.sqrt(m.weight[0].numel()) for m in model.modules() if isinstance(m, nn.Conv2d))
    return torch.finfo(torch.float32).eps * terms * float(expected.abs().max())


def _n_batchnorm(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _real_batch(size: int, n: int = 2) -> torch.Tensor:
    """Synthetic dermoscopy-like lesions, scaled to [0, 1] as the data pipeline does."""
    rng = np.random.default_rng(0)
    images = [make_sample("lesions", size, rng)[0] for _ in range(n)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


@pytest.mark.parametrize(
    ("name", "kwargs", "size"),
    [(("focusnetpp"), {"preset": p}, 32) for p in list_presets("focusnetpp")] + [("fcn", {}, 32)],
    ids=[f"focusnetpp-{p}" for p in list_presets("focusnetpp")] + ["fcn"],
)
def test_fold_batchnorm_matches_unfolded(name: str, kwargs: dict, size: int) -> None:
    torch.manual_seed(0)
    model = _randomise_batchnorm(create_model(name, **kwargs))
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        expected = model(x)
    folded = export.fold_batchnorm(copy.deepcopy(model))
    assert _n_batchnorm(folded) < _n_batchnorm(model), "no BatchNorm was folded"
    with torch.no_grad():
        got = folded.eval()(x)
    torch.testing.assert_close(got, expected, rtol=0.0, atol=_fold_atol(model, expected))


@pytest.fixture(scope="module")
def lite_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install '.[onnx]')")
    torch.manual_seed(0)
    model = _randomise_batchnorm(create_model("focusnetpp", preset="lite"))
    path = export.export_model(model, tmp_path_factory.mktemp("onnx") / "lite.onnx", format="onnx", example_size=32)
    return model, Path(path)


def _max_prob_diff(model: nn.Module, predictor, x: torch.Tensor) -> float:
    with torch.no_grad():
        expected = torch.sigmoid(model.eval()(x)).numpy()
    got = predictor(x.numpy().astype(np.float32))
    assert got.shape == expected.shape
    return float(np.abs(1.0 / (1.0 + np.exp(-got)) - expected).max())


@pytest.mark.parametrize(("batch", "height", "width"), [(2, 32, 32), (3, 64, 48), (1, 96, 128)])
def test_onnx_dynamic_axes_match_pytorch(lite_onnx: tuple[nn.Module, Path], batch: int, height: int, width: int) -> None:
    model, path = lite_onnx
    predictor = export.OnnxPredictor(path)
    x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(batch))
    assert _max_prob_diff(model, predictor, x) <= PROB_TOL


def test_onnx_on_real_images_and_weights_inside(lite_onnx: tuple[nn.Module, Path]) -> None:
    model, path = lite_onnx
    assert not list(path.parent.glob("*.data")), "weights must be inside the .onnx file"
    assert path.stat().st_size > 4 * sum(p.numel() for p in model.parameters()) * 0.9
    assert _max_prob_diff(model, export.OnnxPredictor(path), _real_batch(64)) <= PROB_TOL


def test_onnx_instance_norm_exports_quietly_and_matches(tmp_path: Path) -> None:
    """An InstanceNorm FocusNet++ (the CPU-budget recipe) exports without the exporter's warning that
    it exports instance_norm "with train=True" (that is its evaluation too), and matches PyTorch."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install '.[onnx]')")
    import warnings

    torch.manual_seed(0)
    model = create_model("focusnetpp", preset="lite", norm="instance")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = export.export_model(model, tmp_path / "in.onnx", format="onnx", example_size=32)
    assert not [w for w in caught if "instance_norm" in str(w.message)], [str(w.message) for w in caught]
    x = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    assert _max_prob_diff(model, export.OnnxPredictor(path), x) <= PROB_TOL


def test_torchscript_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _randomise_batchnorm(create_model("focusnetpp", preset="lite"))
    path = export.export_model(model, tmp_path / "lite.pt", format="torchscript", example_size=32)
    loaded = torch.jit.load(str(path))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=1e-5, atol=1e-5)


def test_cli_export_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lite.pt"
    args = ["export", "focusnetpp", "--preset", "lite", "--format", "torchscript", "--size", "32", "--out", str(out)]
    assert main(args) == 0
    assert out.is_file()
    before = out.read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert str(out.name) in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main([*args, "--overwrite"]) == 0
    assert out.is_file()


def test_cli_export_unknown_model_exits_2(tmp_path: Path) -> None:
    assert main(["export", "nope", "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()


def test_check_scales_with_the_models_own_float32_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``tolerance`` the check measures PyTorch's own float32 error against a float64 copy and
    accepts up to NOISE_FACTOR times it, so a deep model with large activations exports; a wrong file
    (the output convolution's weights off by 5%) is still refused and nothing is written."""
    torch.manual_seed(0)
    model = _randomise_batchnorm(create_model("focusnetpp", preset="lite"))
    result = export.export(model, tmp_path / "lite.pt", format="torchscript", example_size=32, tolerance=0.0)
    assert 0.0 < result.float32_error < 1e-4  # float32 rounding of a small model: about 1e-7 to 1e-5
    # each float32 computation within 4x PyTorch's own error leaves half of NOISE_FACTOR; measured 1.5 to 2.4
    assert result.max_prob_diff <= export.NOISE_FACTOR / 2 * result.float32_error
    within_tolerance = export.export(model, tmp_path / "default.pt", format="torchscript", example_size=32)
    assert math.isnan(within_tolerance.float32_error)  # within the 1e-4 tolerance: no float64 pass

    def off_by_five_percent(module: nn.Module) -> nn.Module:
        module = copy.deepcopy(module)
        with torch.no_grad():
            [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1].weight.mul_(1.05)
        return module

    monkeypatch.setattr(export, "fold_batchnorm", off_by_five_percent)
    with pytest.raises(export.ExportCheckError, match="float32 error"):
        export.export(model, tmp_path / "wrong.pt", format="torchscript", example_size=32)
    assert not (tmp_path / "wrong.pt").exists()


def test_cli_export_takes_the_format_from_the_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --format, .pt is TorchScript (the reloaded file runs); a name that implies no format is refused
    with the names and the flag to use, and nothing is written."""
    out = tmp_path / "u.pt"
    assert main(["export", "unet[base_width=4]", "--size", "32", "--out", str(out)]) == 0
    assert "(torchscript, " in capsys.readouterr().out
    assert torch.jit.load(str(out))(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    assert main(["export", "unet[base_width=4]", "--out", str(tmp_path / "u.bin")]) == 2
    err = capsys.readouterr().err
    assert "u.bin: cannot tell the export format" in err and ".onnx" in err and "--format torchscript" in err
    assert not (tmp_path / "u.bin").exists()
    assert [export.format_from_path(f"m{s}") for s in (".ONNX", ".pth", ".ts")] == ["onnx", "torchscript", "torchscript"]
