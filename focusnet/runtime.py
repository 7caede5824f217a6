"""Process-level settings that make CPU training and inference faster without changing any numbers.

On Linux, glibc's ``malloc`` serves every allocation above its mmap threshold (at most 32 MiB) with a
fresh ``mmap`` and gives it back with ``munmap`` when the tensor is freed. A FocusNet++ activation at
256x256 (8 x 32 x 256 x 256 fp32 = 64 MiB) is above it, so every step page-faults its activations in
again: on the 2-core development VM that was about a third of a training step's wall time
(``sys`` time 35 s of a 113 s benchmark). :func:`tune_cpu_allocator` tells glibc to serve large
blocks from the heap and to keep freed memory for reuse, which is what a caching allocator does on
a GPU. FocusNet++ (memory-bound, many full-resolution activations) gains more than U-Net, but both
gain: ``focusnet benchmark`` applies it to every model it measures.

The cost: the process keeps its peak memory until it exits (its RSS does not shrink after a step).
That suits a training, evaluation or benchmark process; the ``focusnet`` command applies it for the
commands that run models, and :func:`focusnet.create_model` applies it too, so a user's own training
loop gets the CLI's speed. ``FOCUSNET_ALLOCATOR_TUNING=0`` turns it off everywhere, and a program
that calls ``tune_cpu_allocator(False)`` before building a model keeps glibc's default.

OpenMP's wait policy: PyTorch's CPU operators share their work out on libgomp's thread pool, and by
default a thread that finishes first spins (up to 300,000 iterations) before it sleeps. Beside other
busy processes the thread it waits for may not be running, and every operator can then cost a
scheduler time slice; a FocusNet++ forward pass runs about a thousand operators (a U-Net a few
dozen). Beside two busy processes on the 2-core development VM (2 threads, 128x128), a two-member
`lite` inference pass of 4 images took 8.9 s (0.2 to 17.5 s over two rounds) with libgomp's default
and 0.13 s with ``OMP_WAIT_POLICY=PASSIVE``, and a `paper` training step of 8 images 4.6 s against
0.8 s; on the idle machine PASSIVE costs up to 8% per training step and up to 11% per inference pass
(``benchmarks/bench_wait_policy.py``, ``benchmarks/RESULTS.md`` session 27).
:func:`set_omp_wait_policy`, run when ``focusnet`` is imported, sets ``OMP_WAIT_POLICY=PASSIVE`` for
the process if torch is not loaded yet (libgomp reads it once, when torch loads it) and the user set
no OpenMP wait variable; ``FOCUSNET_OMP_WAIT=default`` keeps libgomp's own.

Example:
    >>> from focusnet.runtime import allocator_tuned, tune_cpu_allocator
    >>> tune_cpu_allocator() == allocator_tuned()
    True
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Container, MutableMapping

__all__ = [
    "ENV_VAR",
    "FAST_PATH_ENV_VAR",
    "KERNEL_MARCH_ENV_VAR",
    "NATIVE_KERNELS_ENV_VAR",
    "OMP_WAIT_ENV_VAR",
    "allocator_tuned",
    "env_flag",
    "fast_path_default",
    "kernel_march",
    "native_kernels_enabled",
    "omp_wait_policy",
    "set_omp_wait_policy",
    "tune_cpu_allocator",
]

# The environment switches, read here and nowhere else (FOCUSNET_DATA, where the data lives, is
# focusnet.data.paths's one setting).
ENV_VAR = "FOCUSNET_ALLOCATOR_TUNING"
"""``0`` keeps glibc's default allocator behaviour (:func:`tune_cpu_allocator`)."""
FAST_PATH_ENV_VAR = "FOCUSNET_FAST_PATH"
"""``0`` runs ResGANet / FocusNet++ layer by layer (:mod:`focusnet.models.resganet.execution`)."""
NATIVE_KERNELS_ENV_VAR = "FOCUSNET_NATIVE_KERNELS"
"""``0`` uses PyTorch's operators instead of the native CPU training kernels (:mod:`focusnet.kernels`)."""
KERNEL_MARCH_ENV_VAR = "FOCUSNET_KERNEL_MARCH"
"""The ``-march`` the native kernels are built for (default ``native``)."""
OMP_WAIT_ENV_VAR = "FOCUSNET_OMP_WAIT"
"""``default`` keeps libgomp's own wait policy instead of ``OMP_WAIT_POLICY=PASSIVE`` (:func:`set_omp_wait_policy`)."""
_OMP_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # the user's own choice, if either is set
_OFF_WORDS = frozenset({"0", "false", "no", "off"})  # what turns an environment switch off

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_TOP_PAD_BYTES = 256 * 1024 * 1024

_applied = False
_declined = False  # tune_cpu_allocator(False) was called: later default calls leave it off


