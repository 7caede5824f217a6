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

Every model runs in its own worker process (``python -m focusnet.engine.benchmark --worker``), so
peak memory is clean and one model's allocator state cannot slow another. The parent drives the
workers round-robin (conv peak, model A, model B, ..., then again), one at a time so they never
compete for the cores: a load change on a shared machine hits every model about equally. Each row
is then compared with the baseline (U-Net by default) *round by round*: the ratio reported is the
median over repeats of ``model / baseline`` in the same round, with its min and max.

Example:
    >>> result = run_benchmark([("focusnetpp", "lite")], size=32, batch_size=2, repeats=1,
    ...                        warmup=1, conv_shape=(2, 16, 32, 32))  # doctest: +SKIP
    >>> print(format_markdown(result))  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from focusnet.errors import FocusNetError
from focusnet.vocab import BACKENDS, BENCHMARK_PRECISIONS, CUDA_GRAPHS, DEVICES

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

PRECISIONS = BENCHMARK_PRECISIONS  # 32-true, bf16-mixed (the older fp32, bf16 with a FutureWarning)
PHASES = ("inference", "train")
#: Registry-style name of MONAI's BasicUNet (2D, default features) when ``monai`` is installed.
MONAI_BASICUNET = "monai_basicunet"
DEFAULT_CONV_SHAPE = (8, 128, 128, 128)  # batch, channels (in = out), height, width
FLOP_CONVENTION = (
    "forward FLOPs from torch.utils.flop_counter (conv/matmul, 2 FLOPs per multiply-add) x batch; "
    "training step = 3 x forward; conv peak = FLOP/s of one 3x3 'same' convolution "
    "(C -> C channels) of the same dtype, device and memory format"
)

ModelSpec = tuple  # (name, preset | None) or (name, preset | None, backend)


# ------------------------------------------------------------------------------------ model specs
def parse_model_spec(text: str) -> tuple[str, str | None, str]:
    """``"focusnetpp:paper"`` -> ``("focusnetpp", "paper", "torch")``; a ``@backend`` suffix picks
    the inference backend.

    Example:
        >>> parse_model_spec("unet"), parse_model_spec("focusnetpp:lite@onnxruntime")
        (('unet', None, 'torch'), ('focusnetpp', 'lite', 'onnxruntime'))
    """
    text = text.strip()
    backend = "torch"
    if "@" in text:
        text, backend = (s.strip() for s in text.rsplit("@", 1))
    name, _, preset = text.partition(":")
    name, preset = name.strip(), preset.strip()
    if not name:
        raise FocusNetError(f"empty model name in {text!r}; write NAME or NAME:PRESET, e.g. focusnetpp:paper")
    if backend not in BACKENDS:
        raise FocusNetError(f"unknown backend {backend!r} in {text!r}; choose one of: {', '.join(BACKENDS)}")
    return name, (preset or None), backend


def parse_model_specs(text: str) -> list[tuple[str, str | None, str]]:
    """Comma-separated model specs, e.g. ``"focusnetpp:paper,focusnetpp:official,unet"``."""
    specs = [parse_model_spec(part) for part in text.split(",") if part.strip()]
    if not specs:
        raise FocusNetError("no models given; e.g. --models focusnetpp:paper,unet")
    return specs


def _normalise_spec(spec: Any) -> tuple[str, str | None, str]:
    if isinstance(spec, str):
        return parse_model_spec(spec)
    spec = tuple(spec)
    if len(spec) == 2:
        return str(spec[0]), spec[1], "torch"
    if len(spec) == 3:
        if spec[2] not in BACKENDS:
            raise FocusNetError(f"unknown backend {spec[2]!r}; choose one of: {', '.join(BACKENDS)}")
        return str(spec[0]), spec[1], str(spec[2])
    raise FocusNetError(f"model spec must be (name, preset) or (name, preset, backend), got {spec!r}")


