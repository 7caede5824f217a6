"""Shared building blocks: the ResGANet block of FocusNet++, squeeze-and-excitation, conv helpers.

The ResGANet block (Kaul et al., ISBI 2021, §2.1; implementation spec §1.2) is written twice:

* :class:`ResGANet` is the fast version used by the models. The two attention groups and the two
  feature groups run as *grouped* convolutions: one ``groups=4`` trunk for the four
  BN-LeakyReLU-Conv3x3 stacks, one ``groups=2`` 1x1 gate, one ``groups=2`` expansion. That is a
  handful of kernels per block instead of four Python branches of tiny convolutions.
* :class:`ResGANetReference` follows the paper's description literally, branch by branch. It is
  the readable specification; :func:`resganet_from_reference` copies its weights into a fast
  block, and the tests check both give the same output.

The only difference between them is the *order* of the channels produced by the input 1x1
convolution: the reference keeps the paper's ``[A0, F1, A2, F3]`` order (attention groups gate the
group to their right), the fast block stores ``[A0, A2, F1, F3]`` so that both attention groups
and both feature groups are contiguous. That is a relabelling of weights, not a change of maths.

**Fast path** (issue 7; on by default; :func:`set_fast_path`, the :func:`fast_path` context
manager or the environment variable ``FOCUSNET_FAST_PATH=0`` turn it off). On
CPU and CUDA tensors, outside tracing, scripting and ONNX export, :class:`ResGANet` (and
:class:`~focusnet.models.focusnetpp.FocusNetPP`) run an *execution strategy* of the same maths,
from the same parameters and buffers (state_dict unchanged):

* activations are kept in ``channels_last`` (the model converts its input once), where oneDNN's
  grouped 3x3 convolution, BatchNorm and max-pooling are much faster than in NCHW;
* every 1x1 convolution is one matrix product ``(N*H*W, C_in) @ W^T + b`` on the NHWC view
  (:func:`conv1x1_cl`). PyTorch otherwise sends a single-threaded, batch < 16 1x1 convolution to
  its slow im2col path. On CUDA it stays a cuDNN convolution (``channels_last``), whose weight
  gradient is split over the pixels where cuBLAS's is not. Grouped 1x1 convolutions use a block-diagonal weight built on the fly from
  the same parameter; the attention gate reads the whole trunk output with zero columns for the
  feature groups, so no channel slice is ever copied;
* in eval mode without autograd (inference) a BatchNorm that directly follows a convolution is
  folded into that convolution's weights on the fly, and LeakyReLU / sigmoid run in place where the
  value they overwrite is not needed by autograd (in any mode), saving full-resolution allocations;
* in fp32 CPU training, BatchNorm + LeakyReLU pairs and each block's tail (BatchNorm, SE, residual
  sum, LeakyReLU) run in native kernels (:mod:`focusnet.kernels`), and the grouped 3x3
  convolutions take their bias gradient as a plain sum (:func:`conv_train`).

Outputs and gradients equal the plain path to float32 rounding (~1e-6; tests: 1e-5). FLOP counting
on the ``meta`` device, ``torch.jit.trace``, scripting and ONNX export always take the plain path.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from focusnet.kernels import bn_leaky_relu, residual_tail, residual_tail_applies
from focusnet.runtime import env_flag

# Keras defaults used by the authors' code (spec §2.2 rows 16-17).
KERAS_BN_MOMENTUM = 0.01  # PyTorch momentum = 1 - Keras momentum (0.99)
KERAS_BN_EPS = 1e-3
KERAS_LEAKY_SLOPE = 0.3


def batch_norm(channels: int, momentum: float = KERAS_BN_MOMENTUM, eps: float = KERAS_BN_EPS) -> nn.BatchNorm2d:
    """``BatchNorm2d`` with the Keras defaults (momentum 0.99 in Keras terms, eps 1e-3).

    Example:
        >>> batch_norm(32).eps
        0.001
    """
    return nn.BatchNorm2d(channels, momentum=momentum, eps=eps)


# ------------------------------------------------------------------------------------- fast path
#: Default of the fast path; the environment variable ``FOCUSNET_FAST_PATH=0`` turns it off at import.
_FAST_PATH = env_flag("FOCUSNET_FAST_PATH")
_FAST_DEVICES = ("cpu", "cuda")


def set_fast_path(enabled: bool) -> bool:
    """Turn the fast execution path of ResGANet / FocusNet++ on or off; returns the old setting.

    Example:
        >>> old = set_fast_path(False); _ = set_fast_path(old)
    """
    global _FAST_PATH
    old, _FAST_PATH = _FAST_PATH, bool(enabled)
    return old


def fast_path_enabled() -> bool:
    """Whether the fast execution path is switched on (it still only runs where :func:`use_fast_path`)."""
    return _FAST_PATH


@contextlib.contextmanager
def fast_path(enabled: bool = True) -> Iterator[None]:
    """Context manager: run ResGANet / FocusNet++ with the fast path on (or off) inside the block.

    Example:
        >>> with fast_path(False):
        ...     fast_path_enabled()
        False
    """
    old = set_fast_path(enabled)
    try:
        yield
    finally:
        set_fast_path(old)


def use_fast_path(x: torch.Tensor) -> bool:
    """True when the fast path applies to input ``x``: switched on, a CPU or CUDA tensor, and not
    under ``torch.jit`` tracing or scripting or ONNX export (those record the plain graph)."""
    if torch.jit.is_scripting():
        return False
    return (
        _FAST_PATH
        and x.device.type in _FAST_DEVICES
        and not torch.jit.is_tracing()
        and not torch.onnx.is_in_onnx_export()
    )


def _probe_fused_cpu_ops() -> bool:
    """Whether this PyTorch has oneDNN's fused convolution / linear + activation operators."""
    try:
        return bool(torch.backends.mkldnn.is_available()) and all(
            hasattr(torch.ops.mkldnn, op) for op in ("_linear_pointwise", "_convolution_pointwise")
        )
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


