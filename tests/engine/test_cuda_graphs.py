"""CUDA graphs (focusnet.engine.cuda_graphs): the rule that decides where they run (always tested),
and graphed forward / backward / training equal to the eager model (on a CUDA device only)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from focusnet.engine.cuda_graphs import GraphedModel, graph_mode_applies
from focusnet.errors import FocusNetError
from focusnet.models import create_model

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="CUDA graphs need a CUDA device; this machine has none")


# --------------------------------------------------------------------------------- the rule (CPU)
@pytest.mark.parametrize(
    "setting, device, precision, world, expected",
    [
        ("auto", "cuda", "32-true", 1, True),
        ("auto", "cuda:0", "bf16-mixed", 1, True),
        ("auto", "gpu", "32-true", 1, True),
        ("auto", "cpu", "32-true", 1, False),
        ("on", "cpu", "32-true", 1, False),
        ("off", "cuda", "32-true", 1, False),
        ("auto", "cuda", "16-mixed", 1, False),
        ("auto", "cuda", "32-true", 2, False),
        ("on", "cuda", "32-true", 2, True),
        ("auto", "cuda", "fp32", 1, True),
        ("auto", "cuda", "bf16", 1, True),
    ],
)
def test_graph_mode_rule(setting: str, device: str, precision: str, world: int, expected: bool) -> None:
    applies, reason = graph_mode_applies(setting, device, precision, world)
    assert applies is expected
    assert isinstance(reason, str) and reason


def test_graph_mode_rejects_unknown_setting() -> None:
    with pytest.raises(FocusNetError, match="auto, on, off"):
        graph_mode_applies("yes", "cuda")


def test_cpu_runs_eagerly_and_state_dict_is_the_models() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 1))
    graphed = GraphedModel(model)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(graphed(x), model(x))
    assert graphed.stats == {"captured": 0, "replayed": 0, "eager": 1}
    assert set(graphed.state_dict()) == {f"model.{k}" for k in model.state_dict()}


def test_module_keeps_its_state_dict_keys() -> None:
    """The training module holds the graphed wrapper outside its submodules: checkpoints unchanged."""
    from focusnet.engine.config import TrainConfig
    from focusnet.engine.module import SegmentationModule

    module = SegmentationModule.from_config(nn.Conv2d(3, 1, 3, padding=1), TrainConfig(size=32))
    assert sorted(module.state_dict()) == ["model.bias", "model.weight"]
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(module._run(x), module.model(x))  # not set up (no fit): the model itself


# ------------------------------------------------------------------------------- CUDA equivalence
def _models(name: str, **kwargs):
    """Two copies of one model on the GPU, without dropout (the graphs draw other masks than eager)."""
    torch.manual_seed(0)
    eager = create_model(name, **kwargs).cuda()
    for m in eager.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return eager, copy.deepcopy(eager)


def _close(a: torch.Tensor, b: torch.Tensor, rel: float) -> None:
    a, b = a.detach(), b.detach()
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-12)
    assert float((a - b).abs().max()) <= rel * scale, (float((a - b).abs().max()), scale)


@needs_cuda
@pytest.mark.parametrize("name, kwargs", [("focusnetpp", {"preset": "lite"}), ("unet", {})])
def test_graphed_training_step_equals_eager(name: str, kwargs: dict) -> None:
    """Outputs, parameter gradients and BatchNorm statistics after two steps equal the eager model's
    (fp32; the same kernels run, so differences are atomics-order rounding: 1e-4 of the scale)."""
    eager, other = _models(name, **kwargs)
    graphed = GraphedModel(other, warmup=2)
    eager.train(), graphed.train()
    torch.manual_seed(1)
    batches = [torch.rand(2, 3, 64, 64, device="cuda") for _ in range(2)]
    for x in batches:
        out_e, out_g = eager(x), graphed(x)
        _close(out_e, out_g, 1e-4)
        (out_e.square().mean()).backward()
        (out_g.square().mean()).backward()
        for p, q in zip(eager.parameters(), other.parameters()):
            if p.grad is not None:
                _close(p.grad, q.grad, 1e-3)
    assert graphed.stats["captured"] == 1 and graphed.stats["replayed"] == 2
    for b_e, b_g in zip(eager.buffers(), other.buffers()):  # warm-up left no trace in the statistics
        _close(b_e.float(), b_g.float(), 1e-4)


@needs_cuda
def test_graphed_inference_and_new_shapes() -> None:
    eager, other = _models("focusnetpp", preset="lite")
    eager.eval(), other.eval()
    graphed = GraphedModel(other, max_shapes=1, warmup=1)
    with torch.no_grad():
        for shape in [(1, 3, 64, 64), (1, 3, 64, 64), (2, 3, 32, 32)]:
            x = torch.rand(*shape, device="cuda")
            _close(eager(x), graphed(x), 1e-4)
    assert graphed.stats == {"captured": 1, "replayed": 2, "eager": 1}  # the second shape is over max_shapes
    with torch.no_grad():
        first = graphed(torch.rand(1, 3, 64, 64, device="cuda"))
        second = graphed(torch.rand(1, 3, 64, 64, device="cuda"))
    assert not torch.equal(first, second)  # each call returns its own tensor, not the static buffer
    with torch.inference_mode():  # inference mode is a key of its own (its tensors are special)
        _close(eager(x), graphed(x), 1e-4)


@needs_cuda
def test_graphed_dropout_draws_new_masks() -> None:
    torch.manual_seed(0)
    graphed = GraphedModel(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Dropout(0.5)).cuda(), warmup=1)
    x = torch.rand(2, 3, 16, 16, device="cuda")
    a, b = graphed(x), graphed(x)
    assert graphed.stats["replayed"] == 2
    assert not torch.equal(a, b)


@needs_cuda
def test_graphed_bf16_autocast_matches_eager() -> None:
    eager, other = _models("focusnetpp", preset="lite")
    graphed = GraphedModel(other, warmup=1)
    x = torch.rand(2, 3, 64, 64, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out_e, out_g = eager(x), graphed(x)
    assert out_g.dtype == out_e.dtype
    _close(out_e.float(), out_g.float(), 2e-2)  # bf16 keeps 8 bits of mantissa: 2**-8 per op, a few ops deep


@needs_cuda
@pytest.mark.parametrize("preset", ["paper", "official"])
def test_cuda_fast_path_equals_plain_path(preset: str) -> None:
    """On CUDA the fast path (channels_last, cuDNN 1x1 convolutions, graphed) computes the plain
    path's function: outputs and gradients within 1e-4 of the scale in full fp32 (TF32 off: with it,
    both paths round products to 10 mantissa bits, 1e-3, in different places)."""
    from focusnet.models.resganet import fast_path

    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        plain, other = _models("focusnetpp", preset=preset)
        graphed = GraphedModel(other, warmup=1)
        x = torch.rand(2, 3, 64, 64, device="cuda")
        with fast_path(False):
            out_p = plain(x)
        out_f = graphed(x)
        assert graphed.stats["replayed"] == 1
        _close(out_p, out_f, 1e-4)
        out_p.square().mean().backward()
        out_f.square().mean().backward()
        for p, q in zip(plain.parameters(), other.parameters()):
            _close(p.grad, q.grad, 1e-3)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
