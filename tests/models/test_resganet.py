"""The executions of ResGANet / FocusNet++ (focusnet.models.resganet: plain, fast, fused; the fast
one with and without the native tail kernel, with and without folded BatchNorm) compute the same
maths as the branch-by-branch reference: outputs, gradients and BatchNorm statistics, in train and
eval mode, from the same state_dict. One equivalence grid for the block, then the whole model."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import focusnet.kernels as kernels
from focusnet.models import create_model
from focusnet.models.focusnetpp import PRESETS
from focusnet.models.resganet import (
    ResGANet,
    ResGANetReference,
    fast_path,
    fast_path_enabled,
    ops,
    resganet_from_reference,
    set_fast_path,
    tail,
    use_fast_path,
    use_fused_inference,
)
from focusnet.models.resganet.execution import choose_strategy, fused_cpu_ops_available

TOL = 1e-5  # outputs and input gradients (per element)
# parameter gradients (reductions over batch x pixels, e.g. channels_last BatchNorm backward sums in
# another order than NCHW): relative to the gradient's scale, on top of the plain path's own error
PARAM_GRAD_TOL = 1e-4


def _randomise_bn(module: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.3)


def _run(module: torch.nn.Module, x: torch.Tensor, fast: bool, **kwargs):
    """Output, input gradient and parameter gradients (by name) of ``sum(out * weights)``."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    with fast_path(fast):
        out = module(x, **kwargs) if not kwargs else module.forward_fast(x, **kwargs)
    weights = torch.linspace(-1.0, 1.0, out.numel()).reshape(out.shape)
    (out * weights).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}
    return out.detach(), x.grad.detach(), grads


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> bool:
    """Max abs difference <= tol, scaled by the magnitude of ``b`` where that exceeds 1 (a float32
    sum of thousands of terms of size ~40 cannot be closer than ~1e-5 relative)."""
    return bool((a - b).abs().max() <= tol * max(1.0, float(b.abs().max())))