_FUSED_CPU_OPS = _probe_fused_cpu_ops()


def use_fused_inference(x: torch.Tensor) -> bool:
    """True when inference may use oneDNN's fused kernels (convolution or matrix product with its
    bias and activation in one pass): fast path on, fp32 CPU tensor, no autograd, no autocast.

    Example:
        >>> with torch.no_grad():
        ...     isinstance(use_fused_inference(torch.zeros(1)), bool)
        True
    """
    return (
        _FUSED_CPU_OPS
        and not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and use_fast_path(x)
    )


def _act_attr(act: str | None, slope: float) -> tuple[str, list[float]]:
    if act is None:
        return "none", []
    if act == "leaky_relu":
        return "leaky_relu", [slope]
    return act, []  # "sigmoid"


def _apply_act(y: torch.Tensor, act: str | None, slope: float) -> torch.Tensor:
    if act == "leaky_relu":
        return F.leaky_relu(y, slope, inplace=True)
    if act == "sigmoid":
        return torch.sigmoid_(y)
    return y


def conv_act(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int, groups: int,
    act: str | None = None, slope: float = 0.0,
) -> torch.Tensor:
    """``act(conv2d(x, weight, bias))`` (stride 1); one fused oneDNN kernel in fp32 CPU inference.

    Example:
        >>> x = torch.randn(1, 4, 6, 6).contiguous(memory_format=torch.channels_last)
        >>> w, b = torch.randn(4, 2, 3, 3), torch.randn(4)
        >>> ref = F.leaky_relu(F.conv2d(x, w, b, padding=1, groups=2), 0.3)
        >>> with torch.no_grad():
        ...     bool(torch.allclose(conv_act(x, w, b, 1, 2, "leaky_relu", 0.3), ref, atol=1e-5))
        True
    """
    if use_fused_inference(x):
        attr, scalars = _act_attr(act, slope)
        p = [padding, padding]
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, p, [1, 1], [1, 1], groups, attr, scalars, "")
    return _apply_act(F.conv2d(x, weight, bias, 1, padding, 1, groups), act, slope)  # conv's grad needs no output


class _ConvBiasSum(torch.autograd.Function):
    """``conv2d(x, weight, bias)`` (stride 1, zero padding) whose backward takes the bias gradient
    as a plain sum of the output gradient over batch and pixels.

    oneDNN computes all three gradients in one call when asked for the bias too; for FocusNet++'s
    full-resolution ``groups=4`` 3x3 convolutions (8 channels per group, channels_last) that call
    is ~20 ms slower than the input and weight gradients alone plus a 3 ms sum. Same maths.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int, groups: int) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.groups = padding, groups
        return F.conv2d(x, weight, bias, 1, padding, 1, groups)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = None
        if need_x or need_w:
            p = [ctx.padding, ctx.padding]
            grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], p, [1, 1], False, [0, 0], ctx.groups, [need_x, need_w, False]
            )
        grad_b = grad.sum(dim=(0, 2, 3)) if need_b else None
        return grad_x, grad_w, grad_b, None, None


def conv_train(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a stride-1, zero-padded convolution; on fp32 CPU tensors under autograd with
    a trainable bias, through :class:`_ConvBiasSum` (faster backward, same maths).

    Example:
        >>> conv = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        >>> x = torch.randn(2, 8, 6, 6, requires_grad=True)
        >>> bool(torch.allclose(conv_train(x, conv), conv(x)))
        True
    """
    b = conv.bias
    if (
        b is not None
        and b.requires_grad
        and torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and conv.weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and len(set(conv.padding)) == 1
    ):
        return _ConvBiasSum.apply(x, conv.weight, b, conv.padding[0], conv.groups)
    return conv(x)


