"""Model complexity: trainable parameters and real forward MACs/FLOPs.

FLOPs come from PyTorch's own counter (:class:`torch.utils.flop_counter.FlopCounterMode`), which
counts convolutions, transposed convolutions and matrix products at 2 FLOPs per multiply-add;
MACs = FLOPs / 2. The count is taken in eval mode on one ``1 x C x S x S`` input on the meta
device, so no memory is allocated and no arithmetic is done.

This is *not* what the FocusNet++ paper's Table 2 "FLOPs" column measures: that column counts the
TF1 weight-initialiser operations, not compute (implementation spec §5.3).
"""
from __future__ import annotations

from functools import cache
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from focusnet.models import create_model, list_models, list_presets

#: How MACs and FLOPs are counted (reported with every measurement).
COUNTER = "torch.utils.flop_counter.FlopCounterMode (conv/matmul, 2 FLOPs per MAC), eval mode"


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
        "counter": COUNTER,
    }


# ------------------------------------------------------------------------------------ the true Table 2
#: Input of the paper's Table 2 (ISIC 2018 at 256 x 256, RGB).
TABLE2_SIZE = 256

#: The unit note that goes with every figure quoted from the paper's Tables 2 and 3.
PAPER_UNITS_NOTE = (
    'Printed as "x10^8", a typo for x10^6 (implementation spec §5.3). "Params" is millions of '
    "parameters counted the Keras way (trainable + BatchNorm moving statistics). \"FLOPs\" is the "
    "TF1 profiler's count of weight-initialiser (and L2-regulariser) operations on a graph with an "
    "unknown batch size, in millions: about 2 per randomly initialised weight, 5 per L2-regularised "
    "one. It is not forward compute and is not comparable with GMACs/GFLOPs."
)

#: The paper's Table 2 (Kaul et al., ISBI 2021), model -> figures as printed, with which of our
#: configurations the figure describes (``kwargs``) and how it reproduces (spec §5.2-5.3).
#: ``params_m`` and ``flops`` are the printed mantissas: millions of parameters and millions of
#: initialiser operations respectively (see :data:`PAPER_UNITS_NOTE`).
PAPER_TABLE2: dict[str, dict[str, Any]] = {
    "unet": {
        "row": "UNet [14]",
        "params_printed": "7.94×10^8",
        "flops_printed": "16.12×10^8",
        "params_m": 7.94,
        "flops": 16.12,
        "kwargs": {},
        "note": "7.94 M matches neither of the authors' U-Nets (`models.unet`, ported here, 7.76 M; "
        "`models.unet1` with BN, 7.73 M): unexplained; 16.12 ≈ 2 x params",
    },
    "unetpp": {
        "row": "UNet++ [8]",
        "params_printed": "9.04×10^8",
        "flops_printed": "42.44×10^8",
        "params_m": 9.04,
        "flops": 42.44,
        "kwargs": {},
        "note": "9,042,177 → 9.04 M; 42.44 = 5 x L2-regularised kernels + 2 x transposed-conv kernels",
    },
    "bcdunet": {
        "row": "BCDU-Net [10]",
        "params_printed": "20.66×10^8",
        "flops_printed": "39.76×10^8",
        "params_m": 20.66,
        "flops": 39.76,
        "kwargs": {},
        "note": "20,659,973 → 20.66 M; 39.76 = 2 x kernels, less the orthogonal-init ConvLSTM "
        "recurrent kernels the profiler skips",
    },
    "attention_unet": {
        "row": "Attn U-Net [2]",
        "params_printed": "8.91×10^8",
        "flops_printed": "17.82×10^8",
        "params_m": 8.91,
        "flops": 17.82,
        "kwargs": {"authors_gate_quirk": True},
        "note": "Keras total 8,906,244 (incl. BN statistics) → 8.91 M; 17.82 ≈ 2 x params",
    },
    "focusnet": {
        "row": "FocusNet [1]",
        "params_printed": "19.07×10^8",
        "flops_printed": "91.36×10^8",
        "params_m": 19.07,
        "flops": 91.36,
        "kwargs": {},
        "note": "Keras total 19,073,573 → 19.07 M; 91.36 ≈ 5 x L2-regularised + 2 x other kernels",
    },
    "focusnetpp": {
        "row": "FocusNet++",
        "params_printed": "7.80×10^8",
        "flops_printed": "15.64×10^8",
        "params_m": 7.80,
        "flops": 15.64,
        "kwargs": {"preset": "official"},
        "note": "the released code (no SE): Keras total 7,803,739 → 7.80 M; 15.64 ≈ 2 x params",
    },
}

