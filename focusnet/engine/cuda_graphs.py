"""CUDA graphs for any model: the forward and backward of a training step, and the inference forward.

On a GPU, FocusNet++'s step is bound by kernel launches, not arithmetic: hundreds of small
kernels (grouped 3x3 convolutions, BatchNorms, SE, residual sums) each cost a few microseconds of
Python and driver time, and the GPU idles in between (issue 19). A CUDA graph records every kernel of
a forward (and of its backward) once and replays them with one launch.

:class:`GraphedModel` wraps a model without changing it (no new parameters, same ``state_dict``):

* **training** (``model.training`` and autograd on): per input shape, the forward and the backward
  are captured as two graphs behind one ``torch.autograd.Function`` (the approach of
  ``torch.cuda.make_graphed_callables``): the loss, the optimiser step, gradient hooks (DDP's
  all-reduce, gradient clipping) and AMP stay outside, eager, so the training loop is unchanged;
* **inference** (eval mode, no autograd): per input shape, the forward is one graph;
* everything else (CPU tensors, a new shape beyond ``max_shapes``, an input that needs its own
  gradient, eval mode with autograd, train mode without it, ``torch.jit`` tracing, a model whose
  capture failed) runs the model eagerly, as if unwrapped.

Outputs and gradients are those of the eager model (the same kernels run); each call returns fresh
tensors (copies of the graph's static outputs), so results may be kept across calls and gradients
accumulate correctly. The warm-up iterations that precede a capture run on the real first batch
and leave BatchNorm's running statistics as they found them. Under autocast the capture runs with
the autocast cache off (a requirement of graph capture); the autocast state is part of the key.
Each shape's capture has its own memory pool (the backward graph shares the forward's), so graphs
of different shapes and modes never write into each other's buffers.
Parameters must stay where they are: moving the model (``.to()``) or replacing a parameter
invalidates the graphs, which are then captured again.

Example:
    >>> import torch.nn as nn
    >>> graphed = GraphedModel(nn.Conv2d(3, 1, 3, padding=1))   # on CPU: runs the model eagerly
    >>> graphed(torch.randn(2, 3, 8, 8)).shape
    torch.Size([2, 1, 8, 8])
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from focusnet.vocab import CUDA_GRAPHS, DEVICES, PRECISIONS

__all__ = ["GraphedModel", "graph_mode_applies", "graphs_supported"]


Mode = Literal["train", "infer"]


def graphs_supported() -> bool:
    """Whether this PyTorch can capture CUDA graphs on this machine (a CUDA device is present)."""
    return bool(torch.cuda.is_available()) and hasattr(torch.cuda, "CUDAGraph")


def graph_mode_applies(setting: str, device: str, precision: str = "32-true", world_size: int = 1) -> tuple[bool, str]:
    """Whether ``focusnet train``/``benchmark`` graph the model, and why (one owner of the rule).

    ``auto`` (the default) graphs single-process CUDA runs in ``32-true`` and ``bf16-mixed``;
    ``on`` also tries several processes (DDP: the all-reduce stays outside the graphs); ``off``
    never graphs. ``16-mixed`` is never graphed (its gradient scaler is not part of the capture).

    Example:
        >>> graph_mode_applies("auto", "cpu")
        (False, 'not a CUDA device')
        >>> graph_mode_applies("off", "cuda")
        (False, 'cuda_graphs is off')
    """
    setting = CUDA_GRAPHS.normalize(setting, key="cuda_graphs")
    if setting == "off":
        return False, "cuda_graphs is off"
    if not str(DEVICES.aliases.get(device, device)).startswith("cuda"):  # gpu is cuda's old spelling
        return False, "not a CUDA device"
    if PRECISIONS.aliases.get(precision, precision) not in ("32-true", "bf16-mixed"):
        return False, f"precision {precision} is not graphed (32-true and bf16-mixed are)"
    if world_size > 1 and setting == "auto":
        return False, "several processes: set cuda_graphs=on to graph under DDP"
    return True, "CUDA graphs on"


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype | None]:
    if torch.is_autocast_enabled(device_type):
        return True, torch.get_autocast_dtype(device_type)
    return False, None


@dataclass(frozen=True)
class _Key:
    """What a capture is specific to: a call with another key runs another graph (or eagerly)."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    mode: Mode
    autocast: tuple[bool, torch.dtype | None]
    inference_mode: bool


