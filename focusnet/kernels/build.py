"""Building and loading the native kernels' shared library (``bn_leaky_relu.c``, ``residual_tail.c``).

Compiled on first use with the system C compiler and cached (see :mod:`focusnet.kernels`); every
kernel module calls :func:`native_library` and passes tensors by :func:`_ptr`.

Example:
    >>> lib = native_library()
    >>> lib is None or hasattr(lib, "fn_in_lrelu_forward")
    True
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from focusnet.runtime import KERNEL_MARCH_ENV_VAR, NATIVE_KERNELS_ENV_VAR, kernel_march, native_kernels_enabled

__all__ = ["ENV_VAR", "MARCH_ENV_VAR", "bn_leaky_relu_available", "kernel_march", "native_library"]

ENV_VAR = NATIVE_KERNELS_ENV_VAR
_SOURCES = (Path(__file__).with_name("bn_leaky_relu.c"), Path(__file__).with_name("residual_tail.c"))
MARCH_ENV_VAR = KERNEL_MARCH_ENV_VAR
# -fno-trapping-math: the kernels' LeakyReLU selects (z > 0 ? z : z * slope) are if-converted only
# when the compiler may evaluate both sides; without it GCC leaves every such loop scalar unless
# AVX-512 masking saves it, so on AVX2 (and ARM) CPUs the normalise and backward passes ran 3-4x
# slower. The kernels never read floating-point exception flags; NaN and infinity propagate as before.
_FLAGS = ["-O3", "-fno-trapping-math", "-shared", "-fPIC", "-fopenmp", "-std=c99"]
_LIB: ctypes.CDLL | None = None
_TRIED = False
_ERROR: str | None = None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "focusnet" / "kernels"


def _flags() -> list[str]:
    return [*_FLAGS, f"-march={kernel_march()}"]


def _compile(sources: tuple[Path, ...], target: Path, compiler: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        command = [compiler, *_flags(), *map(str, sources), "-o", tmp, "-lm"]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
        except subprocess.CalledProcessError:  # no OpenMP here: the same kernel, single-threaded
            command.remove("-fopenmp")
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
        os.replace(tmp, target)  # atomic: concurrent processes never load a half-written file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def native_library() -> ctypes.CDLL | None:
    """The compiled kernel library (built and cached on first call), or ``None`` if unavailable.

    Example:
        >>> lib = native_library()
        >>> lib is None or hasattr(lib, "fn_bn_lrelu_forward")
        True
    """
    global _LIB, _TRIED, _ERROR
    if not native_kernels_enabled():
        return None
    if _TRIED:
        return _LIB
    _TRIED = True
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    missing = [src for src in _SOURCES if not src.is_file()]
    if compiler is None or missing:
        _ERROR = "no C compiler (cc/gcc) found" if compiler is None else f"missing {missing[0]}"
        return None
    source = b"".join(src.read_bytes() for src in _SOURCES)
    key = hashlib.sha256(
        source + " ".join([compiler, *_flags(), platform.machine(), platform.node()]).encode()
    ).hexdigest()[:16]
    target = _cache_dir() / f"focusnet_kernels-{key}.so"
    try:
        if not target.is_file():
            _compile(_SOURCES, target, compiler)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        _ERROR = f"could not build {', '.join(src.name for src in _SOURCES)}: {detail.strip()[:300]}"
        return None
    p, i64, f32, f64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_double, ctypes.c_int
    signatures = {
        "fn_bn_lrelu_forward": [p, p, i64, i64, p, p, f64, f32, p, p, p, i32],
        "fn_bn_lrelu_backward": [p, p, p, i64, i64, p, p, p, p, f32, p, p, i32],
        "fn_in_lrelu_forward": [p, p, i64, i64, i64, p, p, f64, f32, p, p, p, i32],
        "fn_in_lrelu_backward": [p, p, p, i64, i64, i64, p, p, p, p, f32, p, p, i32],
        "fn_nc_sums": [p, i64, i64, i64, p, p, p, i32],
        "fn_tail_forward": [p, p, p, p, p, i64, i64, i64, f32, i32],
        "fn_tail_grad_sums": [p, p, p, p, i64, i64, i64, f32, p, p, i32],
        "fn_tail_backward": [p, p, p, p, p, p, p, p, p, i64, i64, i64, f32, i32],
    }
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, i32
    _LIB = lib
    return _LIB


def bn_leaky_relu_available() -> bool:
    """Whether the fused BatchNorm + LeakyReLU kernel can run here (compiling it if needed).

    Example:
        >>> isinstance(bn_leaky_relu_available(), bool)
        True
    """
    return native_library() is not None


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()
