"""Where FocusNet++'s GPU training step goes, and what CUDA graphs and other execution choices do to it.

One process, CUDA events, medians of ``--repeats`` timings of ``--iters`` steps each. Per model
(FocusNet++ presets and U-Net), precision (fp32, bf16 autocast) and execution variant:

* ``eager`` / ``graphed`` (focusnet.engine.cuda_graphs.GraphedModel: forward and backward replayed);
* ``fast`` (the fast path of focusnet.models.resganet, channels_last, 1x1 convolutions as matrix
  products) / ``plain`` (layer by layer, NCHW) / ``plain-cl`` (layer by layer, channels_last input);
* ``tf32mm``: ``torch.backends.cuda.matmul.allow_tf32 = True`` (cuDNN convolutions already use TF32
  by default in fp32, matrix products do not).

The training step is ``zero_grad + forward + ALLHybridLoss + backward + Adam(fused) step``, as in
``focusnet train`` on CUDA. Also: the grouped 3x3 convolution of each FocusNet++ level (forward +
backward) as cuDNN's grouped kernel against one dense convolution with a block-diagonal weight, in
NCHW and NHWC; and a torch.profiler table of the eager step's kernels (CUDA time by kernel, launches
per step).

Usage (CUDA machine, repo root): python benchmarks/bench_gpu_step.py --out DIR [--quick]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from focusnet.engine.cuda_graphs import GraphedModel  # noqa: E402
from focusnet.losses import ALLHybridLoss  # noqa: E402
from focusnet.models import create_model  # noqa: E402
from focusnet.models.resganet import fast_path  # noqa: E402


def _time(fn, iters: int, repeats: int) -> dict:
    """Median/min/max milliseconds per call of ``fn`` over ``repeats`` runs of ``iters`` calls."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    values = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        values.append(start.elapsed_time(end) / iters)
    return {"ms": statistics.median(values), "min": min(values), "max": max(values)}


def _spec(text: str) -> tuple[str, dict]:
    name, _, preset = text.partition(":")
    return name, ({"preset": preset} if preset else {})


def step_fn(model, x, y, graphed: bool, bf16: bool, infer: bool = False):
    """One training step (or one inference forward) of ``model`` as a closure."""
    run = GraphedModel(model) if graphed else model
    loss_fn = ALLHybridLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    if infer:
        model.eval()

        def infer_step():
            with torch.inference_mode(), amp():
                run(x)

        return infer_step
    model.train()

    def train_step():
        opt.zero_grad(set_to_none=True)
        with amp():
            logits = run(x)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        opt.step()

    return train_step


def measure_models(models, batch: int, size: int, iters: int, repeats: int, variants, precisions=("fp32", "bf16")) -> list[dict]:
    rows = []
    x = torch.rand(batch, 3, size, size, device="cuda")
    y = (torch.rand(batch, 1, size, size, device="cuda") > 0.7).float()
    for spec in models:
        name, kw = _spec(spec)
        for prec in precisions:
            for variant in variants:
                graphed = variant.startswith("graphed")
                path = variant.split("-", 1)[1] if "-" in variant else "fast"
                torch.manual_seed(0)
                model = create_model(name, **kw).cuda()
                inp = x.contiguous(memory_format=torch.channels_last) if path in ("plain-cl",) else x
                tf32 = path.endswith("tf32mm")
                old = torch.backends.cuda.matmul.allow_tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
                row = {"model": spec, "precision": prec, "variant": variant, "batch": batch, "size": size}
                try:
                    with fast_path(not path.startswith("plain")):
                        for phase in ("train", "inference"):
                            fn = step_fn(model, inp, y, graphed, prec == "bf16", infer=phase == "inference")
                            t = _time(fn, iters, repeats)
                            row[phase] = {**t, "img_s": batch * 1000 / t["ms"]}
                except Exception as exc:  # noqa: BLE001 - a failed variant is a result too
                    row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                finally:
                    torch.backends.cuda.matmul.allow_tf32 = old
                rows.append(row)
                tr, inf = row.get("train", {}), row.get("inference", {})
                print(f"{spec:22s} b{batch:<3d} {prec} {variant:18s} train {tr.get('img_s', 0):8.1f} img/s  "
                      f"infer {inf.get('img_s', 0):8.1f} img/s {row.get('error', '')}", flush=True)
                del model
                torch.cuda.empty_cache()
    return rows