def _dense_1x1(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """``(C_out, C_in / groups, 1, 1)`` conv weight -> dense ``(C_out, C_in)`` (block-diagonal)."""
    w = weight.flatten(1)
    if groups == 1:
        return w
    return torch.block_diag(*w.chunk(groups, dim=0))


def _weight_grad(grad: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """``grad^T @ x2``, ``(C_out, C_in)``, a product over M = N*H*W pixels with a tiny output.

    BLAS parallelises over the output only, so with several threads the pixels are split into
    chunks (one batched product, then a sum); the narrow side goes first (``x2^T @ grad`` when
    ``C_in < C_out``), which is ~10x faster for C_in = 4 than the other orientation."""
    m = x2.shape[0]
    chunks = 4 if torch.get_num_threads() > 1 and m % 4 == 0 and m >= 65536 else 1
    if chunks > 1:
        g = grad.reshape(chunks, m // chunks, grad.shape[1])
        x = x2.reshape(chunks, m // chunks, x2.shape[1])
        return torch.bmm(g.transpose(1, 2), x).sum(0)
    if x2.shape[1] < grad.shape[1]:
        return x2.t().mm(grad).t()
    return grad.t().mm(x2)


class _MatmulBias(torch.autograd.Function):
    """``x2 @ weight^T + bias`` with the backward of :func:`_weight_grad` (once differentiable)."""

    @staticmethod
    def forward(ctx, x2: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x2, weight)
        ctx.has_bias = bias is not None
        return torch.addmm(bias, x2, weight.t()) if bias is not None else torch.mm(x2, weight.t())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x2, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = grad.mm(weight) if need_x else None
        grad_w = _weight_grad(grad, x2) if need_w else None
        grad_b = grad.sum(0) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b


def _cudnn_1x1(x: torch.Tensor) -> bool:
    """Whether :func:`conv1x1_cl` runs a 1x1 convolution (cuDNN, on CUDA) rather than a matrix product."""
    return x.device.type == "cuda"


def conv1x1_cl(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    sigmoid: bool = False,
    leaky_slope: float | None = None,
) -> torch.Tensor:
    """A 1x1 convolution with a dense ``(C_out, C_in)`` weight as one matrix product on the NHWC view
    (on CUDA: cuDNN's 1x1 convolution in ``channels_last``).

    Returns an NCHW-shaped tensor in ``channels_last`` memory (a view of the ``(N, H, W, C_out)``
    product). Exact up to float rounding. ``sigmoid=True`` (or ``leaky_slope=s``: LeakyReLU) applies
    the activation in place to the product itself (not to a view of it, which autograd would have
    to copy back); in fp32 CPU inference product, bias and activation are one oneDNN kernel.

    Example:
        >>> x = torch.randn(2, 8, 5, 5).contiguous(memory_format=torch.channels_last)
        >>> conv = nn.Conv2d(8, 4, 1)
        >>> bool(torch.allclose(conv1x1_cl(x, conv.weight.flatten(1), conv.bias), conv(x), atol=1e-6))
        True
    """
    n, c, h, w = x.shape
    act = "sigmoid" if sigmoid else None if leaky_slope is None else "leaky_relu"
    slope = 0.0 if leaky_slope is None else float(leaky_slope)
    if _cudnn_1x1(x):
        # cuDNN's 1x1 convolution on the channels_last tensor: a GEMM with TF32 where PyTorch lets
        # convolutions use it (the plain path's numerics), and a split-K weight gradient; cuBLAS
        # picks a 32x32-tile kernel without split-K for grad^T @ x over N*H*W pixels (issue 19:
        # 58 of 83 ms of FocusNet++'s fp32 step on an H200)
        y = F.conv2d(x.contiguous(memory_format=torch.channels_last), weight[:, :, None, None], bias)
        return _apply_act(y, act, slope)
    x2 = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    if use_fused_inference(x):
        attr, scalars = _act_attr(act, slope)
        y = torch.ops.mkldnn._linear_pointwise(x2, weight, bias, attr, scalars, "")
    elif (
        torch.is_grad_enabled()
        and (weight.requires_grad or (bias is not None and bias.requires_grad))
        and not torch.is_autocast_enabled(x.device.type)
    ):
        y = _apply_act(_MatmulBias.apply(x2, weight, bias), act, slope)
    else:
        y = torch.addmm(bias, x2, weight.t()) if bias is not None else torch.mm(x2, weight.t())
        y = _apply_act(y, act, slope)
    return y.view(n, h, w, weight.shape[0]).permute(0, 3, 1, 2)


def bn_affine(bn: nn.BatchNorm2d, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``y = x * scale + shift`` (computed in ``dtype``, default the buffers')."""
    def cast(t: torch.Tensor) -> torch.Tensor:
        return t if dtype is None else t.to(dtype)

    scale = torch.rsqrt(cast(bn.running_var) + bn.eps)
    if bn.weight is not None:
        scale = scale * cast(bn.weight)
    shift = -cast(bn.running_mean) * scale
    if bn.bias is not None:
        shift = shift + cast(bn.bias)
    return scale, shift


def _foldable_bn(bn: nn.Module) -> bool:
    # folded only without autograd (inference): with gradients the BN parameters' gradients through
    # the folded weights would be summed in another, cancellation-prone order
    return (
        not torch.is_grad_enabled()
        and type(bn) is nn.BatchNorm2d
        and not bn.training
        and bn.track_running_stats
        and bn.running_mean is not None
        and not bn._forward_hooks
        and not bn._forward_pre_hooks
    )


def _fold(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.Module):
    """``(weight, bias, bn_left)`` of a conv followed by ``bn``: folded when ``bn`` is an eval-mode
    BatchNorm, absorbed when it is an Identity (already folded by export), else returned to apply."""
    if isinstance(bn, nn.Identity):
        return weight, bias, None
    if not _foldable_bn(bn):
        return weight, bias, bn
    scale, shift = bn_affine(bn)
    w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    b = shift if bias is None else bias * scale + shift
    return w, b, None


def _conv_bn(x: torch.Tensor, conv: nn.Conv2d, bn: nn.Module, dense: torch.Tensor | None = None) -> torch.Tensor:
    """``bn(conv(x))`` with folding where possible; ``dense`` replaces the 1x1 weight (grouped -> dense)."""
    if dense is not None:
        w, b, rest = _fold(dense, conv.bias, bn)
        y = conv1x1_cl(x, w, b)
    else:
        w, b, rest = _fold(conv.weight, conv.bias, bn)
        y = F.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation, conv.groups)
    return y if rest is None else rest(y)


def _upsample2x_cl(t: torch.Tensor) -> torch.Tensor:
    """Nearest 2x upsampling, kept in ``channels_last``."""
    return F.interpolate(t, scale_factor=2.0, mode="nearest").contiguous(memory_format=torch.channels_last)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    """The convolution's bias, or zeros where it has none (for folding and composing)."""
    return conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.weight.shape[0])


def modules_fast_ok(module: nn.Module) -> bool:
    """True when every submodule is a stock layer the fast path understands and none is hooked
    (the fast path reads parameters directly, so hooks and custom layers would be bypassed)."""
    for m in module.modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return False
        if isinstance(m, nn.Conv2d) and (type(m) is not nn.Conv2d or m.padding_mode != "zeros"):
            return False
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and type(m) is not nn.BatchNorm2d:
            return False
    return True


def _conv_bn_lrelu(
    x: torch.Tensor, conv: nn.Conv2d, bn: nn.Module, slope: float, dense: torch.Tensor | None = None
) -> torch.Tensor:
    """``leaky_relu(bn(conv(x)))``: BN folded and the activation fused in inference, the fused
    BN + LeakyReLU kernel in CPU training; ``dense`` replaces a 1x1 weight (grouped -> dense)."""
    w, b, rest = _fold(dense if dense is not None else conv.weight, conv.bias, bn)
    if dense is not None:
        if rest is None:
            return conv1x1_cl(x, w, b, leaky_slope=slope)
        return bn_leaky_relu(conv1x1_cl(x, w, b), rest, slope)
    if rest is None and conv.stride == (1, 1) and conv.dilation == (1, 1) and len(set(conv.padding)) == 1:
        return conv_act(x, w, b, conv.padding[0], conv.groups, "leaky_relu", slope)
    if rest is not None:  # BN not folded (training): the convolution keeps its own weights
        return bn_leaky_relu(conv_train(x, conv), rest, slope)
    return F.leaky_relu(F.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation, conv.groups), slope, inplace=True)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018) as in the authors' ``se.py``.

    Global average pool, bias-free FC to ``channels // ratio`` with ReLU, bias-free FC back with
    sigmoid, channel-wise rescale. The reduced width is at least 1 (for very narrow test models).

    Example:
        >>> se = SqueezeExcite(32)
        >>> se(torch.randn(2, 32, 8, 8)).shape
        torch.Size([2, 32, 8, 8])
    """

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // ratio)
        self.reduce = nn.Linear(channels, hidden, bias=False)
        self.expand = nn.Linear(hidden, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))
        s = torch.sigmoid(self.expand(F.relu(self.reduce(s))))
        return x * s[:, :, None, None]


class ResGANet(nn.Module):
    """Residual Group Attention block (fast, grouped-convolution implementation).

    Args:
        in_channels: input channels C_in.
        out_channels: output channels C_out.
        width: internal grouped width w (multiple of 4); ``d = w // 4`` channels per group.
        se: squeeze-and-excitation after the final 1x1 conv + BN (paper: yes; released code: no).
        feature_shortcut: ``"identity"`` (paper, O = x + F(x)) or ``"conv"`` (released code:
            Conv1x1-BN-LeakyReLU on the feature group's shortcut).
        project: force a Conv1x1+BN block shortcut even when C_in == C_out (default: only when
            the channel count changes).
        leaky_slope, bn_momentum, bn_eps: activation and BatchNorm settings.

    Example:
        >>> block = ResGANet(32, 64, width=64)
        >>> block(torch.randn(2, 32, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        se: bool = True,
        feature_shortcut: Literal["identity", "conv"] = "identity",
        project: bool | None = None,
        leaky_slope: float = KERAS_LEAKY_SLOPE,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        bn_eps: float = KERAS_BN_EPS,
    ) -> None:
        super().__init__()
        if width % 4 != 0 or width <= 0:
            raise ValueError(f"ResGANet width must be a positive multiple of 4, got {width}")
        if feature_shortcut not in ("identity", "conv"):
            raise ValueError(f"feature_shortcut must be 'identity' or 'conv', got {feature_shortcut!r}")
        d = width // 4
        self.group = d
        self.slope = leaky_slope

        def bn(c: int) -> nn.BatchNorm2d:
            return batch_norm(c, bn_momentum, bn_eps)

        # channels out of conv_in: [A0 | A2 | F1 | F3], each d wide
        self.conv_in = nn.Conv2d(in_channels, width, 1)
        # the four BN-LReLU-Conv3x3-BN-LReLU-Conv3x3 stacks, one group each
        self.trunk = nn.Sequential(
            bn(width),
            nn.LeakyReLU(leaky_slope),
            nn.Conv2d(width, width, 3, padding=1, groups=4),
            bn(width),
            nn.LeakyReLU(leaky_slope),
            nn.Conv2d(width, width, 3, padding=1, groups=4),
        )
        self.gate = nn.Conv2d(2 * d, 2 * d, 1, groups=2)  # attention 1x1 before the sigmoid
        if feature_shortcut == "conv":
            self.feature_shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(2 * d, 2 * d, 1, groups=2), bn(2 * d), nn.LeakyReLU(leaky_slope)
            )
        else:
            self.feature_shortcut = nn.Identity()
        self.expand = nn.Sequential(
            nn.Conv2d(2 * d, 4 * d, 1, groups=2), bn(4 * d), nn.LeakyReLU(leaky_slope)
        )
        self.conv_out = nn.Conv2d(width, out_channels, 1)
        self.bn_out = bn(out_channels)
        self.se: nn.Module = SqueezeExcite(out_channels) if se else nn.Identity()
        if project is None:
            project = in_channels != out_channels
        self.shortcut: nn.Module = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), bn(out_channels))
            if project
            else nn.Identity()
        )

    # conv_out feeds bn_out only: export.fold_batchnorm may fuse them for inference
    foldable_pairs = (("conv_out", "bn_out"),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_fast_path(x) and self._fast_ok():
            return self.forward_fast(x)
        return self.forward_plain(x)

    def _fast_ok(self) -> bool:
        """The fast path reads the parameters directly: only for the stock layers, unhooked."""
        return modules_fast_ok(self)

    def forward_fast(self, x: torch.Tensor, upsample: bool = False) -> torch.Tensor:
        """Same maths as :meth:`forward_plain` (see the module docstring): channels_last, 1x1
        convolutions as matrix products, eval-mode BatchNorm folded, in-place activations.

        With ``upsample=True`` the block computes ``forward_plain(interpolate(x, 2, "nearest"))``:
        its input 1x1 convolutions (``conv_in``, the shortcut conv) are per-pixel, so they run at
        the low resolution and their outputs are upsampled (4x fewer multiply-adds, same values);
        every BatchNorm still sees the upsampled tensor, so batch statistics are unchanged.
        """
        grad = torch.is_grad_enabled()
        d = self.group
        x = x.contiguous(memory_format=torch.channels_last)
        if use_fused_inference(x) and self._fused_ok():
            return self._forward_fused(x, upsample)

        def up(t: torch.Tensor) -> torch.Tensor:
            return _upsample2x_cl(t) if upsample else t

        tr = self.trunk
        w_in, b_in = self.conv_in.weight.flatten(1), self.conv_in.bias
        h = up(conv1x1_cl(x, w_in, b_in))
        a = bn_leaky_relu(h, tr[0], tr[1].negative_slope)
        a = _conv_bn_lrelu(a, tr[2], tr[3], tr[4].negative_slope)
        t_att, t_feat = conv_train(a, tr[5]).split(2 * d, dim=1)  # split: one cat in backward, no zero-filling
        # attention: 1x1 gate (groups=2, block-diagonal) on the attention half of t, read in place
        gate = self.gate
        attention = conv1x1_cl(t_att, _dense_1x1(gate.weight, gate.groups), gate.bias, sigmoid=True)
        # feature half of h = conv_in(x): when autograd runs, recomputed from the feature rows of
        # conv_in (a small product) rather than sliced out of h, whose slice gradient would cost a
        # zero-filled full-width tensor and a copy
        if grad:
            h_feat = up(conv1x1_cl(x, w_in[2 * d :], None if b_in is None else b_in[2 * d :]))
        else:
            h_feat = h[:, 2 * d :]
        fs = self.feature_shortcut
        if isinstance(fs, nn.Identity):
            shortcut_f = h_feat
        else:
            conv = fs[0]
            shortcut_f = _conv_bn_lrelu(h_feat, conv, fs[1], fs[2].negative_slope, _dense_1x1(conv.weight, conv.groups))
        features = t_feat + shortcut_f
        gated = features * attention if grad else features.mul_(attention)
        ex = self.expand
        e = _conv_bn_lrelu(gated, ex[0], ex[1], ex[2].negative_slope, _dense_1x1(ex[0].weight, ex[0].groups))
        se = self.se
        w_out = self.conv_out.weight.flatten(1)
        skip = self._skip(x, up)
        if _foldable_bn(self.bn_out) or not isinstance(se, (SqueezeExcite, nn.Identity)):
            y = _conv_bn(e, self.conv_out, self.bn_out, dense=w_out)
        else:  # training-mode BatchNorm: the native kernel runs BN, SE, residual sum and activation
            y = conv1x1_cl(e, w_out, self.conv_out.bias)
            se_weights = (se.reduce.weight, se.expand.weight) if isinstance(se, SqueezeExcite) else None
            if residual_tail_applies(y, skip, self.bn_out, se_weights):
                return residual_tail(y, skip, self.bn_out, self.slope, se_weights)
            y = self.bn_out(y)
        if isinstance(se, SqueezeExcite):
            # sum, then divide the (N, C) result: mean's backward would materialise a full-size
            # tensor divided by H*W, sum's is a broadcast view
            s = y.sum(dim=(2, 3)) / (y.shape[2] * y.shape[3])
            s = torch.sigmoid(se.expand(F.relu(se.reduce(s))))[:, :, None, None]
            y = y * s if grad else y.mul_(s)
        elif not isinstance(se, nn.Identity):
            y = se(y)
        out = y + skip if grad else y.add_(skip)
        return F.leaky_relu(out, self.slope, inplace=True)

    def _skip(self, x: torch.Tensor, up) -> torch.Tensor:
        """The block shortcut of the fast path: identity, or Conv1x1 + BN (folded in eval mode and
        run before the upsampling; in training BN runs on the upsampled output)."""
        sc = self.shortcut
        if isinstance(sc, nn.Identity):
            return up(x)
        w, b, rest = _fold(sc[0].weight.flatten(1), sc[0].bias, sc[1])
        skip = up(conv1x1_cl(x, w, b))
        return skip if rest is None else rest(skip)

    def _fused_ok(self) -> bool:
        """Every BatchNorm can be folded (eval mode, no autograd); export's Identity ones can too."""
        return all(_foldable_bn(m) for m in self.modules() if isinstance(m, nn.BatchNorm2d))

    def _forward_fused(self, x: torch.Tensor, upsample: bool) -> torch.Tensor:
        """fp32 CPU inference with oneDNN's fused kernels; the same maths, regrouped linearly:

        * the attention half and the feature half of the trunk run as separate ``groups=2``
          kernels, so every tensor stays contiguous (a sigmoid on a channel slice is not vectorised);
        * the trunk's first BatchNorm + LeakyReLU is folded into ``conv_in`` (products with the
          activation fused); the feature rows of ``conv_in`` without it (the identity feature
          shortcut) are one more product, or with a conv feature shortcut both 1x1 maps composed;
        * each trunk 3x3 convolution carries its BatchNorm and LeakyReLU; the attention gate (1x1,
          block-diagonal over the same groups) and its sigmoid are composed into the attention
          half's second 3x3 convolution;
        * expansion and output 1x1 convolutions carry their BatchNorm (and LeakyReLU).
        Composition and folding reorder float sums: equal to the plain path to ~1e-6 (tests 1e-5).
        """
        d = self.group
        tr = self.trunk

        def up(t: torch.Tensor) -> torch.Tensor:
            return _upsample2x_cl(t) if upsample else t

        half = 2 * d
        w_in = self.conv_in.weight.flatten(1)
        b_in = _bias(self.conv_in)
        scale0, shift0 = bn_affine(tr[0])
        w_a, b_a = w_in * scale0[:, None], b_in * scale0 + shift0
        slope0 = tr[1].negative_slope
        a_att = up(conv1x1_cl(x, w_a[:half], b_a[:half], leaky_slope=slope0))
        a_feat = up(conv1x1_cl(x, w_a[half:], b_a[half:], leaky_slope=slope0))
        fs = self.feature_shortcut
        if isinstance(fs, nn.Identity):
            shortcut_f = up(conv1x1_cl(x, w_in[half:], b_in[half:]))
        else:  # lrelu(bn(conv_fs(conv_in_feat(x)))): the two 1x1 maps composed
            w_fs = _dense_1x1(fs[0].weight, fs[0].groups)
            w, b, _ = _fold(w_fs @ w_in[half:], w_fs @ b_in[half:] + _bias(fs[0]), fs[1])
            shortcut_f = up(conv1x1_cl(x, w, b, leaky_slope=fs[2].negative_slope))
        w1, b1, _ = _fold(tr[2].weight, tr[2].bias, tr[3])
        groups, slope1 = tr[2].groups // 2, tr[4].negative_slope
        a_att = conv_act(a_att, w1[:half], b1[:half], 1, groups, "leaky_relu", slope1)
        a_feat = conv_act(a_feat, w1[half:], b1[half:], 1, groups, "leaky_relu", slope1)
        conv2, gate = tr[5], self.gate
        g = _dense_1x1(gate.weight, gate.groups)  # block-diagonal: the groups stay separate
        b2 = _bias(conv2)
        w_att = torch.einsum("oc,cikl->oikl", g, conv2.weight[:half])
        attention = conv_act(a_att, w_att, g @ b2[:half] + _bias(gate), 1, groups, "sigmoid")
        t_feat = conv_act(a_feat, conv2.weight[half:], b2[half:], 1, groups)
        gated = attention.mul_(t_feat.add_(shortcut_f))
        ex = self.expand
        w, b, _ = _fold(_dense_1x1(ex[0].weight, ex[0].groups), ex[0].bias, ex[1])
        e = conv1x1_cl(gated, w, b, leaky_slope=ex[2].negative_slope)
        w, b, _ = _fold(self.conv_out.weight.flatten(1), self.conv_out.bias, self.bn_out)
        y = conv1x1_cl(e, w, b)
        se = self.se
        if isinstance(se, SqueezeExcite):
            s = torch.sigmoid(se.expand(F.relu(se.reduce(y.mean(dim=(2, 3))))))
            y = y.mul_(s[:, :, None, None])
        elif not isinstance(se, nn.Identity):
            y = se(y)
        sc = self.shortcut
        if isinstance(sc, nn.Identity):
            skip = up(x)
        else:
            w, b, _ = _fold(sc[0].weight.flatten(1), sc[0].bias, sc[1])
            skip = up(conv1x1_cl(x, w, b))
        return F.leaky_relu(y.add_(skip), self.slope, inplace=True)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The grouped-convolution forward, layer by layer (also what is traced and exported)."""
        h = self.conv_in(x)
        t = self.trunk(h)
        half = 2 * self.group
        attention = torch.sigmoid(self.gate(t[:, :half]))
        features = t[:, half:] + self.feature_shortcut(h[:, half:])
        y = self.bn_out(self.conv_out(self.expand(features * attention)))
        y = self.se(y)
        return F.leaky_relu(self.shortcut(x) + y, self.slope)


# ----------------------------------------------------------------------------------- reference
class _AttentionGroup(nn.Module):
    """Paper: two BN-LeakyReLU-Conv operations followed by a Conv-Sigmoid (d channels)."""

    def __init__(self, d: int, slope: float, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.bn1 = batch_norm(d, bn_momentum, bn_eps)
        self.conv1 = nn.Conv2d(d, d, 3, padding=1)
        self.bn2 = batch_norm(d, bn_momentum, bn_eps)
        self.conv2 = nn.Conv2d(d, d, 3, padding=1)
        self.gate = nn.Conv2d(d, d, 1)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.leaky_relu(self.bn1(x), self.slope))
        x = self.conv2(F.leaky_relu(self.bn2(x), self.slope))
        return torch.sigmoid(self.gate(x))


class _FeatureGroup(nn.Module):
    """Residual unit O = shortcut(x) + F(x), F = 2x (BN-LeakyReLU-Conv3x3)."""

    def __init__(self, d: int, conv_shortcut: bool, slope: float, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.bn1 = batch_norm(d, bn_momentum, bn_eps)
        self.conv1 = nn.Conv2d(d, d, 3, padding=1)
        self.bn2 = batch_norm(d, bn_momentum, bn_eps)
        self.conv2 = nn.Conv2d(d, d, 3, padding=1)
        self.slope = slope
        self.sc_conv = nn.Conv2d(d, d, 1) if conv_shortcut else None
        self.sc_bn = batch_norm(d, bn_momentum, bn_eps) if conv_shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv1(F.leaky_relu(self.bn1(x), self.slope))
        f = self.conv2(F.leaky_relu(self.bn2(f), self.slope))
        if self.sc_conv is not None:
            x = F.leaky_relu(self.sc_bn(self.sc_conv(x)), self.slope)
        return x + f


class _Expansion(nn.Module):
    """Conv1x1(d -> 2d) - BN - LeakyReLU on one gated group."""

    def __init__(self, d: int, slope: float, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(d, 2 * d, 1)
        self.bn = batch_norm(2 * d, bn_momentum, bn_eps)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn(self.conv(x)), self.slope)


class ResGANetReference(nn.Module):
    """ResGANet exactly as the paper describes it, one Python branch per group (slow, readable).

    Same arguments as :class:`ResGANet`. Used as the specification in tests.

    Example:
        >>> ref = ResGANetReference(32, 32, width=32)
        >>> fast = resganet_from_reference(ref)
        >>> x = torch.randn(2, 32, 8, 8)
        >>> bool(torch.allclose(ref.eval()(x), fast.eval()(x), atol=1e-5))
        True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        se: bool = True,
        feature_shortcut: Literal["identity", "conv"] = "identity",
        project: bool | None = None,
        leaky_slope: float = KERAS_LEAKY_SLOPE,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        bn_eps: float = KERAS_BN_EPS,
    ) -> None:
        super().__init__()
        d = width // 4
        args = (leaky_slope, bn_momentum, bn_eps)
        conv_sc = feature_shortcut == "conv"
        self.settings = dict(
            in_channels=in_channels, out_channels=out_channels, width=width, se=se,
            feature_shortcut=feature_shortcut, project=project, leaky_slope=leaky_slope,
            bn_momentum=bn_momentum, bn_eps=bn_eps,
        )
        self.d = d
        self.slope = leaky_slope
        self.conv_in = nn.Conv2d(in_channels, width, 1)  # [g0, g1, g2, g3] = [A, F, A, F]
        self.attn1 = _AttentionGroup(d, *args)
        self.feat1 = _FeatureGroup(d, conv_sc, *args)
        self.attn2 = _AttentionGroup(d, *args)
        self.feat2 = _FeatureGroup(d, conv_sc, *args)
        self.expand1 = _Expansion(d, *args)
        self.expand2 = _Expansion(d, *args)
        self.conv_out = nn.Conv2d(width, out_channels, 1)
        self.bn_out = batch_norm(out_channels, bn_momentum, bn_eps)
        self.se: nn.Module = SqueezeExcite(out_channels) if se else nn.Identity()
        if project is None:
            project = in_channels != out_channels
        self.shortcut: nn.Module = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), batch_norm(out_channels, bn_momentum, bn_eps))
            if project
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g0, g1, g2, g3 = torch.split(self.conv_in(x), self.d, dim=1)
        p1 = self.expand1(self.feat1(g1) * self.attn1(g0))
        p2 = self.expand2(self.feat2(g3) * self.attn2(g2))
        y = self.se(self.bn_out(self.conv_out(torch.cat([p1, p2], dim=1))))
        return F.leaky_relu(self.shortcut(x) + y, self.slope)


