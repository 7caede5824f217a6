"""The ResGANet block of FocusNet++ (Kaul et al., ISBI 2021, §2.1; implementation spec §1.2).

Modules: :mod:`.block` (the block and its executions), :mod:`.reference` (the paper, branch by
branch), :mod:`.execution` (the switch and the one rule that picks an execution), :mod:`.ops`
(the operations the fast executions are made of), :mod:`.tail` (the block's end, PyTorch or C).

The block is written twice:

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

**Fast path** (issue 7; on by default; the :func:`fast_path` context manager or the environment
variable ``FOCUSNET_FAST_PATH=0`` turn it off). On
CPU and CUDA tensors, outside tracing, scripting and ONNX export, :class:`ResGANet` (and
:class:`~focusnet.models.focusnetpp.FocusNetPP`) run an *execution strategy* of the same maths,
from the same parameters and buffers (state_dict unchanged):

* activations are kept in ``channels_last`` (the model converts its input once), where oneDNN's
  grouped 3x3 convolution, BatchNorm and max-pooling are much faster than in NCHW;
* every 1x1 convolution is one matrix product ``(N*H*W, C_in) @ W^T + b`` on the NHWC view
  (:func:`conv1x1_cl`). PyTorch otherwise sends a single-threaded, batch < 16 1x1 convolution to
  its slow im2col path. On CUDA it stays a cuDNN convolution (``channels_last``), whose weight
  gradient is split over the pixels where cuBLAS's is not. Grouped 1x1 convolutions use a
  block-diagonal weight built on the fly from the same parameter; the attention gate reads the
  whole trunk output with zero columns for the feature groups, so no channel slice is ever copied;
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

from focusnet.models.resganet.block import ResGANet
from focusnet.models.resganet.execution import (
    Strategy,
    choose_strategy,
    fast_path,
    fast_path_enabled,
    set_fast_path,
    use_fast_path,
    use_fused_inference,
)
from focusnet.models.resganet.ops import bn_affine, conv1x1_cl, conv_act, conv_train
from focusnet.models.resganet.reference import ResGANetReference, resganet_from_reference
from focusnet.models.resganet.tail import block_tail, tail_torch

__all__ = [
    "ResGANet",
    "ResGANetReference",
    "Strategy",
    "block_tail",
    "bn_affine",
    "choose_strategy",
    "conv1x1_cl",
    "conv_act",
    "conv_train",
    "fast_path",
    "fast_path_enabled",
    "resganet_from_reference",
    "set_fast_path",
    "tail_torch",
    "use_fast_path",
    "use_fused_inference",
]
