"""Model complexity: trainable parameters and real forward MACs/FLOPs.

FLOPs come from PyTorch's own counter (:class:`torch.utils.flop_counter.FlopCounterMode`), which
counts convolutions, transposed convolutions and matrix products at 2 FLOPs per multiply-add;
MACs = FLOPs / 2. The count is taken in eval mode on one ``1 x C x S x S`` input on the meta
device, so no memory is allocated and no arithmetic is done.

This is *not* what the FocusNet++ paper's Table 2 "FLOPs" column measures: that column counts the
TF1 weight-initialiser operations, not compute (implementation spec §5.3).
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from focusnet.models import create_model


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters.

    Example:
        >>> count_parameters(torch.nn.Conv2d(3, 8, 3))
        224
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: torch.nn.Module, size: int | tuple[int, int] = 256, in_channels: int = 3) -> int:
    """Forward FLOPs of ``model`` on one ``1 x in_channels x H x W`` input (eval mode).

    Example:
        >>> count_flops(torch.nn.Conv2d(3, 8, 1, bias=False), size=4)
        768
    """
    h, w = (size, size) if isinstance(size, int) else size
    was_training = model.training
    model.eval()
    try:
        with torch.device("meta"):
            meta_model = _to_meta(model)
            x = torch.empty(1, in_channels, h, w)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            meta_model(x)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def _to_meta(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    clone = copy.deepcopy(model) if not any(p.is_meta for p in model.parameters()) else model
    return clone.to("meta")


def measure(name: str, size: int = 256, in_channels: int = 3, **kwargs: Any) -> dict[str, Any]:
    """Parameters, MACs and FLOPs of a registered model at ``1 x in_channels x size x size``.

    Example:
        >>> r = measure("focusnetpp", preset="paper")
        >>> r["params"], round(r["macs"] / 1e9, 2)
        (1487941, 4.35)
    """
    with torch.device("meta"):
        model = create_model(name, in_channels=in_channels, **kwargs)
    params = count_parameters(model)
    flops = count_flops(model, size=size, in_channels=in_channels)
    return {
        "model": name,
        "preset": kwargs.get("preset"),
        "input": [1, in_channels, size, size],
        "params": params,
        "macs": flops // 2,
        "flops": flops,
        "counter": "torch.utils.flop_counter.FlopCounterMode (conv/matmul, 2 FLOPs per MAC), eval mode",
    }