class _Capture:
    """One input shape's graphs: the forward (and, for training, the backward) with static buffers."""

    def __init__(self, model: nn.Module, sample: torch.Tensor, key: _Key, warmup: int) -> None:
        self.key = key
        self.params = [p for p in model.parameters() if p.requires_grad] if key.mode == "train" else []
        self.static_in = torch.empty_strided(sample.shape, sample.stride(), dtype=sample.dtype, device=sample.device)
        self.static_in.copy_(sample)
        autocast_on, autocast_dtype = key.autocast
        device_type = sample.device.type

        def ctx():
            return torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_on, cache_enabled=False)

        buffers = [b.detach().clone() for b in model.buffers()]
        rng = torch.cuda.get_rng_state(sample.device)
        side = torch.cuda.Stream(sample.device)
        side.wait_stream(torch.cuda.current_stream(sample.device))
        with torch.cuda.stream(side):
            for _ in range(warmup):  # lazy initialisation (cuDNN plans, workspaces) outside the capture
                with ctx():
                    out = model(self.static_in)
                if key.mode == "train":
                    torch.autograd.grad(out, self.params, torch.ones_like(out), allow_unused=True)
                del out
        torch.cuda.current_stream(sample.device).wait_stream(side)
        with torch.no_grad():  # the warm-up must not count as training
            for b, saved in zip(model.buffers(), buffers):
                b.copy_(saved)
        torch.cuda.set_rng_state(rng, sample.device)

        self.forward_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.forward_graph), ctx():  # a private memory pool per capture
            self.static_out = model(self.static_in)
        self.backward_graph: torch.cuda.CUDAGraph | None = None
        self.static_grads: tuple[torch.Tensor | None, ...] = ()
        if key.mode == "train":
            self.static_grad_out = torch.empty_like(self.static_out)
            self.backward_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.backward_graph, pool=self.forward_graph.pool()):
                self.static_grads = torch.autograd.grad(
                    self.static_out, self.params, self.static_grad_out, allow_unused=True
                )
            # the backward graph holds the saved activations' addresses (this capture's private
            # pool, which nothing else allocates from); the autograd graph itself is no longer
            # needed, and keeping it would pin the parameters' AccumulateGrad nodes to the capture
            # stream (a stream synchronisation per parameter in every later backward)
            self.static_out = self.static_out.detach()

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        self.static_in.copy_(x)
        self.forward_graph.replay()
        return self.static_out.clone()


class _GraphedTrainStep(torch.autograd.Function):
    """Forward and backward of one :class:`_Capture`, seen by autograd as one differentiable op of
    the parameters (their gradients leave as fresh tensors, so hooks and accumulation behave)."""

    @staticmethod
    def forward(ctx, capture: _Capture, x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        capture.static_in.copy_(x)
        capture.forward_graph.replay()
        ctx.capture = capture
        return capture.static_out.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        capture: _Capture = ctx.capture
        capture.static_grad_out.copy_(grad)
        assert capture.backward_graph is not None
        capture.backward_graph.replay()
        grads = tuple(None if g is None else g.clone() for g in capture.static_grads)
        return (None, None) + grads


class GraphedModel(nn.Module):
    """Run ``model`` through CUDA graphs where it can (see the module docstring).

    The wrapped model stays a submodule named ``model``; use :attr:`model` for its ``state_dict``.

    Args:
        model: any ``nn.Module`` taking one tensor and returning one tensor.
        max_shapes: graphs kept per mode (training / inference); a further shape runs eagerly.
        warmup: eager iterations on the first batch of a shape before its capture.

    Example:
        >>> graphed = GraphedModel(nn.Linear(4, 2), max_shapes=2)
        >>> graphed.stats
        {'captured': 0, 'replayed': 0, 'eager': 0}
    """

    def __init__(self, model: nn.Module, max_shapes: int = 4, warmup: int = 3) -> None:
        super().__init__()
        self.model = model
        self.max_shapes = int(max_shapes)
        self.warmup = int(warmup)
        self._captures: dict[_Key, _Capture | None] = {}
        self._params_at_capture: tuple[int, ...] = ()
        self.stats = {"captured": 0, "replayed": 0, "eager": 0}

    def _key(self, x: torch.Tensor) -> _Key | None:
        """The capture key of this call, or None where it must run eagerly."""
        if not isinstance(x, torch.Tensor) or x.device.type != "cuda" or not graphs_supported():
            return None
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.cuda.is_current_stream_capturing():
            return None
        grad = torch.is_grad_enabled()
        if self.model.training and grad and not x.requires_grad:
            mode: Mode = "train"
        elif not self.model.training and not grad:
            mode = "infer"
        else:
            return None
        return _Key(
            tuple(x.shape), tuple(x.stride()), x.dtype, mode, _autocast_state("cuda"), torch.is_inference_mode_enabled()
        )

    def _check_params(self) -> None:
        """Drop every graph when a parameter or buffer moved (``.to()``, a replaced tensor)."""
        now = tuple(t.data_ptr() for t in self.model.parameters()) + tuple(b.data_ptr() for b in self.model.buffers())
        if now != self._params_at_capture:
            self._captures.clear()
            self._params_at_capture = now

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = self._key(x)
        if key is None:
            self.stats["eager"] += 1
            return self.model(x)
        self._check_params()
        if key not in self._captures:
            same_mode = sum(1 for k in self._captures if k.mode == key.mode)
            if same_mode >= self.max_shapes:
                self.stats["eager"] += 1
                return self.model(x)
            self._captures[key] = self._capture(x, key)
        capture = self._captures[key]
        if capture is None:
            self.stats["eager"] += 1
            return self.model(x)
        self.stats["replayed"] += 1
        if key.mode == "infer":
            return capture.infer(x)
        return _GraphedTrainStep.apply(capture, x, *capture.params)

    def _capture(self, x: torch.Tensor, key: _Key) -> _Capture | None:
        try:
            capture = _Capture(self.model, x, key, self.warmup)
        except Exception as exc:  # an op that cannot be captured: run this shape eagerly from now on
            warnings.warn(
                f"CUDA graph capture of {type(self.model).__name__} failed ({type(exc).__name__}: {exc}); "
                "running it without graphs (set cuda_graphs=off to silence this)",
                RuntimeWarning,
                stacklevel=3,
            )
            torch.cuda.synchronize(x.device)
            return None
        self.stats["captured"] += 1
        return capture
