"""The native residual-tail kernel, leaky_relu(se(norm(y)) + skip), against a float64 PyTorch reference."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import focusnet.kernels as kernels
from focusnet.kernels import bn_leaky_relu_available, residual_tail, residual_tail_applies
from focusnet.models.layers import SqueezeExcite
from focusnet.models.resganet import ResGANet, block_tail, tail
from tests.kernels.helpers import random_bn as _bn
from tests.kernels.helpers import random_instance_norm

needs_kernel = pytest.mark.skipif(
    not bn_leaky_relu_available(), reason=f"native kernel unavailable here: {kernels.build._ERROR}"
)
SLOPE = 0.3
CL = torch.channels_last


@pytest.fixture(autouse=True)
def _any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel skips small tensors (TAIL_MIN_ELEMENTS); these tests use small ones on purpose."""
    monkeypatch.setattr(kernels.residual, "TAIL_MIN_ELEMENTS", 0)


def _reference(y, skip, bn, se, squeeze_before_norm: bool = False):
    """float64 autograd reference: outputs and gradients of sum(out * grad)."""
    bn64 = copy.deepcopy(bn).double()
    y64 = y.detach().double().requires_grad_(True)
    s64 = skip.detach().double().requires_grad_(True)
    w = [t.detach().double().requires_grad_(True) for t in se] if se is not None else None
    z = bn64(y64)
    if w is not None:
        pooled = (y64 if squeeze_before_norm else z).mean(dim=(2, 3))
        z = z * torch.sigmoid(F.relu(pooled @ w[0].t()) @ w[1].t())[:, :, None, None]
    out = F.leaky_relu(z + s64, SLOPE)
    return out, y64, s64, bn64, w


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b).abs().max() / max(1.0, float(b.abs().max())))


@needs_kernel
@pytest.mark.parametrize("shape", [(2, 8, 5, 7), (3, 32, 24, 24), (1, 4, 64, 33)])
@pytest.mark.parametrize("with_se", [True, False])
@pytest.mark.parametrize("offset", [0.0, 30.0])  # a large mean must not cancel the variance or gradients
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_matches_float64_reference(shape, with_se: bool, offset: float, threads: int, norm: str) -> None:
    """Values and every gradient; a BatchNorm's running statistics, an InstanceNorm's per-image statistics."""
    gen = torch.Generator().manual_seed(1)
    n, c, h, w = shape
    y = (torch.randn(shape, generator=gen) * 2 + offset).contiguous(memory_format=CL)
    skip = torch.randn(shape, generator=gen).contiguous(memory_format=CL)
    hidden = max(1, c // 4)
    se = (torch.randn(hidden, c, generator=gen) * 0.3, torch.randn(c, hidden, generator=gen) * 0.3) if with_se else None
    bn = _bn(c) if norm == "batch" else random_instance_norm(c)
    if norm == "instance":  # each image its own mean, far apart: the per-image statistics must be used
        y = (y + torch.arange(n, dtype=y.dtype)[:, None, None, None] * 3).contiguous(memory_format=CL)
    out64, y64, s64, bn64, w64 = _reference(y, skip, bn, se)
    grad = torch.randn(shape, generator=gen, dtype=torch.float64)
    out64.backward(grad)

    yk = y.clone().requires_grad_(True)
    sk = skip.clone().requires_grad_(True)
    sek = tuple(t.clone().requires_grad_(True) for t in se) if se is not None else None
    assert residual_tail_applies(yk, sk, bn, sek)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = residual_tail(yk, sk, bn, SLOPE, sek)
        out.backward(grad.float().contiguous(memory_format=CL))
    finally:
        torch.set_num_threads(previous)
    assert out.is_contiguous(memory_format=CL)
    assert _rel(out, out64) < 1e-5
    assert _rel(yk.grad, y64.grad) < 1e-5
    assert _rel(sk.grad, s64.grad) < 1e-5
    assert _rel(bn.weight.grad, bn64.weight.grad) < 1e-5
    assert _rel(bn.bias.grad, bn64.bias.grad) < 1e-5
    if se is not None:
        for got, want in zip(sek, w64):
            assert _rel(got.grad, want.grad) < 1e-5
    if norm == "batch":
        assert _rel(bn.running_mean, bn64.running_mean) < 1e-6
        assert _rel(bn.running_var, bn64.running_var) < 1e-6
        assert int(bn.num_batches_tracked) == int(bn64.num_batches_tracked) == 1


def test_falls_back_where_the_kernel_does_not_apply() -> None:
    """Eval-mode BatchNorm or NCHW memory: the block's tail takes PyTorch's operators, same maths;
    the kernel entry point itself refuses such arguments."""
    gen = torch.Generator().manual_seed(2)
    y = torch.randn(2, 4, 6, 6, generator=gen)
    skip = torch.randn(2, 4, 6, 6, generator=gen)
    se = (torch.randn(1, 4, generator=gen), torch.randn(4, 1, generator=gen))
    for bn, yy, ss in [
        (_bn(4).eval(), y.contiguous(memory_format=CL), skip.contiguous(memory_format=CL)),
        (_bn(4), y, skip),  # NCHW
    ]:
        assert not residual_tail_applies(yy, ss, bn, se)
        out64 = _reference(yy, ss, _bn(4).train(bn.training), se)[0]  # a fresh copy: same statistics
        module = SqueezeExcite(4, ratio=4)
        with torch.no_grad():
            module.reduce.weight.copy_(se[0])
            module.expand.weight.copy_(se[1])
        assert _rel(block_tail(yy, ss, bn, module, SLOPE), out64) < 1e-5
        with pytest.raises(ValueError, match="block_tail"):
            residual_tail(yy, ss, bn, SLOPE, se)


@needs_kernel
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_resganet_training_uses_the_kernel(monkeypatch: pytest.MonkeyPatch, norm: str) -> None:
    """A training-mode block on the fast path ends in the kernel (once per block), with either
    normalisation; in evaluation BatchNorm takes the folded oneDNN path and InstanceNorm (its own
    statistics, as in training) the kernel again."""
    calls = []
    original = tail.residual_tail

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tail, "residual_tail", counting)
    block = ResGANet(8, 16, width=16, norm=norm).train()
    block(torch.randn(2, 8, 6, 6)).sum().backward()
    assert calls == [1]
    with torch.no_grad():
        block.eval()(torch.randn(2, 8, 6, 6))
    assert calls == ([1] if norm == "batch" else [1, 1])