@torch.no_grad()
def resganet_from_reference(ref: ResGANetReference) -> ResGANet:
    """Build a fast :class:`ResGANet` holding exactly the weights (and BN statistics) of ``ref``.

    Example:
        >>> fast = resganet_from_reference(ResGANetReference(16, 32, width=32))
        >>> isinstance(fast, ResGANet)
        True
    """
    fast = ResGANet(**ref.settings)
    d = ref.d
    a1, f1, a2, f2 = slice(0, d), slice(d, 2 * d), slice(2 * d, 3 * d), slice(3 * d, 4 * d)
    order = torch.cat([torch.arange(4 * d)[s] for s in (a1, a2, f1, f2)])

    def copy_conv(dst: nn.Conv2d, srcs: list[nn.Conv2d]) -> None:
        dst.weight.copy_(torch.cat([s.weight for s in srcs]))
        dst.bias.copy_(torch.cat([s.bias for s in srcs]))

    def copy_bn(dst: nn.BatchNorm2d, srcs: list[nn.BatchNorm2d]) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(dst, name).copy_(torch.cat([getattr(s, name) for s in srcs]))
        dst.num_batches_tracked.copy_(srcs[0].num_batches_tracked)

    fast.conv_in.weight.copy_(ref.conv_in.weight[order])
    fast.conv_in.bias.copy_(ref.conv_in.bias[order])
    groups = [ref.attn1, ref.attn2, ref.feat1, ref.feat2]
    copy_bn(fast.trunk[0], [g.bn1 for g in groups])
    copy_conv(fast.trunk[2], [g.conv1 for g in groups])
    copy_bn(fast.trunk[3], [g.bn2 for g in groups])
    copy_conv(fast.trunk[5], [g.conv2 for g in groups])
    copy_conv(fast.gate, [ref.attn1.gate, ref.attn2.gate])
    if ref.feat1.sc_conv is not None:
        copy_conv(fast.feature_shortcut[0], [ref.feat1.sc_conv, ref.feat2.sc_conv])
        copy_bn(fast.feature_shortcut[1], [ref.feat1.sc_bn, ref.feat2.sc_bn])
    copy_conv(fast.expand[0], [ref.expand1.conv, ref.expand2.conv])
    copy_bn(fast.expand[1], [ref.expand1.bn, ref.expand2.bn])
    fast.conv_out.load_state_dict(ref.conv_out.state_dict())
    fast.bn_out.load_state_dict(ref.bn_out.state_dict())
    fast.se.load_state_dict(ref.se.state_dict())
    fast.shortcut.load_state_dict(ref.shortcut.state_dict())
    return fast


