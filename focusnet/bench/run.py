"""``run_benchmark``: start one worker process per model (and one for the conv-peak probe), drive
them round-robin through the phases, and assemble the rows, their ratios against the baseline and
their fraction of the conv peak.

Example:
    >>> result = run_benchmark([("focusnetpp", "lite")], size=32, batch_size=2, repeats=1,
    ...                        warmup=1, conv_shape=(2, 16, 32, 32))  # doctest: +SKIP
    >>> [row["label"] for row in result["rows"]]  # doctest: +SKIP
    ['focusnetpp:lite', 'unet']
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from focusnet.bench.machine import load_average, machine_info
from focusnet.bench.process import WorkerProcess
from focusnet.bench.report import paired, stats
from focusnet.bench.specs import (
    MONAI_BASICUNET,
    PHASES,
    PRECISIONS,
    BenchSpec,
    check_inputs,
    normalise_spec,
)
from focusnet.errors import FocusNetError
from focusnet.models.spec import ModelSpec
from focusnet.vocab import CUDA_GRAPHS, DEVICES

__all__ = ["DEFAULT_CONV_SHAPE", "FLOP_CONVENTION", "run_benchmark"]

DEFAULT_CONV_SHAPE = (8, 128, 128, 128)  # batch, channels (in = out), height, width
FLOP_CONVENTION = (
    "forward FLOPs from torch.utils.flop_counter (conv/matmul, 2 FLOPs per multiply-add) x batch; "
    "training step = 3 x forward; conv peak = FLOP/s of one 3x3 'same' convolution "
    "(C -> C channels) of the same dtype, device and memory format"
)

def run_benchmark(
    models: Iterable[ModelSpec | tuple | str],
    size: int = 256,
    batch_size: int = 8,
    precision: str = "32-true",
    device: str = "cpu",
    channels_last: bool = False,
    compile: bool = False,  # noqa: A002 - the torch name
    repeats: int = 5,
    warmup: int = 2,
    baseline: ModelSpec | tuple | str | None = ("unet", None),
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

    Example:
        >>> result = run_benchmark(["focusnetpp:lite"], size=32, batch_size=2, repeats=1, warmup=1,
        ...                        conv_shape=(2, 16, 32, 32), progress=print)  # doctest: +SKIP
        >>> result["rows"][0]["train"]["ratio_vs_baseline"]["median"]  # doctest: +SKIP
    """
    notes: list[str] = []
    specs, base = _model_list(models, baseline, include_monai, notes)
    phases = tuple(p for p in PHASES if p in phases)
    if not phases:
        raise FocusNetError(f"phases must include at least one of {', '.join(PHASES)}")
    precision = PRECISIONS.normalize(precision, stacklevel=2)
    device = DEVICES.normalize(device, stacklevel=2) if device in DEVICES.aliases else device  # gpu -> cuda
    check_inputs(specs, size, batch_size, precision, device, repeats, warmup)
    cuda_graphs = CUDA_GRAPHS.normalize(cuda_graphs, key="cuda_graphs")
    if len(conv_shape) != 4 or min(conv_shape) < 1:
        raise FocusNetError(f"conv_shape must be (batch, channels, height, width), got {tuple(conv_shape)}")

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
    settings = _settings(common, repeats, warmup, min_repeat_time, phases, base, conv_shape)
    machine = machine_info(device)
    if precision == "bf16-mixed" and not machine["bf16"]["native"]:
        notes.append("bf16 is not native on this device: it runs emulated and slowly")
    jobs = [{"label": "conv_peak", "kind": "conv", "conv_shape": list(conv_shape), **common}]
    jobs += [
        {
            "label": s.label, "kind": "model", "name": s.model, "preset": s.preset, "kwargs": dict(s.kwargs),
            "backend": s.backend, **common,
        }
        for s in specs
    ]

    started = time.perf_counter()
    with _workers(jobs) as workers:
        for key in ("allocator_tuned", "native_kernels", "cuda_graphs_used"):
            values = {w.setup.get(key) for w in workers if w.setup and key in w.setup}
            settings[key] = values.pop() if len(values) == 1 else None
        clock = _RoundRobin(workers[0], workers[1:], phases, started)
        for phase in phases:
            clock.run_phase(phase, warmup, repeats, min_repeat_time, max_iters, progress)

    base_label = base.label if base else None
    rows = [clock.row(w, batch_size, base_label) for w in clock.models]
    _add_ratios(rows, phases, base_label)
    machine["load_average_end"] = load_average()
    return {
        "settings": settings,
        "machine": machine,
        "conv_peak": clock.conv_peak(conv_shape),
        "rows": rows,
        "notes": notes,
        "elapsed_s": round(time.perf_counter() - started, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _model_list(
    models: Iterable[ModelSpec | tuple | str], baseline: ModelSpec | tuple | str | None, include_monai: bool,
    notes: list[str],
) -> tuple[list[BenchSpec], BenchSpec | None]:
    """The rows to measure, each once, in the order asked: MONAI's BasicUNet (when asked and
    installed, else a note) and the baseline appended when missing."""
    specs = [normalise_spec(s) for s in models]
    base = normalise_spec(baseline) if baseline is not None else None
    if include_monai:
        if importlib.util.find_spec("monai") is None:
            notes.append("MONAI BasicUNet skipped: monai is not installed (pip install monai)")
        elif not any(s.model == MONAI_BASICUNET for s in specs):
            specs.append(BenchSpec(MONAI_BASICUNET))
    if base is not None and base not in specs:
        specs.append(base)
    seen: set[BenchSpec] = set()
    return [s for s in specs if not (s in seen or seen.add(s))], base  # type: ignore[func-returns-value]


def _settings(
    common: dict[str, Any],
    repeats: int,
    warmup: int,
    min_repeat_time: float,
    phases: tuple[str, ...],
    base: BenchSpec | None,
    conv_shape: Sequence[int],
) -> dict[str, Any]:
    """The ``settings`` block of a result: what was run and the conventions of its figures."""
    return {
        "size": common["size"],
        "batch_size": common["batch_size"],
        "in_channels": common["in_channels"],
        "precision": common["precision"],
        "device": common["device"],
        "channels_last": common["channels_last"],
        "compile": common["compile"],
        "repeats": repeats,
        "warmup": warmup,
        "min_repeat_time_s": min_repeat_time,
        "phases": list(phases),
        "baseline": base.label if base else None,
        "conv_shape": list(conv_shape),
        "threads": common["threads"],
        "seed": common["seed"],
        "allocator_tuning": common["allocator_tuning"],
        "cuda_graphs": common["cuda_graphs"],
        "train_step": "zero_grad + forward + ALLHybridLoss + backward + Adam(lr=1e-4) step, train mode",
        "inference_step": "eval mode, torch.inference_mode(), forward only",
        "autocast": (
            "torch.autocast(dtype=torch.bfloat16), weights fp32" if common["precision"] == "bf16-mixed" else None
        ),
        "memory": (
            "torch.cuda.max_memory_allocated minus allocated after building"
            if common["device"].startswith("cuda")
            else "VmHWM (reset per phase via /proc/self/clear_refs) minus VmRSS after building model and data"
        ),
        "flop_convention": FLOP_CONVENTION,
        "ratio_convention": "median over repeats of (row / baseline) measured in the same round-robin round",
    }


@contextlib.contextmanager
def _workers(jobs: list[dict[str, Any]]) -> Iterator[list[WorkerProcess]]:
    """One worker process per job, all started before any set-up is awaited (their imports
    overlap); every one closed on the way out, whatever happens."""
    workers: list[WorkerProcess] = []
    try:
        for job in jobs:
            workers.append(WorkerProcess(job))
        for w in workers:
            w.collect_setup()
        yield workers
    finally:
        for w in workers:
            w.close()


@dataclass
class _RoundRobin:
    """The timings of a run: per worker and phase the seconds per step of every timed round, the
    steps per repeat (calibrated from the last warm-up round) and the phase's peak memory."""

    conv: WorkerProcess
    models: list[WorkerProcess]
    phases: tuple[str, ...]
    started: float
    timings: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    iters: dict[str, dict[str, int]] = field(default_factory=dict)
    memory: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for w in [self.conv, *self.models]:
            self.timings[w.label] = {p: [] for p in self.phases}
            self.iters[w.label] = {}
            self.memory[w.label] = {}

    def run_phase(
        self,
        phase: str,
        warmup: int,
        repeats: int,
        min_repeat_time: float,
        max_iters: int,
        progress: Callable[[str], None] | None,
    ) -> None:
        """Warm-up then timed rounds of ``phase``, every worker one request a round, in turn."""
        active = [self.conv] + [w for w in self.models if not (phase == "train" and w.job["backend"] != "torch")]
        for w in active:
            if w.error is None:
                r = w.request({"cmd": "reset_memory"})
                if not r.get("ok"):
                    w.error = r.get("error")
        for rnd in range(warmup + repeats):
            timed = rnd >= warmup
            for w in active:
                self._step(w, phase, timed, calibrate=not timed and rnd == warmup - 1,
                           min_repeat_time=min_repeat_time, max_iters=max_iters)
            if progress is not None:
                kind = f"repeat {rnd - warmup + 1}/{repeats}" if timed else f"warm-up {rnd + 1}/{warmup}"
                progress(f"[{time.perf_counter() - self.started:7.1f}s] {phase} {kind} done")
        for w in active:
            if w.error is None and w is not self.conv:
                r = w.request({"cmd": "memory"})
                if r.get("ok"):
                    self.memory[w.label][phase] = r

    def _step(
        self, w: WorkerProcess, phase: str, timed: bool, *, calibrate: bool, min_repeat_time: float, max_iters: int
    ) -> None:
        """One worker's turn in a round; a failed worker records ``None`` in the timed rounds."""
        if w.error is not None:
            if timed:
                self.timings[w.label][phase].append(None)
            return
        step = "conv" if w is self.conv else phase
        n = self.iters[w.label].get(step, 1) if timed else 1
        r = w.request({"cmd": "run", "phase": step, "iters": n})
        if not r.get("ok"):
            w.error = r.get("error")
            if timed:
                self.timings[w.label][phase].append(None)
            return
        if calibrate:  # from the last warm-up step
            per_step = max(r["seconds"], 1e-9)
            self.iters[w.label][step] = int(min(max_iters, max(1, math.ceil(min_repeat_time / per_step))))
        if timed:
            self.timings[w.label][phase].append(r["seconds"] / r["iters"])

    @property
    def conv_flops(self) -> int | None:
        """FLOPs of one conv-peak step (``None`` when the probe failed)."""
        return self.conv.setup.get("flops") if self.conv.error is None else None

    def conv_peak(self, conv_shape: Sequence[int]) -> dict[str, Any]:
        """The ``conv_peak`` block of a result: the probe's FLOP/s over every timed round."""
        flops = self.conv_flops
        per_step = [t for p in self.phases for t in self.timings["conv_peak"][p]]
        return {
            "shape": list(conv_shape),
            "flops": flops,
            "flops_per_s": stats([flops / t if (t and flops) else None for t in per_step]),
            "error": self.conv.error,
            "iters_per_repeat": self.iters["conv_peak"].get("conv"),
        }

    def row(self, w: WorkerProcess, batch_size: int, base_label: str | None) -> dict[str, Any]:
        """One model's row: its set-up and per phase its throughput, FLOP/s, share of the
        same-round conv peak and peak memory (ratios are added by :func:`_add_ratios`)."""
        fwd = w.setup.get("flops_per_image")
        conv_flops = self.conv_flops
        row: dict[str, Any] = {
            "label": w.label,
            "model": w.job["name"],
            "preset": w.job["preset"],
            "kwargs": w.job["kwargs"],
            "backend": w.job["backend"],
            "is_baseline": w.label == base_label,
            "params": w.setup.get("params"),
            "forward_flops_per_image": fwd,
            "error": w.error,
        }
        for phase in self.phases:
            if phase == "train" and w.job["backend"] != "torch":
                row[phase] = None
                continue
            step_s = self.timings[w.label][phase]
            ips = [batch_size / t if t else None for t in step_s]
            flops_step = (3 if phase == "train" else 1) * fwd * batch_size if fwd else None
            rate = [flops_step / t if (t and flops_step) else None for t in step_s]
            conv_phase = [conv_flops / t if (t and conv_flops) else None for t in self.timings["conv_peak"][phase]]
            frac = [r / c if (r and c) else None for r, c in zip(rate, conv_phase)]
            mem = self.memory[w.label].get(phase, {})
            row[phase] = {
                "images_per_s": stats(ips),
                "images_per_s_per_round": ips,
                "seconds_per_step": stats(step_s),
                "iters_per_repeat": self.iters[w.label].get(phase),
                "flops_per_step": flops_step,
                "achieved_flops_per_s": stats(rate),
                "fraction_of_conv_peak": stats(frac),
                "peak_memory_mb": mem.get("peak_delta_mb"),
                "peak_rss_mb": mem.get("peak_mb"),
                "ratio_vs_baseline": None,
                "ratio_of_medians_vs_baseline": None,
                "ratio_vs_torch": None,
            }
        return row


def _add_ratios(rows: list[dict[str, Any]], phases: tuple[str, ...], base_label: str | None) -> None:
    """Each cell's per-round ratio against the baseline, and an ONNX Runtime row's against the
    same model in PyTorch."""
    by_label = {r["label"]: r for r in rows}
    for row in rows:
        for phase in phases:
            cell = row.get(phase)
            if not cell or not cell["images_per_s"]:
                continue
            ref = by_label.get(base_label) if base_label else None
            if ref is not None:
                cell["ratio_vs_baseline"], cell["ratio_of_medians_vs_baseline"] = paired(cell, ref.get(phase))
            if row["backend"] != "torch":
                eager = by_label.get(BenchSpec(row["model"], row["preset"], row["kwargs"]).label)
                if eager is not None:
                    cell["ratio_vs_torch"], _ = paired(cell, eager.get(phase))