def block_diagonal(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """``(C, C/g, k, k)`` grouped weight -> ``(C, C, k, k)`` dense weight, zero off the diagonal blocks."""
    c, cg = weight.shape[0], weight.shape[1]
    w = weight.reshape(groups, c // groups, cg, *weight.shape[2:])
    eye = torch.eye(groups, device=weight.device, dtype=weight.dtype)
    return torch.einsum("goikl,gh->gohikl", w, eye).reshape(c, groups * cg, *weight.shape[2:])


def measure_grouped(batch: int, size: int, iters: int, repeats: int) -> list[dict]:
    rows = []
    levels = [(32, size), (64, size // 2), (128, size // 4), (192, size // 8), (256, size // 16)]
    for prec in ("fp32", "bf16"):
        dtype = torch.bfloat16 if prec == "bf16" else torch.float32
        for c, s in levels:
            for fmt_name, fmt in (("nchw", torch.contiguous_format), ("nhwc", torch.channels_last)):
                x = torch.randn(batch, c, s, s, device="cuda", dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
                w = (torch.randn(c, c // 4, 3, 3, device="cuda", dtype=dtype) * 0.1).requires_grad_()
                b = torch.zeros(c, device="cuda", dtype=dtype, requires_grad=True)
                for how in ("grouped", "dense"):
                    def fn():
                        weight = w if how == "grouped" else block_diagonal(w, 4)
                        out = F.conv2d(x, weight, b, padding=1, groups=4 if how == "grouped" else 1)
                        out.backward(torch.ones_like(out))
                    t = _time(fn, iters, repeats)
                    rows.append({"precision": prec, "channels": c, "size": s, "format": fmt_name, "how": how, **t})
                    print(f"conv3x3 g4 {prec} C={c:3d} {s:3d}px {fmt_name} {how:7s} {t['ms']:.3f} ms", flush=True)
    return rows


def profile(spec: str, batch: int, size: int, bf16: bool = False) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    name, kw = _spec(spec)
    torch.manual_seed(0)
    model = create_model(name, **kw).cuda()
    x = torch.rand(batch, 3, size, size, device="cuda")
    y = (torch.rand(batch, 1, size, size, device="cuda") > 0.7).float()
    fn = step_fn(model, x, y, graphed=False, bf16=bf16)
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    steps = 5
    with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
    kernels: dict[str, list[float]] = {}
    for e in p.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            kernels.setdefault(e.name, []).append(e.device_time if hasattr(e, "device_time") else e.cuda_time)
    total_us = sum(sum(v) for v in kernels.values()) / steps
    launches = sum(len(v) for v in kernels.values()) / steps
    top = sorted(((sum(v) / steps, len(v) / steps, k) for k, v in kernels.items()), reverse=True)[:20]
    table = p.key_averages().table(sort_by="cuda_time_total" if hasattr(p.key_averages()[0], "cuda_time_total") else "self_cuda_time_total", row_limit=25)
    return {
        "model": spec,
        "precision": "bf16" if bf16 else "fp32",
        "kernel_time_per_step_ms": total_us / 1000,
        "launches_per_step": launches,
        "top_kernels": [{"us_per_step": t, "calls_per_step": n, "name": k[:160]} for t, n, k in top],
        "table": table,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--models", default="focusnetpp:paper,unet")
    ap.add_argument("--variants", default="eager,graphed,eager-plain,graphed-plain,graphed-plain-cl,graphed-tf32mm")
    ap.add_argument("--sweep-models", default="focusnetpp:paper,unet", help="models of the batch-size sweep")
    ap.add_argument("--sweep-batches", default="", help="e.g. 16,32,64: graphed training/inference at these batches")
    ap.add_argument("--profile-bf16", action="store_true", help="profile the bf16 step too")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: models, grouped, profile")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    result = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "batch": args.batch,
        "size": args.size,
        "step": "zero_grad + forward + ALLHybridLoss + backward + Adam(fused) step",
    }
    t0 = time.perf_counter()
    if "profile" not in skip:
        result["profile"] = [
            profile(m, args.batch, args.size, bf16)
            for m in args.models.split(",")
            for bf16 in ((False, True) if args.profile_bf16 else (False,))
        ]
        for p in result["profile"]:
            print(f"== profile {p['model']} {p['precision']}: {p['kernel_time_per_step_ms']:.2f} ms of kernels, "
                  f"{p['launches_per_step']:.0f} launches per step", flush=True)
            for k in p["top_kernels"][:12]:
                print(f"   {k['us_per_step']:9.1f} us  {k['calls_per_step']:6.1f}x  {k['name'][:100]}")
        (args.out / "step.json").write_text(json.dumps(result, indent=1))
    if "models" not in skip:
        result["models"] = measure_models(args.models.split(","), args.batch, args.size, args.iters, args.repeats,
                                          args.variants.split(","))
        (args.out / "step.json").write_text(json.dumps(result, indent=1))
    for b in filter(None, args.sweep_batches.split(",")):
        result.setdefault("sweep", []).extend(
            measure_models(args.sweep_models.split(","), int(b), args.size, args.iters, args.repeats, ["graphed"])
        )
        (args.out / "step.json").write_text(json.dumps(result, indent=1))
    if "grouped" not in skip:
        result["grouped_conv"] = measure_grouped(args.batch, args.size, args.iters, args.repeats)
    result["seconds"] = time.perf_counter() - t0
    (args.out / "step.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out / 'step.json'} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
