"""Speed and memory benchmark: training and inference throughput against U-Net, in the same run.

``run_benchmark`` measures, for each model (and preset):

* **training throughput** (images/s): one step is forward + :class:`~focusnet.losses.ALLHybridLoss`
  + backward + Adam step, in train mode (``optimizer.zero_grad(set_to_none=True)`` first);
* **inference throughput** (images/s): eval mode, ``torch.inference_mode()``, forward only
  (``backend="onnxruntime"`` rows run an exported ONNX file in ONNX Runtime instead);
* **peak memory** of each phase: on CPU the resident-set high-water mark (``VmHWM`` in
  ``/proc/self/status``, reset per phase through ``/proc/self/clear_refs``) minus the resident set
  after the model and data were built; on CUDA ``torch.cuda.max_memory_allocated`` minus the
  memory allocated after building;
* **achieved FLOP/s** and its **fraction of the machine's dense-convolution peak**, the FLOP/s of a
  large 3x3 convolution (default 8x128x128x128 -> 128 channels) of the same dtype, device and
  memory format, measured in the same run. Forward FLOPs come from
  :func:`~focusnet.complexity.count_flops` (2 FLOPs per multiply-add, convolutions and matrix
  products only); a training step is counted as 3x the forward FLOPs (forward + gradients of
  inputs and of weights), the usual convention.

Every model runs in its own worker process (``python -m focusnet.bench.worker``), so
peak memory is clean and one model's allocator state cannot slow another. The parent drives the
workers round-robin (conv peak, model A, model B, ..., then again), one at a time so they never
compete for the cores: a load change on a shared machine hits every model about equally. Each row
is then compared with the baseline (U-Net by default) *round by round*: the ratio reported is the
median over repeats of ``model / baseline`` in the same round, with its min and max.

The package, one concern a module: :mod:`~focusnet.bench.specs` (model specs and the check of a
run's inputs), :mod:`~focusnet.bench.machine` (CPU, bf16, load), :mod:`~focusnet.bench.process` and
:mod:`~focusnet.bench.worker` (the two sides of the worker protocol), :mod:`~focusnet.bench.run`
(the round-robin run and its rows) and :mod:`~focusnet.bench.report` (statistics and Markdown).
:mod:`focusnet.engine.benchmark` re-exports the public names.

Example:
    >>> result = run_benchmark([("focusnetpp", "lite")], size=32, batch_size=2, repeats=1,
    ...                        warmup=1, conv_shape=(2, 16, 32, 32))  # doctest: +SKIP
    >>> print(format_markdown(result))  # doctest: +SKIP
"""
from __future__ import annotations

from focusnet.bench.machine import bf16_support, machine_info
from focusnet.bench.report import format_markdown
from focusnet.bench.run import run_benchmark
from focusnet.bench.specs import MONAI_BASICUNET, PRECISIONS, parse_model_spec, parse_model_specs, spec_label
from focusnet.vocab import BACKENDS

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "MONAI_BASICUNET",
    "bf16_support",
    "format_markdown",
    "machine_info",
    "parse_model_spec",
    "parse_model_specs",
    "run_benchmark",
    "spec_label",
]