def test_small_tensors_take_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels.residual, "TAIL_MIN_ELEMENTS", 1 << 16)
    y = torch.randn(2, 8, 16, 16).contiguous(memory_format=CL)
    assert not residual_tail_applies(y, y.clone(), _bn(8))
    big = torch.randn(2, 8, 64, 64).contiguous(memory_format=CL)
    assert residual_tail_applies(big, big.clone(), _bn(8)) == bn_leaky_relu_available()


@needs_kernel
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_squeeze_before_norm_matches_float64_reference(norm: str) -> None:
    """SE pooling the tail's input (``squeeze_before_norm``, far from zero so that the pooled means
    are large): values and every gradient, on two threads."""
    gen = torch.Generator().manual_seed(3)
    shape = (3, 8, 16, 16)
    y = (torch.randn(shape, generator=gen) * 2 + 30.0 + torch.arange(3.0)[:, None, None, None]).contiguous(memory_format=CL)
    skip = torch.randn(shape, generator=gen).contiguous(memory_format=CL)
    se = (torch.randn(2, 8, generator=gen) * 0.03, torch.randn(8, 2, generator=gen) * 0.3)
    bn = _bn(8) if norm == "batch" else random_instance_norm(8)
    out64, y64, s64, bn64, w64 = _reference(y, skip, bn, se, squeeze_before_norm=True)
    grad = torch.randn(shape, generator=gen, dtype=torch.float64)
    out64.backward(grad)
    yk, sk = y.clone().requires_grad_(True), skip.clone().requires_grad_(True)
    sek = tuple(t.clone().requires_grad_(True) for t in se)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = residual_tail(yk, sk, bn, SLOPE, sek, squeeze_before_norm=True)
        out.backward(grad.float().contiguous(memory_format=CL))
    finally:
        torch.set_num_threads(previous)
    for got, want in ((out, out64), (yk.grad, y64.grad), (sk.grad, s64.grad), (bn.weight.grad, bn64.weight.grad),
                      (bn.bias.grad, bn64.bias.grad), *zip((t.grad for t in sek), (t.grad for t in w64))):
        assert _rel(got.detach(), want.detach()) < 1e-5
    # the same through the block tail's PyTorch operators (the fallback), against the same reference
    yt = y.clone().requires_grad_(True)
    se_module = SqueezeExcite(8, ratio=4)
    with torch.no_grad():
        se_module.reduce.weight.copy_(se[0])
        se_module.expand.weight.copy_(se[1])
    bn_t = copy.deepcopy(bn)  # training mode: the batch's (or each image's) statistics
    out_t = tail.tail_torch(yt, skip, bn_t, se_module, SLOPE, squeeze_before_norm=True)
    assert _rel(out_t.detach(), out64.detach()) < 1e-5