#: The paper's Table 3 (DSB 2018 nuclei, reduced widths that the paper does not give), as printed
#: ("of the order of x10^8", read as x10^6 like Table 2). None of these networks can be rebuilt.
PAPER_TABLE3: dict[str, dict[str, float]] = {
    "unet": {"params_m": 3.62, "flops": 1.89},
    "bcdunet": {"params_m": 5.22, "flops": 9.98},
    "attention_unet": {"params_m": 2.32, "flops": 1.84},
    "focusnet": {"params_m": 5.03, "flops": 22.38},
    "focusnetpp": {"params_m": 1.84, "flops": 0.98},
}

#: Configurations measured besides each model's presets: attention_unet with the authors' gate
#: quirk, because that is the network Table 2 measured.
EXTRA_VARIANTS: dict[str, tuple[dict[str, Any], ...]] = {
    "attention_unet": ({"authors_gate_quirk": True},),
}

#: Notes for rows that Table 2 does not describe, keyed by (model, preset).
_ROW_NOTES: dict[tuple[str, str | None], str] = {
    ("attention_unet", None): "gate 3 driven by up2, as the paper; Table 2 measured the authors' "
    "quirk (next row)",
    ("focusnetpp", "paper"): "the network of the paper's text; Table 2's 7.80 M is the released "
    "code (`official`)",
    ("focusnetpp", "lite"): "half-width paper preset; Table 3's nuclei FocusNet++ (1.84 M, "
    "\"FLOPs\" 0.98) has widths the paper does not give",
    ("focusnetpp", "nuclei"): "sized like Table 3's nuclei FocusNet++ (1.84 M); the widths are this "
    "project's choice (lite's at the two shallowest levels, wider below)",
}
_NOT_IN_TABLE2 = "Table 1 only (not in Table 2)"

TABLE2_FOOTNOTE = (
    "Params (M), GMACs and GFLOPs are measured here: trainable parameters, and one forward pass in "
    "eval mode on a 1 x 3 x {size} x {size} input counted by `torch.utils.flop_counter` "
    "(convolutions, transposed convolutions and matmuls; 2 FLOPs per multiply-add). "
    "The two Table 2 columns are the paper's figures as printed, beside the configuration they "
    "describe. The paper prints them \"x10^8\", a typo for x10^6 (implementation spec §5.3): "
    "**Params** is millions of parameters counted the Keras way (BatchNorm moving statistics "
    "included), and **\"FLOPs\" is not compute**: it is the TF1 profiler's count of "
    "weight-initialiser (and L2-regulariser) operations, in millions (about 2 per randomly "
    "initialised weight, 5 per L2-regularised one), so it cannot be compared with GMACs or GFLOPs."
)


@cache
def _measure_cached(
    name: str, size: int, in_channels: int, kwargs: tuple[tuple[str, Any], ...]
) -> tuple[int, int]:
    r = measure(name, size=size, in_channels=in_channels, **dict(kwargs))
    return r["params"], r["flops"]


def _variants(name: str) -> list[dict[str, Any]]:
    presets = list_presets(name)
    variants: list[dict[str, Any]] = [{"preset": p} for p in presets] or [{}]
    return variants + [dict(v) for v in EXTRA_VARIANTS.get(name, ())]


