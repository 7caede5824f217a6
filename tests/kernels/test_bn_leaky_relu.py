"""The native fused BatchNorm + LeakyReLU training kernel (focusnet.kernels) against PyTorch."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import focusnet.kernels as kernels
from focusnet.kernels import bn_leaky_relu, bn_leaky_relu_available
from tests.kernels.helpers import random_bn as _bn
from tests.kernels.helpers import random_instance_norm

needs_kernel = pytest.mark.skipif(
    not bn_leaky_relu_available(), reason=f"native kernel unavailable here: {kernels.build._ERROR}"
)
SLOPE = 0.3


def _count_calls(monkeypatch: pytest.MonkeyPatch, function: type[torch.autograd.Function]) -> list[int]:
    """A list that gets one entry per ``function.apply`` call (the call still runs)."""
    calls: list[int] = []
    real = function.apply
    monkeypatch.setattr(function, "apply", lambda *a: calls.append(1) or real(*a))
    return calls


def _run(bn: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor, fused: bool):
    x = x.detach().clone().requires_grad_(True)
    bn.zero_grad(set_to_none=True)
    y = bn_leaky_relu(x, bn, SLOPE) if fused else F.leaky_relu(bn(x), SLOPE)
    y.backward(grad.to(y.dtype))
    return y.detach().double(), x.grad.double(), bn.weight.grad.double(), bn.bias.grad.double()


@needs_kernel
@pytest.mark.parametrize("shape", [(2, 1, 3, 5), (3, 5, 7, 9), (4, 32, 16, 16), (2, 256, 8, 8), (1, 7, 64, 64)])
@pytest.mark.parametrize("offset", [0.0, 40.0])  # a large mean must not cancel the variance
def test_matches_pytorch_and_float64(shape: tuple[int, ...], offset: float) -> None:
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(*shape, generator=gen) * 2 + offset).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(*shape, generator=gen).contiguous(memory_format=torch.channels_last)
    bn_native, bn_fused, bn_64 = _bn(shape[1]), _bn(shape[1]), _bn(shape[1]).double()
    native = _run(bn_native, x, grad, fused=False)
    fused = _run(bn_fused, x, grad, fused=True)
    exact = _run(bn_64, x.double(), grad, fused=False)
    for name, f, n, e in zip(("y", "grad x", "grad weight", "grad bias"), fused, native, exact):
        scale = max(1.0, float(e.abs().max()))
        err_fused, err_native = float((f - e).abs().max()), float((n - e).abs().max())
        # as accurate as PyTorch's own float32 kernels (double sums: usually more accurate)
        assert err_fused <= 2 * err_native + 1e-5 * scale, (name, err_fused, err_native)
    # running statistics (unbiased variance) and the batch counter, as nn.BatchNorm2d
    assert torch.allclose(bn_fused.running_mean, bn_native.running_mean, atol=1e-5, rtol=1e-5)
    assert torch.allclose(bn_fused.running_var, bn_native.running_var, atol=1e-4, rtol=1e-5)
    assert int(bn_fused.num_batches_tracked) == int(bn_native.num_batches_tracked) == 1
    assert fused[0].shape == shape


@needs_kernel
def test_threads_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(8, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(x)
    results = []
    for threads in (1, 3):
        monkeypatch.setattr(torch, "get_num_threads", lambda t=threads: t)
        results.append(_run(_bn(16), x, grad, fused=True))
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)


@needs_kernel
def test_kernel_is_used_only_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_calls(monkeypatch, kernels.norm_act._BNLeakyReLU)
    cl = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    bn = _bn(4)
    bn_leaky_relu(cl, bn, SLOPE)
    assert calls == [1]
    bn_leaky_relu(cl.contiguous(), bn, SLOPE)  # NCHW
    bn_leaky_relu(cl.double(), _bn(4).double(), SLOPE)  # float64
    bn_leaky_relu(cl, bn.eval(), SLOPE)  # running statistics
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bn_leaky_relu(cl, bn.train(), SLOPE)
    assert calls == [1]


def test_disabled_by_environment_falls_back_to_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    assert kernels.build.native_library() is None and not bn_leaky_relu_available()
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    a, b = _bn(4), _bn(4)
    assert torch.allclose(bn_leaky_relu(x, a, SLOPE), F.leaky_relu(b(x), SLOPE))


def test_no_compiler_means_no_kernel(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(kernels.build, "_TRIED", False)
    monkeypatch.setattr(kernels.build, "_LIB", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert kernels.build.native_library() is None
    assert "could not build" in (kernels.build._ERROR or "")
    assert not any(tmp_path.rglob("*.so"))  # nothing half-written left behind


@needs_kernel
@pytest.mark.parametrize("shape", [(2, 1, 3, 5), (3, 5, 7, 9), (4, 32, 16, 16), (1, 7, 64, 64)])
@pytest.mark.parametrize("offset", [0.0, 40.0])
def test_instance_norm_matches_pytorch_and_float64(shape: tuple[int, ...], offset: float, monkeypatch) -> None:
    """The same kernel run image by image is InstanceNorm + LeakyReLU: values and all gradients."""
    calls = _count_calls(monkeypatch, kernels.norm_act._INLeakyReLU)
    gen = torch.Generator().manual_seed(2)
    x = (torch.randn(*shape, generator=gen) * 2 + offset).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(*shape, generator=gen).contiguous(memory_format=torch.channels_last)
    native = _run(random_instance_norm(shape[1]), x, grad, fused=False)
    fused = _run(random_instance_norm(shape[1]), x, grad, fused=True)
    exact = _run(random_instance_norm(shape[1]).double(), x.double(), grad, fused=False)
    assert calls == [1]
    for name, f, n, e in zip(("y", "grad x", "grad weight", "grad bias"), fused, native, exact):
        scale = max(1.0, float(e.abs().max()))
        err_fused, err_native = float((f - e).abs().max()), float((n - e).abs().max())
        assert err_fused <= 2 * err_native + 1e-5 * scale, (name, err_fused, err_native)


@needs_kernel
def test_instance_kernel_is_used_only_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_calls(monkeypatch, kernels.norm_act._INLeakyReLU)
    cl = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    norm = random_instance_norm(4)
    bn_leaky_relu(cl, norm, SLOPE)
    assert calls == [1]
    bn_leaky_relu(cl.contiguous(), norm, SLOPE)  # NCHW
    bn_leaky_relu(cl, torch.nn.InstanceNorm2d(4), SLOPE)  # no affine parameters
    bn_leaky_relu(cl, torch.nn.InstanceNorm2d(4, affine=True, track_running_stats=True), SLOPE)
    with torch.no_grad():  # inference: the kernel's forward alone, in the input's channels_last layout
        y = bn_leaky_relu(cl, norm, SLOPE)
        expected = F.leaky_relu(norm(cl), SLOPE)
    assert calls == [1]
    assert y.is_contiguous(memory_format=torch.channels_last)
    # the same statistics summed in another order: fp32 rounding of outputs of order 1
    assert torch.allclose(y, expected, rtol=0, atol=1e-5 * float(expected.abs().max()))


@needs_kernel
@pytest.mark.parametrize("images", [1, 3, 4])  # fewer images than threads, an odd count, an even one
@pytest.mark.parametrize("slope", [SLOPE, 1.0])  # slope 1: the plain InstanceNorm of normalize_keeping_layout
def test_instance_norm_inference_is_one_native_call_for_all_images(images: int, slope: float, monkeypatch) -> None:
    """Inference runs every image through the kernel in one call (one parallel region, not one
    operator per image: each is a wait of the OpenMP threads), with each image's own statistics."""
    calls: list[int] = []
    real = kernels.norm_act._in_lrelu_forward
    monkeypatch.setattr(kernels.norm_act, "_in_lrelu_forward", lambda *a: calls.append(1) or real(*a))
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(images, 16, 24, 20, generator=gen) * 3 + 20).contiguous(memory_format=torch.channels_last)
    norm = random_instance_norm(16)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            y = bn_leaky_relu(x, norm, slope) if slope != 1.0 else kernels.normalize_keeping_layout(norm, x)
    finally:
        torch.set_num_threads(old)
    assert calls == [1] and y.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        exact = F.leaky_relu(norm.double()(x.double()), slope)
    # float32 rounding of outputs of order 1 (the statistics are summed in double)
    assert float((y.double() - exact).abs().max()) <= 1e-5 * max(1.0, float(exact.abs().max()))
