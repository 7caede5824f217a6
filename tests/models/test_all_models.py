"""One contract test for every registered model and preset (smp-style).

Covers each ``(name, preset)`` from the registry; a new model file is picked up automatically.
Every model is built once (module-scoped fixture, default widths, seed 0) and checked for:

1. train mode, batch 2, at 64x64 and 64x96: output (B, 1, H, W), finite output, backward runs and
   every parameter that receives a gradient gets a finite one;
2. eval mode, 1x3x64x64: two forwards are identical;
3. a 60x60 input raises FocusNetError saying "divisible";
4. export, eval mode, 64x64 only: ``torch.jit.trace`` matches eager; ``torch.onnx.export``
   (TorchScript exporter, ``dynamo=False``, opset 17) writes a valid model, and onnxruntime, when
   installed, matches eager to 1e-4. The export tests skip when ``onnx`` is not installed.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from focusnet.errors import FocusNetError
from focusnet.models import create_model, list_models, list_presets

CASES = [(name, preset) for name in list_models() for preset in (list_presets(name) or (None,))]
IDS = [name if preset is None else f"{name}-{preset}" for name, preset in CASES]
HAS_ONNX = importlib.util.find_spec("onnx") is not None
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@dataclass
class Built:
    """A model under test plus the eval input and eager output shared by the eval/export tests."""

    name: str
    model: nn.Module
    x: torch.Tensor = field(
        default_factory=lambda: torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    )
    _eager: torch.Tensor | None = None

    def eager(self) -> torch.Tensor:
        """Eval-mode output for ``x`` (computed once)."""
        if self._eager is None:
            self.model.eval()
            with torch.no_grad():
                self._eager = self.model(self.x)
        return self._eager


@pytest.fixture(scope="module", autouse=True)
def _one_intra_op_thread():
    """Run this module single-threaded (restored afterwards).

    At 64x64 intra-op parallelism gains little, and on a busy 2-core machine OpenMP spin-waiting
    made this module burn ~7x the CPU time of a single-threaded run (about 200 s against 30 s).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def built(request: pytest.FixtureRequest) -> Built:
    name, preset = request.param
    torch.manual_seed(0)
    model = create_model(name) if preset is None else create_model(name, preset=preset)
    return Built(name=IDS[CASES.index(request.param)], model=model)


def test_registry_lists_the_unet_family() -> None:
    assert {"unet", "attention_unet", "wide_unet", "unetpp"} <= set(list_models())


# ------------------------------------------------------------------------------- train mode
@pytest.mark.parametrize("hw", [(64, 64), (64, 96)], ids=["64x64", "64x96"])
def test_train_forward_backward(built: Built, hw: tuple[int, int]) -> None:
    model = built.model.train()
    model.zero_grad(set_to_none=True)
    x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(2))
    out = model(x)
    assert isinstance(out, torch.Tensor), f"{built.name}: forward must return one logits tensor"
    assert out.shape == (2, 1, *hw)
    assert torch.isfinite(out).all()
    out.float().mean().backward()
    got = [(n, p.grad) for n, p in model.named_parameters() if p.requires_grad and p.grad is not None]
    assert got, f"{built.name}: no parameter received a gradient"
    bad = [n for n, g in got if not torch.isfinite(g).all()]
    assert not bad, f"{built.name}: non-finite gradients in {bad[:5]}"
    model.zero_grad(set_to_none=True)
    built._eager = None  # BN running statistics changed: recompute the eval reference


# -------------------------------------------------------------------------------- eval mode
def test_eval_deterministic(built: Built) -> None:
    first = built.eager()
    with torch.no_grad():
        second = built.model.eval()(built.x)
    assert first.shape == (1, 1, 64, 64)
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)


def test_bad_input_size_raises(built: Built) -> None:
    with torch.no_grad(), pytest.raises(FocusNetError, match="divisible"):
        built.model.eval()(torch.zeros(1, 3, 60, 60))


# ---------------------------------------------------------------- export (eval mode, 64x64 only)
def test_export_jit_trace_matches_eager(built: Built) -> None:
    expected = built.eager()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation and tracer notes
        traced = torch.jit.trace(built.model.eval(), built.x, check_trace=False)
        got = traced(built.x)
    torch.testing.assert_close(got, expected)


@pytest.mark.skipif(not HAS_ONNX, reason="onnx is not installed")
def test_export_onnx(built: Built, tmp_path: Path) -> None:
    import onnx

    expected = built.eager()
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            built.model.eval(), (built.x,), str(path), dynamo=False, opset_version=17,
            input_names=["image"], output_names=["logits"],
        )
    onnx.checker.check_model(onnx.load(str(path)))
    if not HAS_ORT:
        return
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": built.x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), expected, atol=1e-4, rtol=1e-4)