def _label(name: str, kwargs: dict[str, Any]) -> str:
    if not kwargs:
        return name
    if set(kwargs) == {"preset"}:
        return f"{name} ({kwargs['preset']})"
    return f"{name} ({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def complexity_row(
    name: str, size: int = TABLE2_SIZE, in_channels: int = 3, **kwargs: Any
) -> dict[str, Any]:
    """One row of :func:`complexity_table`: measured size and compute, and the paper's figure.

    ``paper_params`` / ``paper_flops`` are filled only on the configuration Table 2 measured
    (see :data:`PAPER_TABLE2`); ``note`` says how it reproduces, or why a row has none.

    Example:
        >>> r = complexity_row("attention_unet", authors_gate_quirk=True)
        >>> r["label"], r["params_m"], r["gmacs"], r["paper_params"], r["paper_flops"]
        ('attention_unet (authors_gate_quirk=True)', 8.898, 7.88, 8.91, 17.82)
    """
    params, flops = _measure_cached(name, size, in_channels, tuple(sorted(kwargs.items())))
    paper = PAPER_TABLE2.get(name)
    if paper is not None and _same_config(name, kwargs, paper["kwargs"]):
        paper_params, paper_flops, note = paper["params_m"], paper["flops"], paper["note"]
    else:
        paper_params = paper_flops = None
        note = _ROW_NOTES.get((name, kwargs.get("preset")), "" if paper else _NOT_IN_TABLE2)
    return {
        "model": name,
        "preset": kwargs.get("preset"),
        "kwargs": dict(kwargs),
        "label": _label(name, kwargs),
        "input": [1, in_channels, size, size],
        "params": params,
        "params_m": round(params / 1e6, 3),
        "macs": flops // 2,
        "flops": flops,
        "gmacs": round(flops / 2e9, 2),
        "gflops": round(flops / 1e9, 2),
        "paper_params": paper_params,
        "paper_flops": paper_flops,
        "note": note,
    }


def _same_config(name: str, kwargs: dict[str, Any], paper_kwargs: dict[str, Any]) -> bool:
    presets = list_presets(name)
    default = {"preset": presets[0]} if presets else {}
    return {**default, **kwargs} == {**default, **paper_kwargs}


def complexity_table(size: int = TABLE2_SIZE, in_channels: int = 3) -> list[dict[str, Any]]:
    """Every registered model and preset (plus :data:`EXTRA_VARIANTS`), one row each.

    Each row has ``model``, ``preset``, ``label``, ``params``, ``params_m``, ``gmacs``, ``gflops``
    (measured at ``1 x in_channels x size x size`` on the meta device, so this takes seconds),
    ``paper_params`` and ``paper_flops`` (Table 2 as printed, on the row it describes, else None)
    and ``note``.

    Example:
        >>> rows = complexity_table()
        >>> [(r["label"], r["gmacs"]) for r in rows if r["model"] == "unet"]
        [('unet', 13.72)]
    """
    return [
        complexity_row(name, size=size, in_channels=in_channels, **kwargs)
        for name in list_models()
        for kwargs in _variants(name)
    ]


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def format_table_markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`complexity_table` rows, with the footnote on the paper's columns.

    Example:
        >>> print(format_table_markdown([complexity_row("unet")]).splitlines()[2][:64])
        | `unet` | 7,760,645 | 7.761 | 13.72 | 27.44 | 7.94 | 16.12 | 7.
    """
    sizes = sorted({(r["input"][2], r["input"][3]) for r in rows}) or [(TABLE2_SIZE, TABLE2_SIZE)]
    size = sizes[0][0] if len(sizes) == 1 and sizes[0][0] == sizes[0][1] else "S"
    lines = [
        "| model | parameters | params (M) | GMACs | GFLOPs "
        '| Table 2 "Params" ¹ | Table 2 "FLOPs" ¹ | note |',
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['label']}` | {r['params']:,} | {r['params_m']:.3f} | {r['gmacs']:.2f} | "
            f"{r['gflops']:.2f} | {_num(r['paper_params'], '.2f')} | {_num(r['paper_flops'], '.2f')} | "
            f"{r['note'].replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n\n¹ " + TABLE2_FOOTNOTE.format(size=size) + "\n"


def format_table_text(rows: list[dict[str, Any]]) -> str:
    """A plain fixed-width version of :func:`format_table_markdown` for the terminal."""
    head = ("model", "params", "params(M)", "GMACs", "GFLOPs", "T2 Params", "T2 \"FLOPs\"")
    body = [
        (
            r["label"],
            f"{r['params']:,}",
            f"{r['params_m']:.3f}",
            f"{r['gmacs']:.2f}",
            f"{r['gflops']:.2f}",
            _num(r["paper_params"], ".2f"),
            _num(r["paper_flops"], ".2f"),
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    ).rstrip()
    shape = "x".join(str(d) for d in rows[0]["input"]) if rows else f"1x3x{TABLE2_SIZE}x{TABLE2_SIZE}"
    return "\n".join(
        [
            fmt(head),
            *(fmt(b) for b in body),
            "",
            f"Measured: trainable parameters; forward MACs/FLOPs at {shape}, eval mode.",
            "T2 = the paper's Table 2 as printed, on the configuration it describes. " + PAPER_UNITS_NOTE,
        ]
    )