def spec_label(name: str, preset: str | None = None, backend: str = "torch") -> str:
    """Row label: ``name[:preset][@backend]`` (``@torch`` is left out).

    Example:
        >>> spec_label("focusnetpp", "paper"), spec_label("unet"), spec_label("unet", None, "onnxruntime")
        ('focusnetpp:paper', 'unet', 'unet@onnxruntime')
    """
    label = name + (f":{preset}" if preset else "")
    return label + (f"@{backend}" if backend != "torch" else "")


# ---------------------------------------------------------------------------------- machine info
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
    flags (x86) and oneDNN's own check. Non-native bf16 still runs, emulated and slowly."""
    import torch

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
    """CPU model, logical CPUs, torch threads and version, bf16 support, load average."""
    import torch

    cpu = _cpuinfo()
    info: dict[str, Any] = {
        "cpu_model": cpu["cpu_model"],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu_capability": _safe(lambda: torch.backends.cpu.get_cpu_capability()),
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "bf16": bf16_support(device),
        "load_average": _loadavg(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda_version"] = torch.version.cuda
    return info


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - informational only
        return None


# ------------------------------------------------------------------------------------- statistics
def _stats(values: Sequence[float]) -> dict[str, Any] | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    if len(vals) >= 2:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    else:
        q1 = q3 = vals[0]
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "q1": q1,
        "q3": q3,
        "n": len(vals),
        "values": vals,
    }


# ----------------------------------------------------------------------------------------- parent
class _Worker:
    """One model (or the conv-peak probe) in its own Python process, driven by JSON lines."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.label = job["label"]
        self.error: str | None = None
        self.setup: dict[str, Any] = {}
        self._log = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "focusnet.engine.benchmark", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self.send(job)

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # reported by receive()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            return {"ok": False, "error": f"worker exited with code {self.proc.returncode}: {self.log_tail()}"}
        return json.loads(line)

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.send(msg)
        return self.receive()

    def log_tail(self, n: int = 1500) -> str:
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().strip()
        return text[-n:] if text else "(no output)"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send({"cmd": "quit"})
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(Exception):
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        self._log.close()


def _check_inputs(
    specs: list[tuple[str, str | None, str]],
    size: int,
    batch_size: int,
    precision: str,
    device: str,
    repeats: int,
    warmup: int,
) -> None:
    from focusnet.models import list_models, list_presets

    PRECISIONS.normalize(precision)
    if size < 1 or batch_size < 1:
        raise FocusNetError(f"size and batch size must be positive, got size={size}, batch size={batch_size}")
    if repeats < 1 or warmup < 0:
        raise FocusNetError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise FocusNetError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
    elif device != "cpu":
        raise FocusNetError(f"unsupported device {device!r}; use cpu or cuda[:N]")
    models = list_models()
    for name, preset, _backend in specs:
        if name == MONAI_BASICUNET:
            continue
        if name not in models:
            raise FocusNetError(
                f"unknown model {name!r}; choose one of: {', '.join(models)} (`focusnet models` lists them)"
            )
        presets = list_presets(name)
        if preset is not None and preset not in presets:
            if presets:
                raise FocusNetError(
                    f"unknown preset {preset!r} for model {name!r}; choose one of: {', '.join(presets)}"
                )
            raise FocusNetError(f"model {name!r} has no presets; write just {name!r}")


def run_benchmark(
    models: Iterable[ModelSpec | str],
    size: int = 256,
    batch_size: int = 8,
    precision: str = "32-true",
    device: str = "cpu",
    channels_last: bool = False,
    compile: bool = False,  # noqa: A002 - the torch name
    repeats: int = 5,
    warmup: int = 2,
    baseline: ModelSpec | str | None = ("unet", None),
    include_monai: bool = False,
    *,
    in_channels: int = 3,
    phases: Sequence[str] = PHASES,
    min_repeat_time: float = 1.0,
    max_iters: int = 50,
    conv_shape: Sequence[int] = DEFAULT_CONV_SHAPE,
    threads: int | None = None,
    seed: int = 0,
    allocator_tuning: bool | None = None,
    cuda_graphs: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark ``models`` against ``baseline`` in one run; returns a JSON-ready dict.

    Args:
        models: ``(name, preset)`` pairs (or ``(name, preset, backend)``, or ``"name:preset"``
            strings); ``backend="onnxruntime"`` rows are inference only and need
            :mod:`focusnet.engine.export` and ``onnxruntime``.
        size: input height and width.
        batch_size: images per step.
        precision: ``"32-true"`` or ``"bf16-mixed"`` (``torch.autocast`` with bfloat16, weights fp32);
            the older ``"fp32"``/``"bf16"`` work with a :class:`FutureWarning`.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        channels_last: models, inputs and the conv probe in ``torch.channels_last``.
        compile: ``torch.compile`` each model (compilation happens in the warm-up).
        repeats: timed repeats per phase; each repeat is ``iters`` steps, with ``iters`` chosen
            from the last warm-up step so a repeat lasts about ``min_repeat_time`` seconds.
        warmup: untimed steps per phase before the repeats (one round-robin round each).
        baseline: the row every other row is divided by; added when not in ``models``.
            ``None``: no ratios.
        include_monai: add MONAI's 2D ``BasicUNet`` when ``monai`` is installed (otherwise a note).
        in_channels: image channels.
        phases: any of ``"inference"``, ``"train"`` (in that order; inference first so its
            memory peak is not hidden by training's).
        min_repeat_time: target seconds per timed repeat.
        max_iters: upper bound of steps per repeat.
        conv_shape: ``(batch, channels, height, width)`` of the 3x3 conv-peak probe.
        threads: ``torch.set_num_threads`` in every worker (default: torch's default).
        seed: seed of weights, inputs and targets.
        allocator_tuning: apply :func:`focusnet.runtime.tune_cpu_allocator` in every worker
            (baseline included); ``None``: unless ``FOCUSNET_ALLOCATOR_TUNING=0``.
        cuda_graphs: ``auto``/``on``: on CUDA, run every model (baseline included) through
            :class:`~focusnet.engine.cuda_graphs.GraphedModel` (forward and backward replayed as CUDA
            graphs), as ``focusnet train`` does; ``off``: eager. Not combined with ``compile``.
        progress: called with one line per finished round (e.g. ``print``).

    Returns:
        ``{"settings", "machine", "conv_peak", "rows", "notes"}``; each row has ``label``, ``model``,
        ``preset``, ``backend``, ``params``, ``forward_flops_per_image``, ``is_baseline``, ``error``
        and per phase (``train``, ``inference``): ``images_per_s`` (median, min, max, q1, q3,
        values), ``ratio_vs_baseline`` (paired per round), ``achieved_flops_per_s``,
        ``fraction_of_conv_peak`` (paired per round), ``peak_memory_mb``, ``peak_rss_mb``.
    """
    specs = [_normalise_spec(s) for s in models]
    base = _normalise_spec(baseline) if baseline is not None else None
    phases = tuple(p for p in PHASES if p in phases)
    if not phases:
        raise FocusNetError(f"phases must include at least one of {', '.join(PHASES)}")
    notes: list[str] = []
    if include_monai:
        import importlib.util

        if importlib.util.find_spec("monai") is None:
            notes.append("MONAI BasicUNet skipped: monai is not installed (pip install monai)")
        elif not any(s[0] == MONAI_BASICUNET for s in specs):
            specs.append((MONAI_BASICUNET, None, "torch"))
    if base is not None and base not in specs:
        specs.append(base)
    seen: set[tuple[str, str | None, str]] = set()
    specs = [s for s in specs if not (s in seen or seen.add(s))]  # type: ignore[func-returns-value]
    precision = PRECISIONS.normalize(precision, stacklevel=2)
    device = DEVICES.normalize(device, stacklevel=2) if device in DEVICES.aliases else device  # gpu -> cuda
    _check_inputs(specs, size, batch_size, precision, device, repeats, warmup)
    cuda_graphs = CUDA_GRAPHS.normalize(cuda_graphs, key="cuda_graphs")
    if len(conv_shape) != 4 or min(conv_shape) < 1:
        raise FocusNetError(f"conv_shape must be (batch, channels, height, width), got {tuple(conv_shape)}")

    settings = {
        "size": size,
        "batch_size": batch_size,
        "in_channels": in_channels,
        "precision": precision,
        "device": device,
        "channels_last": channels_last,
        "compile": compile,
        "repeats": repeats,
        "warmup": warmup,
        "min_repeat_time_s": min_repeat_time,
        "phases": list(phases),
        "baseline": spec_label(*base) if base else None,
        "conv_shape": list(conv_shape),
        "threads": threads,
        "seed": seed,
        "allocator_tuning": allocator_tuning,
        "cuda_graphs": cuda_graphs,
        "train_step": "zero_grad + forward + ALLHybridLoss + backward + Adam(lr=1e-4) step, train mode",
        "inference_step": "eval mode, torch.inference_mode(), forward only",
        "autocast": "torch.autocast(dtype=torch.bfloat16), weights fp32" if precision == "bf16-mixed" else None,
        "memory": (
            "torch.cuda.max_memory_allocated minus allocated after building"
            if device.startswith("cuda")
            else "VmHWM (reset per phase via /proc/self/clear_refs) minus VmRSS after building model and data"
        ),
        "flop_convention": FLOP_CONVENTION,
        "ratio_convention": "median over repeats of (row / baseline) measured in the same round-robin round",
    }
    machine = machine_info(device)
    if precision == "bf16-mixed" and not machine["bf16"]["native"]:
        notes.append("bf16 is not native on this device: it runs emulated and slowly")
    common = {
        "size": size,
        "batch_size": batch_size,
        "in_channels": in_channels,
        "precision": precision,
        "device": device,
        "channels_last": channels_last,
        "compile": compile,
        "threads": threads,
        "seed": seed,
        "allocator_tuning": allocator_tuning,
        "cuda_graphs": cuda_graphs,
    }
    jobs = [{"label": "conv_peak", "kind": "conv", "conv_shape": list(conv_shape), **common}]
    jobs += [
        {"label": spec_label(*s), "kind": "model", "name": s[0], "preset": s[1], "backend": s[2], **common}
        for s in specs
    ]

    started = time.perf_counter()
    workers: list[_Worker] = []
    try:
        for job in jobs:  # start all, then collect: imports overlap
            workers.append(_Worker(job))
        for w in workers:
            reply = w.receive()
            if reply.get("ok"):
                w.setup = reply
            else:
                w.error = reply.get("error", "setup failed")
        for key in ("allocator_tuned", "native_kernels", "cuda_graphs_used"):
            values = {w.setup.get(key) for w in workers if w.setup and key in w.setup}
            settings[key] = values.pop() if len(values) == 1 else None
        conv, model_workers = workers[0], workers[1:]
        timings: dict[str, dict[str, list[float | None]]] = {w.label: {p: [] for p in phases} for w in workers}
        iters: dict[str, dict[str, int]] = {w.label: {} for w in workers}
        memory: dict[str, dict[str, dict[str, Any]]] = {w.label: {} for w in workers}

        for phase in phases:
            active = [conv] + [
                w for w in model_workers if not (phase == "train" and w.job["backend"] != "torch")
            ]
            for w in active:
                if w.error is None:
                    r = w.request({"cmd": "reset_memory"})
                    if not r.get("ok"):
                        w.error = r.get("error")
            for rnd in range(warmup + repeats):
                timed = rnd >= warmup
                for w in active:
                    if w.error is not None:
                        if timed:
                            timings[w.label][phase].append(None)
                        continue
                    step = "conv" if w is conv else phase
                    n = iters[w.label].get(step, 1) if timed else 1
                    r = w.request({"cmd": "run", "phase": step, "iters": n})
                    if not r.get("ok"):
                        w.error = r.get("error")
                        if timed:
                            timings[w.label][phase].append(None)
                        continue
                    if not timed and rnd == warmup - 1:  # calibrate from the last warm-up step
                        per_step = max(r["seconds"], 1e-9)
                        iters[w.label][step] = int(min(max_iters, max(1, math.ceil(min_repeat_time / per_step))))
                    if timed:
                        timings[w.label][phase].append(r["seconds"] / r["iters"])
                if progress is not None:
                    kind = f"repeat {rnd - warmup + 1}/{repeats}" if timed else f"warm-up {rnd + 1}/{warmup}"
                    progress(f"[{time.perf_counter() - started:7.1f}s] {phase} {kind} done")
            for w in active:
                if w.error is None and w is not conv:
                    r = w.request({"cmd": "memory"})
                    if r.get("ok"):
                        memory[w.label][phase] = r
    finally:
        for w in workers:
            w.close()

    # ------------------------------------------------------------------ assemble
    conv_per_step = [t for p in phases for t in timings["conv_peak"][p]]
    conv_flops = conv.setup.get("flops") if conv.error is None else None
    conv_rate = [conv_flops / t if (t and conv_flops) else None for t in conv_per_step]
    conv_peak = {
        "shape": list(conv_shape),
        "flops": conv_flops,
        "flops_per_s": _stats(conv_rate),
        "error": conv.error,
        "iters_per_repeat": iters["conv_peak"].get("conv"),
    }
    base_label = spec_label(*base) if base else None
    rows = []
    for w in model_workers:
        fwd = w.setup.get("flops_per_image")
        row: dict[str, Any] = {
            "label": w.label,
            "model": w.job["name"],
            "preset": w.job["preset"],
            "backend": w.job["backend"],
            "is_baseline": w.label == base_label,
            "params": w.setup.get("params"),
            "forward_flops_per_image": fwd,
            "error": w.error,
        }
        for phase in phases:
            if phase == "train" and w.job["backend"] != "torch":
                row[phase] = None
                continue
            step_s = timings[w.label][phase]
            ips = [batch_size / t if t else None for t in step_s]
            flops_step = (3 if phase == "train" else 1) * fwd * batch_size if fwd else None
            rate = [flops_step / t if (t and flops_step) else None for t in step_s]
            conv_phase = [
                conv_flops / t if (t and conv_flops) else None for t in timings["conv_peak"][phase]
            ]
            frac = [r / c if (r and c) else None for r, c in zip(rate, conv_phase)]
            mem = memory[w.label].get(phase, {})
            row[phase] = {
                "images_per_s": _stats(ips),
                "images_per_s_per_round": ips,
                "seconds_per_step": _stats(step_s),
                "iters_per_repeat": iters[w.label].get(phase),
                "flops_per_step": flops_step,
                "achieved_flops_per_s": _stats(rate),
                "fraction_of_conv_peak": _stats(frac),
                "peak_memory_mb": mem.get("peak_delta_mb"),
                "peak_rss_mb": mem.get("peak_mb"),
                "ratio_vs_baseline": None,
                "ratio_of_medians_vs_baseline": None,
                "ratio_vs_torch": None,
            }
        rows.append(row)
    by_label = {r["label"]: r for r in rows}
    for row in rows:
        for phase in phases:
            cell = row.get(phase)
            if not cell or not cell["images_per_s"]:
                continue
            ref = by_label.get(base_label) if base_label else None
            if ref is not None:
                cell["ratio_vs_baseline"], cell["ratio_of_medians_vs_baseline"] = _paired(cell, ref.get(phase))
            if row["backend"] != "torch":
                eager = by_label.get(spec_label(row["model"], row["preset"]))
                if eager is not None:
                    cell["ratio_vs_torch"], _ = _paired(cell, eager.get(phase))
    machine["load_average_end"] = _loadavg()
    return {
        "settings": settings,
        "machine": machine,
        "conv_peak": conv_peak,
        "rows": rows,
        "notes": notes,
        "elapsed_s": round(time.perf_counter() - started, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _paired(cell: dict[str, Any], ref: dict[str, Any] | None) -> tuple[dict | None, float | None]:
    """Per-round ratios ``cell / ref`` (stats) and the ratio of the medians."""
    if not ref or not ref.get("images_per_s"):
        return None, None
    pairs = [
        x / y
        for x, y in zip(cell["images_per_s_per_round"], ref["images_per_s_per_round"])
        if x is not None and y
    ]
    b = ref["images_per_s"]["median"]
    return _stats(pairs), (cell["images_per_s"]["median"] / b if b else None)


# ---------------------------------------------------------------------------------------- markdown
def _fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _spread(s: dict[str, Any] | None, digits: int = 2, scale: float = 1.0) -> str:
    if not s:
        return "–"
    m, lo, hi = (s[k] * scale for k in ("median", "min", "max"))
    if s["n"] == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def format_markdown(result: dict[str, Any]) -> str:
    """A Markdown summary: settings, machine, conv peak and one table row per model."""
    st, mc, cp = result["settings"], result["machine"], result["conv_peak"]
    phases = st["phases"]
    lines = [
        f"### focusnet benchmark: {st['size']}x{st['size']}, batch {st['batch_size']}, {st['precision']}, "
        f"{st['device']}" + (", channels_last" if st["channels_last"] else "") + (", torch.compile" if st["compile"] else ""),
        "",
        f"- Machine: {mc.get('gpu') or mc['cpu_model']}; {mc['usable_cpus']} usable CPUs, "
        f"{st.get('threads') or mc['torch_threads']} torch threads per model; torch {mc['torch_version']}; "
        f"bf16 {'native' if mc['bf16']['native'] else 'not native'}"
        + (f" ({', '.join(mc['bf16'].get('cpu_flags') or [])})" if mc["bf16"].get("cpu_flags") else ""),
        f"- Load average (1, 5, 15 min): {_loadlist(mc.get('load_average'))} at start, "
        f"{_loadlist(mc.get('load_average_end'))} at end",
        "- CPU allocator tuning (focusnet.runtime, every process): "
        + {True: "on", False: "off"}.get(st.get("allocator_tuned"), "mixed or unknown")
        + "; native training kernels (focusnet.kernels): "
        + {True: "available", False: "unavailable"}.get(st.get("native_kernels"), "unknown")
        + ("; CUDA graphs (focusnet.engine.cuda_graphs): " + {True: "on", False: "off"}.get(st.get("cuda_graphs_used"), "mixed")
           if st["device"].startswith("cuda") else ""),
    ]
    b, c, h, w = cp["shape"]
    if cp.get("flops_per_s"):
        lines.append(
            f"- Conv peak (3x3 conv {b}x{c}x{h}x{w} -> {c}, {st['precision']}): "
            f"{_spread(cp['flops_per_s'], 1, 1e-9)} GFLOP/s (median (min–max) of {cp['flops_per_s']['n']})"
        )
    else:
        lines.append(f"- Conv peak: not measured ({cp.get('error')})")
    lines.append(
        f"- {st['repeats']} repeats after {st['warmup']} warm-up steps, models interleaved round-robin, "
        f"each in its own process; ratios are medians of per-round ratios vs {st['baseline']}"
    )
    lines.append("")
    header = ["model", "params (M)", "GFLOP/img"]
    for p in phases:
        name = "train" if p == "train" else "infer"
        header += [f"{name} img/s", f"{name} x base", f"{name} % conv peak", f"{name} mem MB"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for row in result["rows"]:
        label = row["label"] + (" (baseline)" if row["is_baseline"] else "")
        cells = [
            label,
            _fmt(row["params"] / 1e6 if row["params"] is not None else None, 2),
            _fmt(row["forward_flops_per_image"] / 1e9 if row["forward_flops_per_image"] else None, 2),
        ]
        for p in phases:
            cell = row.get(p)
            if not cell:
                cells += ["–"] * 4
                continue
            ratio = cell["ratio_vs_baseline"]
            ratio_txt = _spread(ratio, 2)
            if cell.get("ratio_vs_torch"):
                ratio_txt += f"; {cell['ratio_vs_torch']['median']:.2f}x torch"
            cells += [
                _spread(cell["images_per_s"], 2),
                ratio_txt,
                _spread(cell["fraction_of_conv_peak"], 1, 100.0),
                _fmt(cell["peak_memory_mb"], 0),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    errors = [r for r in result["rows"] if r["error"]]
    lines.append("")
    lines.append(
        "img/s and ratios: median (min–max) over repeats. GFLOP/img: forward, 2 FLOPs per multiply-add; "
        "a training step counts 3x forward. % conv peak: achieved FLOP/s / same-round conv-peak FLOP/s. "
        "mem MB: peak above the resident size after building model and data"
        + (" (CUDA allocator)." if st["device"].startswith("cuda") else " (RSS high-water mark).")
    )
    for r in errors:
        lines.append(f"- **{r['label']} failed**: {r['error'].splitlines()[0] if r['error'] else ''}")
    for note in result.get("notes", []):
        lines.append(f"- Note: {note}")
    return "\n".join(lines) + "\n"


def _loadlist(v: list[float] | None) -> str:
    return "n/a" if not v else ", ".join(f"{x:.2f}" for x in v)


# ----------------------------------------------------------------------------------------- worker
class _Bench:
    """State of one worker: the model (or conv probe), its data, optimizer and loss."""

    def __init__(self, job: dict[str, Any]) -> None:
        import torch

        self.job = job
        from focusnet.runtime import tune_cpu_allocator

        self.allocator_tuned = tune_cpu_allocator(job.get("allocator_tuning"))
        if job.get("threads"):
            torch.set_num_threads(int(job["threads"]))
        torch.manual_seed(job["seed"])
        self.device = torch.device(job["device"])
        self.cuda = self.device.type == "cuda"
        self.fmt = torch.channels_last if job["channels_last"] else torch.contiguous_format
        self.bf16 = job["precision"] == "bf16-mixed"
        self.hwm_reset_ok = True
        self._compiled: set[str] = set()
        if job["kind"] == "conv":
            self._setup_conv(job)
        else:
            self._setup_model(job)
        self.info["allocator_tuned"] = self.allocator_tuned
        from focusnet.kernels import bn_leaky_relu_available

        self.info["native_kernels"] = bn_leaky_relu_available()
        self._sync()
        self.base = self._memory_now()

    # -- set-up
    def _setup_conv(self, job: dict[str, Any]) -> None:
        import torch

        b, c, h, w = job["conv_shape"]
        dtype = torch.bfloat16 if self.bf16 else torch.float32
        self.conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).to(self.device, dtype, memory_format=self.fmt)
        self.conv.eval()
        self.x = torch.randn(b, c, h, w, device=self.device, dtype=dtype).contiguous(memory_format=self.fmt)
        self.info = {"flops": 2 * b * c * c * 9 * h * w, "params": c * c * 9}

    def _build(self, job: dict[str, Any]):
        if job["name"] == MONAI_BASICUNET:
            from monai.networks.nets import BasicUNet

            return BasicUNet(spatial_dims=2, in_channels=job["in_channels"], out_channels=1)
        from focusnet.models import create_model

        kwargs: dict[str, Any] = {"in_channels": job["in_channels"]}
        if job["preset"] is not None:
            kwargs["preset"] = job["preset"]
        return create_model(job["name"], **kwargs)

    def _setup_model(self, job: dict[str, Any]) -> None:
        import torch

        from focusnet.complexity import count_flops, count_parameters
        from focusnet.engine.cuda_graphs import GraphedModel, graph_mode_applies
        from focusnet.losses import ALLHybridLoss

        model = self._build(job)
        b, s, c = job["batch_size"], job["size"], job["in_channels"]
        self.info = {
            "params": count_parameters(model),
            "flops_per_image": count_flops(model, size=s, in_channels=c),
        }
        self.model = model.to(self.device, memory_format=self.fmt)
        self.x = torch.rand(b, c, s, s, device=self.device).contiguous(memory_format=self.fmt)
        self.y = (torch.rand(b, 1, s, s, device=self.device) > 0.7).float()
        self.loss_fn = ALLHybridLoss()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.fn = torch.compile(self.model) if job["compile"] else self.model
        graphs, _ = graph_mode_applies(job.get("cuda_graphs", "auto"), job["device"], job["precision"])
        graphs = graphs and not job["compile"] and job["backend"] == "torch"
        self.info["cuda_graphs_used"] = graphs
        if graphs:
            self.fn = GraphedModel(self.model)
        self.onnx = None
        if job["backend"] == "onnxruntime":
            self._setup_onnx(model)

    def _setup_onnx(self, model) -> None:
        try:
            from focusnet.engine.export import OnnxPredictor, export_model
        except ImportError as exc:
            raise RuntimeError(f"the onnxruntime backend needs focusnet.engine.export: {exc}") from exc
        if self.bf16 or self.cuda or self.job["compile"]:
            raise RuntimeError("the onnxruntime backend is benchmarked in fp32 on CPU without torch.compile only")
        self._tmp = tempfile.TemporaryDirectory()
        model.eval()
        path = export_model(model, Path(self._tmp.name) / "model.onnx", format="onnx", example_size=self.job["size"])
        self.onnx = OnnxPredictor(path)
        self.x_np = self.x.contiguous().numpy()

    # -- memory
    def _memory_now(self) -> int:
        if self.cuda:
            import torch

            return int(torch.cuda.memory_allocated(self.device))
        return _proc_status_kb("VmRSS") * 1024

    def reset_memory(self) -> dict[str, Any]:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.hwm_reset_ok = False
        return {}

    def memory(self) -> dict[str, Any]:
        if self.cuda:
            import torch

            peak = int(torch.cuda.max_memory_allocated(self.device))
        else:
            peak = _proc_status_kb("VmHWM") * 1024
        return {
            "peak_mb": peak / 2**20,
            "base_mb": self.base / 2**20,
            "peak_delta_mb": (peak - self.base) / 2**20,
            "hwm_reset": self.hwm_reset_ok,
        }

    # -- steps
    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def _wake(self) -> None:
        """Wake the intra-op thread pool (asleep while other workers ran) before the clock starts:
        on a loaded machine the wake-up can take tens of milliseconds."""
        if not self.cuda:
            import torch

            with torch.inference_mode():
                torch.ones(1 << 18).mul_(2.0).sum()

    def _autocast(self):
        import torch

        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run(self, phase: str, iters: int) -> dict[str, Any]:
        step = {"conv": self._conv_step, "inference": self._infer_step, "train": self._train_step}[phase]
        if phase == "train":
            self.model.train()
        elif phase == "inference" and self.job["kind"] == "model":
            self.model.eval()
        if self.job.get("compile") and phase != "conv" and phase not in self._compiled:
            # torch.compile compiles (again after train()/eval() switches) on the first call of a
            # phase: keep that out of the timed step from which the iterations per repeat are set
            step()
            self._compiled.add(phase)
        self._wake()
        self._sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        self._sync()
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "iters": iters}

    def _conv_step(self) -> None:
        import torch

        with torch.inference_mode():
            self.conv(self.x)

    def _infer_step(self) -> None:
        import torch

        if self.onnx is not None:
            self.onnx(self.x_np)
            return
        with torch.inference_mode(), self._autocast():
            self.fn(self.x)

    def _train_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            logits = self.fn(self.x)
        loss = self.loss_fn(logits, self.y)
        loss.backward()
        self.optimizer.step()


def _proc_status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status (peak memory needs Linux)")


def _worker_main() -> int:
    """Serve one benchmark job over stdin/stdout JSON lines (stdout kept clean of prints)."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the model or torch prints goes to stderr
    sys.stdout = sys.stderr

    def reply(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    bench: _Bench | None = None
    first = True
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        try:
            if first:
                first = False
                bench = _Bench(msg)
                reply({"ok": True, **bench.info})
                continue
            assert bench is not None
            cmd = msg.get("cmd")
            if cmd == "quit":
                break
            if cmd == "run":
                reply({"ok": True, **bench.run(msg["phase"], int(msg["iters"]))})
            elif cmd == "reset_memory":
                reply({"ok": True, **bench.reset_memory()})
            elif cmd == "memory":
                reply({"ok": True, **bench.memory()})
            else:
                reply({"ok": False, "error": f"unknown command {cmd!r}"})
        except Exception as exc:  # noqa: BLE001 - reported to the parent, shown in the row
            traceback.print_exc()
            text = str(exc).strip().splitlines()
            reply({"ok": False, "error": f"{type(exc).__name__}: {text[0] if text else ''}"})
            if bench is None:
                break
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        sys.exit(_worker_main())
    print("usage: use `focusnet benchmark` (this module's --worker mode is internal)", file=sys.stderr)
    sys.exit(2)
