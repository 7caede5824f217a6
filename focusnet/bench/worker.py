"""The worker's side of the benchmark protocol (:mod:`focusnet.bench.process` is the parent's): one
model, or the conv-peak probe, set up from the job on the first stdin line, then timed steps and
memory readings on request, every reply one JSON line on stdout.

Run as ``python -m focusnet.bench.worker`` by :class:`~focusnet.bench.process.WorkerProcess`; stdout
carries the protocol only (anything the model or torch prints goes to stderr).

Example:
    >>> bench = Bench({"label": "conv_peak", "kind": "conv", "conv_shape": [1, 4, 8, 8], "device": "cpu",
    ...                "channels_last": False, "precision": "32-true", "seed": 0})
    >>> bench.info["flops"], bench.run("conv", 2)["iters"]
    (18432, 2)
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from focusnet.bench.specs import MONAI_BASICUNET
from focusnet.complexity import count_flops, count_parameters
from focusnet.engine.cuda_graphs import GraphedModel, graph_mode_applies
from focusnet.kernels import bn_leaky_relu_available
from focusnet.losses import ALLHybridLoss
from focusnet.models import create_model
from focusnet.models.spec import ModelSpec
from focusnet.runtime import tune_cpu_allocator

__all__ = ["Bench", "main"]


class Bench:
    """State of one worker: the model (or conv probe), its data, optimizer and loss.

    Args:
        job: the job the parent sent (see :mod:`focusnet.bench.process`).
    """

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
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
        self.info["native_kernels"] = bn_leaky_relu_available()
        self._sync()
        self.base = self._memory_now()

    # -- set-up
    def _setup_conv(self, job: dict[str, Any]) -> None:
        b, c, h, w = job["conv_shape"]
        dtype = torch.bfloat16 if self.bf16 else torch.float32
        conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.conv = conv.to(self.device, dtype, memory_format=self.fmt)  # type: ignore[call-overload]  # not in stubs
        self.conv.eval()
        self.x = torch.randn(b, c, h, w, device=self.device, dtype=dtype).contiguous(memory_format=self.fmt)
        self.info = {"flops": 2 * b * c * c * 9 * h * w, "params": c * c * 9}

    def _build(self, job: dict[str, Any]):
        if job["name"] == MONAI_BASICUNET:
            from monai.networks.nets import BasicUNet  # optional dependency, only for this row

            return BasicUNet(spatial_dims=2, in_channels=job["in_channels"], out_channels=1)
        spec = ModelSpec(job["name"], job["preset"], job.get("kwargs") or {})
        return create_model(spec.model, in_channels=job["in_channels"], **spec.create_kwargs())

    def _setup_model(self, job: dict[str, Any]) -> None:
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
        self.onnx: Any = None  # an OnnxPredictor for the onnxruntime backend
        if job["backend"] == "onnxruntime":
            self._setup_onnx(model)

    def _setup_onnx(self, model) -> None:
        try:
            from focusnet.engine.export import OnnxPredictor, export_model  # onnx/onnxruntime are optional
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
            return int(torch.cuda.memory_allocated(self.device))
        return _proc_status_kb("VmRSS") * 1024

    def reset_memory(self) -> dict[str, Any]:
        """Start a phase's peak-memory reading (CUDA peak stats, or the RSS high-water mark)."""
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.hwm_reset_ok = False
        return {}

    def memory(self) -> dict[str, Any]:
        """Peak memory since :meth:`reset_memory`, and above the memory in use after set-up, in MiB."""
        if self.cuda:
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
            torch.cuda.synchronize(self.device)

    def _wake(self) -> None:
        """Wake the intra-op thread pool (asleep while other workers ran) before the clock starts:
        on a loaded machine the wake-up can take tens of milliseconds."""
        if not self.cuda:
            with torch.inference_mode():
                torch.ones(1 << 18).mul_(2.0).sum()

    def _autocast(self):
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run(self, phase: str, iters: int) -> dict[str, Any]:
        """Time ``iters`` steps of ``phase`` (``conv``, ``inference`` or ``train``): seconds and iters."""
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
        with torch.inference_mode():
            self.conv(self.x)

    def _infer_step(self) -> None:
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


def main() -> int:
    """Serve one benchmark job over stdin/stdout JSON lines (stdout kept clean of prints)."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the model or torch prints goes to stderr
    sys.stdout = sys.stderr

    def reply(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    bench: Bench | None = None
    first = True
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        try:
            if first:
                first = False
                bench = Bench(msg)
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
    sys.exit(main())
