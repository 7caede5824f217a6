"""A benchmark result's statistics (median, quartiles, paired per-round ratios) and its Markdown
summary.

Example:
    >>> s = stats([2.0, 1.0, 4.0])
    >>> s["median"], s["min"], s["max"], s["n"]
    (2.0, 1.0, 4.0, 3)
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["format_markdown", "paired", "stats"]


def stats(values: Sequence[float | None]) -> dict[str, Any] | None:
    """Median, min, max, quartiles and count of the finite ``values`` (``None`` when there are none).

    Example:
        >>> stats([None, float("nan")]) is None, stats([3.0])["q1"]
        (True, 3.0)
    """
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


def paired(cell: dict[str, Any], ref: dict[str, Any] | None) -> tuple[dict | None, float | None]:
    """Per-round ratios ``cell / ref`` (stats) and the ratio of the medians.

    Example:
        >>> row = {"images_per_s": {"median": 4.0}, "images_per_s_per_round": [4.0, 6.0]}
        >>> base = {"images_per_s": {"median": 2.0}, "images_per_s_per_round": [2.0, 2.0]}
        >>> ratio, of_medians = paired(row, base)
        >>> ratio["median"], of_medians
        (2.5, 2.0)
    """
    if not ref or not ref.get("images_per_s"):
        return None, None
    pairs = [
        x / y
        for x, y in zip(cell["images_per_s_per_round"], ref["images_per_s_per_round"])
        if x is not None and y
    ]
    b = ref["images_per_s"]["median"]
    return stats(pairs), (cell["images_per_s"]["median"] / b if b else None)


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
    """A Markdown summary: settings, machine, conv peak and one table row per model.

    Example:
        >>> result = run_benchmark([("unet", None)], size=32, batch_size=2)  # doctest: +SKIP
        >>> print(format_markdown(result))  # doctest: +SKIP
    """
    st, mc, cp = result["settings"], result["machine"], result["conv_peak"]
    phases = st["phases"]
    lines = [
        f"### focusnet benchmark: {st['size']}x{st['size']}, batch {st['batch_size']}, {st['precision']}, "
        f"{st['device']}"
        + (", channels_last" if st["channels_last"] else "")
        + (", torch.compile" if st["compile"] else ""),
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
        + ("; CUDA graphs (focusnet.engine.cuda_graphs): "
           + {True: "on", False: "off"}.get(st.get("cuda_graphs_used"), "mixed")
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

