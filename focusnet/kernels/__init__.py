"""Native CPU kernels of FocusNet++'s training step, built on first use with the system C compiler.

Two kernels, forward and backward, on ``channels_last`` float32 activations in training:

* :func:`bn_leaky_relu` (``bn_leaky_relu.c``): training-mode BatchNorm + LeakyReLU, and InstanceNorm +
  LeakyReLU (each image by its own statistics, every image in one call; in inference too, where
  :func:`normalize_keeping_layout` also runs it, with slope 1, for a plain InstanceNorm);
* :func:`residual_tail` (``residual_tail.c``): the end of a ResGANet block,
  ``leaky_relu(se(bn(y)) + skip)``: BatchNorm, squeeze-and-excitation, residual sum and
  activation. One pass collects per-image, per-channel sums (BatchNorm's batch statistics and
  SE's pooling both follow from them); the small per-image coefficients are computed, and
  differentiated, by PyTorch in float64; one more pass writes the output (backward: two passes).

PyTorch runs each of those operations as a separate memory pass, and each backward writes a
full-size intermediate; at FocusNet++'s full resolution those passes are memory-bound, so fused
passes are faster (tail: about 2x). The maths is PyTorch's (batch statistics with the biased
variance for normalising, the unbiased one for the running variance), in float32 with
double-precision totals (the BatchNorm kernel adds float sums of 32-row blocks to them); the tests
compare both with float64 PyTorch references.

The C source is plain C (OpenMP, sharing torch's libgomp; no Python or torch headers) and compiles
in about a second with ``cc -O3 -march=native -fopenmp`` (``$FOCUSNET_KERNEL_MARCH`` replaces
``native``, for example ``x86-64-v3`` to build for CPUs without AVX-512); the shared library is
cached under ``$XDG_CACHE_HOME/focusnet/kernels`` (``~/.cache/...``) keyed by the source hash, the
machine and the compiler. Without a C compiler, or with ``FOCUSNET_NATIVE_KERNELS=0``,
:func:`bn_leaky_relu_available` is ``False`` and the models use PyTorch's own operators (same maths).

Example:
    >>> import torch
    >>> from focusnet.kernels import bn_leaky_relu, bn_leaky_relu_available
    >>> bn = torch.nn.BatchNorm2d(4)
    >>> x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    >>> y = bn_leaky_relu(x, bn, 0.3)  # falls back to PyTorch where the kernel is unavailable
    >>> y.shape
    torch.Size([2, 4, 8, 8])
"""
from __future__ import annotations

from focusnet.kernels.build import ENV_VAR, MARCH_ENV_VAR, bn_leaky_relu_available, kernel_march, native_library
from focusnet.kernels.norm_act import bn_leaky_relu, normalize_keeping_layout
from focusnet.kernels.residual import TAIL_MIN_ELEMENTS, residual_tail, residual_tail_applies

__all__ = [
    "ENV_VAR", "MARCH_ENV_VAR", "TAIL_MIN_ELEMENTS", "kernel_march", "bn_leaky_relu", "bn_leaky_relu_available",
    "native_library", "normalize_keeping_layout", "residual_tail",
    "residual_tail_applies",
]
