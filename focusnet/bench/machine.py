"""The machine a benchmark runs on: CPU model and flags, bf16 support, torch's threads and version,
load average; recorded with every result so that figures from different machines are not mixed.

Example:
    >>> info = machine_info("cpu")
    >>> info["logical_cpus"] >= 1 and isinstance(info["bf16"]["native"], bool)
    True
"""
from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from focusnet.runtime import omp_wait_policy

__all__ = ["bf16_support", "load_average", "machine_info"]


def _cpuinfo() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_model": platform.processor() or platform.machine(), "cpu_flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and info["cpu_model"] in ("", platform.machine(), platform.processor()):
            info["cpu_model"] = value.strip()
        elif key in ("flags", "Features") and not info["cpu_flags"]:
            info["cpu_flags"] = value.split()
    return info


def bf16_support(device: str = "cpu") -> dict[str, Any]:
    """Whether bfloat16 runs natively: CUDA capability, or on CPU the ``avx512_bf16`` / ``amx_bf16``
    flags (x86) and oneDNN's own check. Non-native bf16 still runs, emulated and slowly.

    Example:
        >>> sorted(bf16_support("cpu"))
        ['cpu_flags', 'mkldnn_bf16_supported', 'native']
    """
    if device.startswith("cuda"):
        ok = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        return {"native": ok, "how": "torch.cuda.is_bf16_supported()"}
    flags = set(_cpuinfo()["cpu_flags"])
    cpu_flags = sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile", "bf16"})  # "bf16": Arm
    mkldnn = None
    with contextlib.suppress(Exception):
        mkldnn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    native = bool({"avx512_bf16", "amx_bf16", "bf16"} & flags) if flags else bool(mkldnn)
    return {"native": native, "cpu_flags": cpu_flags, "mkldnn_bf16_supported": mkldnn}


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU model, logical CPUs, torch threads and version, bf16 support, load average.

    Example:
        >>> machine_info()["torch_version"] == torch.__version__
        True
    """
    cpu = _cpuinfo()
    info: dict[str, Any] = {
        "cpu_model": cpu["cpu_model"],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": omp_wait_policy(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu_capability": _safe(lambda: torch.backends.cpu.get_cpu_capability()),
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "bf16": bf16_support(device),
        "load_average": load_average(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda_version"] = torch.version.cuda
    return info


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``None`` where the system has none).

    Example:
        >>> load_average() is None or len(load_average()) == 3
        True
    """
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - informational only
        return None