# ---- U-Net family layers ----
# Shared by the baselines unet, attention_unet, wide_unet and unetpp (spec §4, porting conventions):
# the input-size check, Keras weight initialisers, Keras ``l2`` kernel regularisers and the
# ``standard_unit`` of Wide U-Net / UNet++.

KerasInit = Literal["he_normal", "glorot_normal", "glorot_uniform"]

# Keras >= 2.2.3 draws "normal" variance-scaling weights from a normal truncated at 2 std and
# divides the std by this factor so that the truncated draw keeps the intended variance.
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def check_input_size(x: torch.Tensor, multiple: int, model: str) -> None:
    """Raise :class:`~focusnet.errors.FocusNetError` unless H and W are multiples of ``multiple``.

    Args:
        x: input batch (B, C, H, W).
        multiple: the model's total stride (16 for four 2x2 poolings).
        model: model name for the message.

    Example:
        >>> check_input_size(torch.zeros(1, 3, 64, 96), 16, "unet")
    """
    from focusnet.errors import FocusNetError

    if torch.jit.is_tracing():  # sizes are tensors while tracing; the trace is shape-specialised anyway
        return
    if x.dim() != 4:
        raise FocusNetError(f"{model}: expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % multiple or w % multiple:
        raise FocusNetError(
            f"{model}: input height and width must be divisible by {multiple}, got {h}x{w}; "
            "resize or pad the image"
        )


@torch.no_grad()
def keras_init_(module: nn.Module, kernel: KerasInit) -> nn.Module:
    """Initialise a conv / transposed conv like a Keras layer: ``kernel`` initialiser, zero bias.

    Fans follow Keras (and PyTorch): receptive field times weight dim 1 (fan in) or dim 0 (fan out),
    which for a transposed conv is (filters, input channels) as in Keras.

    Args:
        module: an ``nn.Conv2d`` or ``nn.ConvTranspose2d``.
        kernel: ``"he_normal"``, ``"glorot_normal"`` or ``"glorot_uniform"`` (the Keras default).

    Example:
        >>> conv = keras_init_(nn.Conv2d(3, 8, 3), "he_normal")
        >>> float(conv.bias.detach().abs().sum())
        0.0
    """
    weight = module.weight
    receptive = weight[0, 0].numel()
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    if kernel == "he_normal":
        std = (2.0 / fan_in) ** 0.5 / _TRUNCATED_NORMAL_STD
        nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)
    elif kernel == "glorot_normal":
        std = (2.0 / (fan_in + fan_out)) ** 0.5 / _TRUNCATED_NORMAL_STD
        nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)
    elif kernel == "glorot_uniform":
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        nn.init.uniform_(weight, -limit, limit)
    else:
        raise ValueError(f"unknown Keras initialiser {kernel!r}")
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


