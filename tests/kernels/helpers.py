"""Shared helpers of the kernel tests."""
from __future__ import annotations

import torch


def random_bn(channels: int, seed: int = 0) -> torch.nn.BatchNorm2d:
    """A training-mode BatchNorm2d with random affine parameters and running statistics."""
    bn = torch.nn.BatchNorm2d(channels, momentum=0.1, eps=1e-3)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=gen) * 0.3)
        bn.running_mean.copy_(torch.randn(channels, generator=gen))
        bn.running_var.copy_(torch.rand(channels, generator=gen) + 0.5)
    return bn


def random_instance_norm(channels: int, seed: int = 0) -> torch.nn.InstanceNorm2d:
    """An affine InstanceNorm2d (no running statistics) with random affine parameters."""
    norm = torch.nn.InstanceNorm2d(channels, eps=1e-3, affine=True)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(channels, generator=gen) + 0.5)
        norm.bias.copy_(torch.randn(channels, generator=gen) * 0.3)
    return norm