def _assert_grads_close(a: dict, b: dict, tol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert _close(a[name], b[name], tol), (name, (a[name] - b[name]).abs().max(), b[name].abs().max())


def _assert_param_grads_as_accurate(fast: dict, plain: dict, exact: dict) -> None:
    """Parameter gradients are sums over the batch and every pixel (in train mode partly cancelling
    through BatchNorm), so two float32 summation orders legitimately differ by more than 1e-5.
    Check instead against a float64 copy: the fast path's error is within a small factor of the
    plain path's own float32 error (or under PARAM_GRAD_TOL of the gradient's scale)."""
    assert fast.keys() == plain.keys() == exact.keys()
    overall = max(g.abs().max().item() for g in exact.values())
    for name, g64 in exact.items():
        err_f = (fast[name].double() - g64).abs().max().item()
        err_p = (plain[name].double() - g64).abs().max().item()
        size = g64.abs().max().item()
        # a conv bias followed by a train-mode BatchNorm has an exactly zero gradient: its float32
        # value is pure cancellation noise, measured against the gradients of the whole module
        scale = max(1.0, overall if size < 1e-6 * overall else size)
        assert err_f <= 4 * err_p + PARAM_GRAD_TOL * scale, (name, err_f, err_p, scale)


def test_fast_path_is_on_by_default_and_switchable() -> None:
    assert fast_path_enabled()
    x = torch.zeros(1)
    assert use_fast_path(x)
    with fast_path(False):
        assert not fast_path_enabled() and not use_fast_path(x)
    old = set_fast_path(False)
    assert old is True and not fast_path_enabled()
    set_fast_path(True)
    assert not use_fast_path(torch.zeros(1, device="meta"))  # FLOP counting takes the plain path


@pytest.mark.parametrize("shortcut", ["identity", "conv"])
@pytest.mark.parametrize("se", [True, False])
@pytest.mark.parametrize("cin, cout, width", [(32, 32, 32), (16, 48, 48), (48, 24, 48)])
@pytest.mark.parametrize("mode", ["train", "eval", "train-native-tail"])
def test_fast_block_matches_reference_and_plain(
    shortcut: str, se: bool, cin: int, cout: int, width: int, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With autograd: the fast execution against the reference and the plain layers. In
    ``train-native-tail`` the native tail kernel's size floor is lowered so that it runs inside the
    block (these blocks are far below the 65,536 elements it takes by default)."""
    calls = []
    if mode == "train-native-tail":
        if not kernels.bn_leaky_relu_available():
            pytest.skip(f"native kernels unavailable here: {kernels.build._ERROR}")
        monkeypatch.setattr(kernels.residual, "TAIL_MIN_ELEMENTS", 0)
        original = tail.residual_tail
        monkeypatch.setattr(tail, "residual_tail", lambda *a, **k: calls.append(1) or original(*a, **k))
    torch.manual_seed(0)
    ref = ResGANetReference(cin, cout, width=width, se=se, feature_shortcut=shortcut)
    _randomise_bn(ref)
    fast = resganet_from_reference(ref)
    plain = copy.deepcopy(fast)
    for m in (ref, fast, plain):
        m.train(mode != "eval")
    x = torch.randn(4, cin, 12, 10, generator=torch.Generator().manual_seed(1))
    exact = copy.deepcopy(plain).double()
    out_f, gx_f, g_f = _run(fast, x, True)
    out_p, gx_p, g_p = _run(plain, x, False)
    out_r, gx_r, _ = _run(ref, x, False)
    _, _, g_64 = _run(exact, x.double(), False)
    assert torch.allclose(out_f, out_r, atol=TOL), (out_f - out_r).abs().max()
    assert torch.allclose(out_f, out_p, atol=TOL), (out_f - out_p).abs().max()
    assert _close(gx_f, gx_r), (gx_f - gx_r).abs().max()
    assert _close(gx_f, gx_p), (gx_f - gx_p).abs().max()
    _assert_param_grads_as_accurate(g_f, g_p, g_64)
    # every buffer (BN running statistics, batch counters) is updated identically
    for (name, b_f), b_p in zip(fast.named_buffers(), plain.buffers()):
        assert torch.allclose(b_f.float(), b_p.float(), atol=1e-6), name
    assert calls == ([1] if mode == "train-native-tail" else [])  # the fast run, once
    assert sum(p.numel() for p in fast.parameters()) == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("project", [True, None])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fast_block_upsample_equals_interpolate_first(project: bool | None, mode: str) -> None:
    """``forward_fast(x, upsample=True)`` == ``block(interpolate(x, 2))`` (1x1 convs before upsampling)."""
    torch.manual_seed(0)
    cin = 24
    cout = 16 if project else 24
    block = ResGANet(cin, cout, width=16, project=project)
    _randomise_bn(block)
    plain = copy.deepcopy(block)
    block.train(mode == "train")
    plain.train(mode == "train")
    x = torch.randn(3, cin, 6, 8)
    out_f, gx_f, g_f = _run(block, x, True, upsample=True)

    class Up(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.inner(F.interpolate(t, scale_factor=2.0, mode="nearest"))

    out_p, gx_p, g_p = _run(Up(plain), x, False)
    _, _, g_64 = _run(Up(copy.deepcopy(plain)).double(), x.double(), False)
    assert out_f.shape == (3, cout, 12, 16)
    assert torch.allclose(out_f, out_p, atol=TOL), (out_f - out_p).abs().max()
    assert _close(gx_f, gx_p)
    strip = lambda g: {k.removeprefix("inner."): v for k, v in g.items()}  # noqa: E731
    _assert_param_grads_as_accurate(g_f, strip(g_p), strip(g_64))
    for b_f, b_p in zip(block.buffers(), plain.buffers()):
        assert torch.allclose(b_f.float(), b_p.float(), atol=1e-6)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_fast_model_eval_matches_plain(preset: str) -> None:
    torch.manual_seed(0)
    model = create_model("focusnetpp", preset=preset)
    _randomise_bn(model)
    model.eval()
    x = torch.randn(2, 3, 32, 48)
    out_f, gx_f, g_f = _run(model, x, True)
    out_p, gx_p, g_p = _run(model, x, False)
    _, gx_64, g_64 = _run(copy.deepcopy(model).double(), x.double(), False)
    assert out_f.is_contiguous() and out_f.shape == (2, 1, 32, 48)
    assert torch.allclose(out_f, out_p, atol=TOL), (out_f - out_p).abs().max()
    # the input gradient sums over every channel path: judge both float32 paths against float64
    # (on some CPUs the two summation orders differ by slightly more than TOL)
    err_f, err_p = ((g.double() - gx_64).abs().max().item() for g in (gx_f, gx_p))
    assert err_f <= 4 * err_p + TOL * max(1.0, gx_64.abs().max().item()), (err_f, err_p)
    _assert_param_grads_as_accurate(g_f, g_p, g_64)
    with torch.inference_mode():
        assert torch.allclose(model(x), out_p, atol=TOL)
        assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last)), out_p, atol=TOL)


@pytest.mark.parametrize(
    "preset, options",
    [("paper", {}), ("official", {}), ("lite", {"padding_mode": "reflect"}),
     ("lite", {"padding_mode": "replicate", "norm": "instance"})],
)
def test_fast_model_train_as_accurate_as_plain(preset: str, options: dict) -> None:
    """Train mode (batch statistics, dropout): compare both paths with a float64 copy. Tiny batches
    make train-mode BatchNorm ill-conditioned, so fp32 rounding of *either* path is amplified; the
    fast path must be as accurate as the plain one, and draw the same dropout mask (also with the
    border padded by reflection or replication, which the fast path pads before its convolutions)."""
    torch.manual_seed(0)
    model = create_model("focusnetpp", preset=preset, **options)
    model.train()
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(7)
    out64, gx64, g64 = _run(copy.deepcopy(model).double(), x.double(), False)
    errors = {}
    for fast in (False, True):
        torch.manual_seed(7)
        out, gx, g = _run(copy.deepcopy(model), x, fast)
        errors[fast] = (
            (out.double() - out64).abs().max().item(),
            max((g[n].double() - g64[n]).abs().max().item() for n in g64),
        )
    (out_p, grad_p), (out_f, grad_f) = errors[False], errors[True]
    assert out_f <= 3 * out_p + 1e-5, errors
    assert grad_f <= 3 * grad_p + 1e-5, errors


def test_fast_model_with_folded_batchnorm() -> None:
    from focusnet.engine.export import fold_batchnorm

    torch.manual_seed(0)
    model = create_model("focusnetpp", preset="lite")
    _randomise_bn(model)
    model.eval()
    folded = fold_batchnorm(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), fast_path(False):
        expected = model(x)
    with torch.no_grad():
        assert torch.allclose(folded(x), expected, atol=TOL)


def test_state_dict_unchanged_and_interchangeable() -> None:
    torch.manual_seed(0)
    a = create_model("focusnetpp")
    keys = {k: tuple(v.shape) for k, v in a.state_dict().items()}
    a.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = a(x)
    b = create_model("focusnetpp")
    assert {k: tuple(v.shape) for k, v in b.state_dict().items()} == keys
    b.load_state_dict(a.state_dict())
    b.eval()
    with torch.no_grad(), fast_path(False):
        assert torch.allclose(b(x), out, atol=TOL)


def test_trace_records_the_plain_graph() -> None:
    model = create_model("focusnetpp", preset="lite").eval()
    x = torch.randn(1, 3, 32, 32)
    traced = torch.jit.trace(model, x)
    graph = str(traced.inlined_graph)
    assert "aten::addmm" not in graph and "aten::_convolution" in graph
    with torch.no_grad():
        assert torch.allclose(traced(x), model(x), atol=TOL)


def test_hooks_are_honoured() -> None:
    """A hooked layer sends the model down the plain path, so the hook still fires."""
    model = create_model("focusnetpp", preset="lite").eval()
    seen = []
    handle = model.encoder[0][0].conv_in.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    handle.remove()
    assert seen == [torch.Size([1, 16, 32, 32])]


@pytest.mark.parametrize(
    "norm", [lambda c: torch.nn.InstanceNorm2d(c, affine=True), lambda c: torch.nn.GroupNorm(4, c)],
    ids=["instance", "group"],
)
def test_other_normalisations_run_as_modules(norm) -> None:
    """A network whose BatchNorms are another normalisation (``norm="instance"``, or swapped by a
    user): the fast path calls those layers as modules, as accurately as the plain path (against a
    float64 copy, as for BatchNorm in training), and inference is never the fused path, which folds
    every normalisation as a BatchNorm."""
    torch.manual_seed(0)
    model = create_model("focusnetpp", preset="lite", bottleneck_dropout=0.0)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is torch.nn.BatchNorm2d:
                setattr(parent, name, norm(child.num_features))
    x = torch.randn(2, 3, 32, 32)
    for train in (True, False):
        model.train(train)
        assert choose_strategy(model, x) == "fast"
        with torch.no_grad():
            assert choose_strategy(model, x) == "fast"
        out64, _, g64 = _run(copy.deepcopy(model).double(), x.double(), False)
        errors, outputs = {}, {}
        for fast in (False, True):
            outputs[fast], _, g = _run(model, x, fast)
            errors[fast] = (
                (outputs[fast].double() - out64).abs().max().item(),
                max((g[n].double() - g64[n]).abs().max().item() for n in g64),
            )
        (out_p, grad_p), (out_f, grad_f) = errors[False], errors[True]
        # parameter gradients sum over the batch and every pixel: bounded as in _assert_param_grads_as_accurate
        overall = max(g.abs().max().item() for g in g64.values())
        assert out_f <= 3 * out_p + TOL and grad_f <= 4 * grad_p + PARAM_GRAD_TOL * max(1.0, overall), (train, errors)
        plain = outputs[False]
        with torch.inference_mode():
            assert torch.allclose(model(x), plain, atol=TOL * max(1.0, float(out64.abs().max())))


# ------------------------------------------------------------ fused fp32 CPU inference (oneDNN)
needs_fused = pytest.mark.skipif(
    not fused_cpu_ops_available(), reason="this PyTorch build has no oneDNN fused pointwise operators"
)


@needs_fused
def test_fused_inference_applies_only_to_fp32_cpu_inference() -> None:
    x = torch.zeros(1)
    assert not use_fused_inference(x)  # autograd on
    with torch.no_grad():
        assert use_fused_inference(x)
        assert not use_fused_inference(x.double())
        with fast_path(False):
            assert not use_fused_inference(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not use_fused_inference(x)


@pytest.mark.parametrize("strategy", ["fast", "fused"])
@pytest.mark.parametrize("shortcut", ["identity", "conv"])
@pytest.mark.parametrize("se", [True, False])
@pytest.mark.parametrize("cin, cout, width", [(32, 32, 32), (16, 48, 48), (48, 24, 48)])
@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_inference_executions_match_plain(
    strategy: str, shortcut: str, se: bool, cin: int, cout: int, width: int, upsample: bool, padding_mode: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eval block under no_grad, each inference execution against the plain layers:

    * ``fast``: BatchNorm folded into the convolutions, no oneDNN fusion (what CUDA and bf16
      inference run), forced here on the CPU;
    * ``fused``: BN0 folded into conv_in, the gate composed into the second trunk convolution,
      split attention / feature trunks, oneDNN's fused kernels (fp32 CPU inference)."""
    if strategy == "fused" and not fused_cpu_ops_available():
        pytest.skip("this PyTorch build has no oneDNN fused pointwise operators")
    torch.manual_seed(0)
    block = ResGANet(cin, cout, width=width, se=se, feature_shortcut=shortcut, padding_mode=padding_mode)
    _randomise_bn(block)
    block.eval()
    calls = []
    name = "_forward_fused" if strategy == "fused" else "_forward_fast"
    original = getattr(ResGANet, name)
    monkeypatch.setattr(ResGANet, name, lambda self, *a: calls.append(1) or original(self, *a))
    x = torch.randn(3, cin, 6, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert choose_strategy(block, x) == ("fused" if fused_cpu_ops_available() else "fast")
        out = block.run(x, strategy, upsample=upsample)
        plain = block.run(x, "plain", upsample=upsample)
        with fast_path(False):
            assert torch.equal(block(F.interpolate(x, scale_factor=2.0, mode="nearest") if upsample else x), plain)
    assert calls == [1]
    assert out.shape == plain.shape
    assert _close(out, plain), (out - plain).abs().max()


@needs_fused
def test_fused_inference_is_skipped_for_train_mode_batchnorm(monkeypatch: pytest.MonkeyPatch) -> None:
    block = ResGANet(16, 16, width=16)
    calls = []
    monkeypatch.setattr(ResGANet, "_forward_fused", lambda self, *a: calls.append(1))
    with torch.no_grad():
        block.train()(torch.randn(2, 16, 4, 4))
    assert calls == []


@pytest.mark.parametrize(
    "groups, padding, padding_mode", [(4, 1, "zeros"), (1, 1, "zeros"), (2, 0, "zeros"), (4, 1, "reflect"), (4, 1, "replicate")]
)
def test_conv_train_matches_conv_with_its_gradients(groups: int, padding: int, padding_mode: str) -> None:
    """``conv_train`` (bias gradient as a plain sum) gives the convolution's output and all three
    gradients, also for a border padded by reflection or replication, and is the op autograd
    actually records in fp32 CPU training."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 3, padding=padding, groups=groups, padding_mode=padding_mode)
    x = torch.randn(2, 8, 9, 7).contiguous(memory_format=torch.channels_last)
    gy = None
    results = []
    for fn in (ops.conv_train, lambda t, c: c(t)):
        conv.zero_grad(set_to_none=True)
        xi = x.detach().clone().requires_grad_(True)
        out = fn(xi, conv)
        if gy is None:
            gy = torch.randn_like(out)
        out.backward(gy)
        results.append((out.detach(), xi.grad, conv.weight.grad.clone(), conv.bias.grad.clone(), out.grad_fn))
    fast, plain = results
    for a, b in zip(fast[:4], plain[:4]):
        assert _close(a, b), (a - b).abs().max()
    assert "ConvBiasSum" in type(fast[4]).__name__
    assert "ConvBiasSum" not in type(plain[4]).__name__


def test_conv_train_falls_back_without_autograd_or_bias() -> None:
    conv = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False)
    x = torch.randn(1, 4, 5, 5, requires_grad=True)
    assert "ConvBiasSum" not in type(ops.conv_train(x, conv).grad_fn).__name__
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    with torch.no_grad():
        assert torch.equal(ops.conv_train(x, conv), conv(x))


@pytest.mark.parametrize("preset", ["paper", "official"])
def test_cudnn_1x1_branch_computes_the_same(monkeypatch: pytest.MonkeyPatch, preset: str) -> None:
    """On CUDA the fast path's 1x1 convolutions run as convolutions, not matrix products (issue 19).
    That branch, forced on the CPU: outputs, input and parameter gradients as the matrix products."""
    torch.manual_seed(0)
    model = create_model("focusnetpp", preset=preset).eval()
    _randomise_bn(model)
    x = torch.randn(2, 3, 32, 32)
    out_mm, gx_mm, g_mm = _run(model, x, True)
    calls = []
    monkeypatch.setattr(ops, "_cudnn_1x1", lambda t: calls.append(t.shape) or True)
    out_cv, gx_cv, g_cv = _run(model, x, True)
    assert len(calls) >= 5 * 4  # conv_in, gate, expand, conv_out, shortcut... of every block
    assert _close(out_cv, out_mm) and _close(gx_cv, gx_mm)
    _assert_grads_close(g_cv, g_mm, PARAM_GRAD_TOL)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("project", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_instance_norm_fast_block_keeps_channels_last(dtype: torch.dtype, project: bool, train: bool) -> None:
    """Where the per-image kernel does not apply (float64; bf16 autocast; inference), the fast
    execution runs InstanceNorm as a module (training; it returns NCHW memory) or as BatchNorm on each
    image (inference): either way the block hands on ``channels_last`` (else every later convolution
    runs its NCHW kernels), with the plain execution's values (float64: to rounding, ~1e-15 of
    outputs of order 1)."""
    torch.manual_seed(0)
    block = ResGANet(8, 16 if project else 8, width=16, norm="instance").train(train)
    x = torch.randn(2, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    if dtype == torch.float64:
        block, x = block.double(), x.double()
    with torch.set_grad_enabled(train), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        fast = block.run(x, "fast")
        plain = block.forward_plain(x)
    assert fast.is_contiguous(memory_format=torch.channels_last) and not fast.is_contiguous()
    if dtype == torch.float64:
        assert torch.allclose(fast, plain, rtol=0, atol=1e-12 * float(plain.detach().abs().max()))


# ------------------------------------------------------------ what squeeze-and-excitation pools
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_squeeze_before_norm_fast_matches_plain(norm: str) -> None:
    """``se_squeeze="before_norm"``: the fast execution (native tail kernel in training) computes what
    the plain one does, in train and eval mode, as accurately against a float64 copy."""
    torch.manual_seed(0)
    model = create_model("focusnetpp", preset="lite", bottleneck_dropout=0.0, norm=norm, se_squeeze="before_norm")
    _randomise_bn(model)
    x = torch.randn(2, 3, 32, 32)
    for train in (True, False):
        model.train(train)
        out64, _, g64 = _run(copy.deepcopy(model).double(), x.double(), False)
        errors = {}
        for fast in (False, True):
            out, _, g = _run(model, x, fast)
            errors[fast] = (
                (out.double() - out64).abs().max().item(),
                max((g[n].double() - g64[n]).abs().max().item() for n in g64),
            )
        (out_p, grad_p), (out_f, grad_f) = errors[False], errors[True]
        overall = max(g.abs().max().item() for g in g64.values())
        assert out_f <= 3 * out_p + TOL * max(1.0, float(out64.abs().max())), (train, errors)
        assert grad_f <= 4 * grad_p + PARAM_GRAD_TOL * max(1.0, overall), (train, errors)


def _se_gates(block: ResGANet, x: torch.Tensor) -> torch.Tensor:
    """The (N, C) gates the block's squeeze-and-excitation multiplies by (plain path, a forward hook)."""
    gates = []
    se = block.se
    handle = se.register_forward_hook(lambda m, args, out: gates.append(out / args[0]))
    with torch.no_grad(), fast_path(False):
        block(x)
    handle.remove()
    return gates[0].mean(dim=(2, 3))


def test_instance_norm_squeeze_after_norm_gives_every_image_the_same_gate() -> None:
    """Why ``before_norm`` exists: after an InstanceNorm every image's channel means equal the norm's
    bias, so the paper's squeeze (after the norm) gives two different images the same gates; before
    the norm they differ. With BatchNorm (train mode) the paper's squeeze already differs per image."""
    torch.manual_seed(0)
    x = torch.rand(2, 8, 16, 16) + torch.tensor([0.0, 2.0])[:, None, None, None]  # two different images
    for norm, squeeze, same in (("instance", "after_norm", True), ("instance", "before_norm", False),
                                ("batch", "after_norm", False)):
        block = ResGANet(8, 16, width=16, norm=norm, se_squeeze=squeeze).train()
        with torch.no_grad():
            block.bn_out.bias.normal_()  # a bias that is not zero: the gate is not trivially 0.5
        gates = _se_gates(block, x)
        spread = (gates[0] - gates[1]).abs().max().item()
        assert (spread < 1e-5) == same, (norm, squeeze, spread)


def test_squeeze_before_norm_keeps_bn_out_unfolded() -> None:
    """Export's BatchNorm folding and the fused inference leave ``bn_out`` alone when SE pools its
    input (folding would change what SE sees); outputs stay the plain path's."""
    from focusnet.engine.export import fold_batchnorm

    torch.manual_seed(0)
    model = create_model("focusnetpp", preset="lite", se_squeeze="before_norm")
    _randomise_bn(model)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), fast_path(False):
        expected = model(x)
    folded = fold_batchnorm(copy.deepcopy(model))
    assert all(isinstance(b.bn_out, torch.nn.BatchNorm2d) for b in folded.modules() if isinstance(b, ResGANet))
    with torch.no_grad():
        assert _close(model(x), expected)  # fast / fused execution
        assert _close(folded(x), expected)
    with pytest.raises(ValueError, match="se_squeeze"):
        ResGANet(8, 8, width=8, se_squeeze="middle")  # type: ignore[arg-type]