class L2Conv2d(nn.Conv2d):
    """``nn.Conv2d`` carrying a Keras ``kernel_regularizer=l2(l2)`` coefficient.

    The penalty ``l2 * sum(weight**2)`` (kernel only, not the bias) is not applied by the layer;
    collect it with :func:`l2_penalty` and add it to the loss.

    Example:
        >>> conv = L2Conv2d(3, 8, 3, padding=1, l2=1e-4)
        >>> conv.l2
        0.0001
    """

    def __init__(self, *args, l2: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.l2 = float(l2)


def l2_penalty(module: nn.Module) -> torch.Tensor:
    """Sum of the Keras-style L2 kernel penalties of every :class:`L2Conv2d` inside ``module``.

    Equivalent alternative: SGD ``weight_decay = 2 * l2`` on those kernels only.

    Example:
        >>> net = nn.Sequential(L2Conv2d(1, 1, 1, bias=False, l2=0.5))
        >>> _ = nn.init.ones_(net[0].weight)
        >>> float(l2_penalty(net))
        0.5
    """
    terms = [m.l2 * m.weight.square().sum() for m in module.modules() if isinstance(m, L2Conv2d) and m.l2]
    if not terms:
        first = next(module.parameters(), None)
        return torch.zeros((), device=None if first is None else first.device)
    return torch.stack(terms).sum()


class StandardUnit(nn.Module):
    """``standard_unit`` of Wide U-Net and UNet++ (Zhou et al., DLMIA 2018).

    Conv3x3-ELU-Dropout twice; he_normal kernels with Keras ``l2`` regularisers.

    Args:
        in_channels: input channels.
        out_channels: filters of both convolutions.
        dropout: dropout rate after each convolution (the authors' code: 0.5).
        l2: L2 kernel-regulariser coefficient (the authors' code: 1e-4).

    Example:
        >>> StandardUnit(3, 8)(torch.randn(1, 3, 16, 16)).shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.5, l2: float = 1e-4) -> None:
        super().__init__()
        self.conv1 = keras_init_(L2Conv2d(in_channels, out_channels, 3, padding=1, l2=l2), "he_normal")
        self.conv2 = keras_init_(L2Conv2d(out_channels, out_channels, 3, padding=1, l2=l2), "he_normal")
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(F.elu(self.conv1(x)))
        return self.drop(F.elu(self.conv2(x)))