def env_flag(name: str, default: bool = True) -> bool:
    """A boolean switch from the environment: ``0``, ``false``, ``no`` or ``off`` mean False.

    Example:
        >>> env_flag("FOCUSNET_SOME_UNSET_SWITCH")
        True
    """
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in _OFF_WORDS


def fast_path_default() -> bool:
    """The fast path's default: on unless ``FOCUSNET_FAST_PATH`` says ``0``/``false``/``no``/``off``.

    Example:
        >>> isinstance(fast_path_default(), bool)
        True
    """
    return env_flag(FAST_PATH_ENV_VAR)


def native_kernels_enabled() -> bool:
    """Whether the native CPU training kernels may be built and used (``FOCUSNET_NATIVE_KERNELS``)."""
    return env_flag(NATIVE_KERNELS_ENV_VAR)


def kernel_march() -> str:
    """The ``-march`` the native kernels are built for: ``$FOCUSNET_KERNEL_MARCH``, or ``native``.

    Example:
        >>> kernel_march() == (os.environ.get("FOCUSNET_KERNEL_MARCH") or "native")
        True
    """
    return os.environ.get(KERNEL_MARCH_ENV_VAR) or "native"


def set_omp_wait_policy(
    environ: MutableMapping[str, str] | None = None, modules: Container[str] | None = None
) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` (this process's environment) so that idle OpenMP
    threads sleep at once instead of spinning (see the module docstring for why and what it costs).

    Nothing is changed when torch is already imported (``"torch" in modules``: libgomp has read its
    variables then, and child processes would differ from this one), when ``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT`` is set (the user's choice), or when ``FOCUSNET_OMP_WAIT`` is ``default`` (or
    ``0``/``false``/``no``/``off``). ``import focusnet`` calls it before it imports torch.

    Returns:
        Whether it set the variable.

    Example:
        >>> env = {}
        >>> set_omp_wait_policy(env, modules=()), env
        (True, {'OMP_WAIT_POLICY': 'PASSIVE'})
        >>> set_omp_wait_policy({"FOCUSNET_OMP_WAIT": "default"}, modules=())
        False
        >>> set_omp_wait_policy({}, modules=("torch",))
        False
    """
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    choice = environ.get(OMP_WAIT_ENV_VAR, "passive").strip().lower()
    if "torch" in modules or any(v in environ for v in _OMP_WAIT_VARS):
        return False
    if choice == "default" or choice in _OFF_WORDS:
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def omp_wait_policy() -> str:
    """How this process's idle OpenMP threads wait, as its environment says (for the record of a run).

    Example:
        >>> omp_wait_policy() in ("PASSIVE", "ACTIVE", "libgomp default") or omp_wait_policy().startswith("GOMP")
        True
    """
    policy = os.environ.get("OMP_WAIT_POLICY")
    if policy:
        return policy.upper()
    spin = os.environ.get("GOMP_SPINCOUNT")
    return f"GOMP_SPINCOUNT={spin}" if spin else "libgomp default"


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    gnu_get_libc_version = getattr(libc, "gnu_get_libc_version", None)
    if gnu_get_libc_version is None or not hasattr(libc, "mallopt"):  # musl and others
        return None
    return libc


def tune_cpu_allocator(enable: bool | None = None) -> bool:
    """Keep large CPU tensors in glibc's heap instead of mmap-ing and unmapping them every step.

    Args:
        enable: ``True`` or ``False`` to decide here (``False`` also keeps later default calls,
            such as :func:`focusnet.create_model`'s, from applying it); ``None`` (default) applies it
            unless the environment variable ``FOCUSNET_ALLOCATOR_TUNING`` is ``0`` or it was declined.

    Returns:
        Whether the setting is in effect for this process (it cannot be undone; ``False`` on
        non-glibc systems, where nothing is changed).

    Example:
        >>> applied = tune_cpu_allocator()  # what the ``focusnet`` command does
        >>> applied in (True, False)
        True
    """
    global _applied, _declined
    if enable is None:
        enable = env_flag(ENV_VAR) and not _declined
    elif not enable and not _applied:
        _declined = True
    if not enable or _applied:
        return _applied
    libc = _libc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # -1: never trim the heap top (mallopt(3)); 0: never mmap; pad heap growth to 256 MiB.
    ok = mallopt(_M_MMAP_MAX, 0) == 1
    ok = ok and mallopt(_M_TRIM_THRESHOLD, -1) == 1
    ok = ok and mallopt(_M_TOP_PAD, _TOP_PAD_BYTES) == 1
    _applied = bool(ok)
    return _applied


def allocator_tuned() -> bool:
    """Whether :func:`tune_cpu_allocator` is in effect in this process.

    Example:
        >>> isinstance(allocator_tuned(), bool)
        True
    """
    return _applied
