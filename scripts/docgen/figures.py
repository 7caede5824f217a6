"""The generated figures: FocusNet++'s architecture drawn from an instance (forward hooks give every
stage's channels, resolution and parameters) and the ALL-HL curve from :mod:`focusnet.losses`. Each
PNG stores the SHA-256 of the data it is drawn from, so staleness does not depend on matplotlib."""
from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

from .common import HASH_KEY


def _digest(spec: Any) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _describe(module: Any) -> str:
    """A short description of a module from its own attributes (Conv3x3 g4 32→32, BN, ...)."""
    import torch.nn as nn

    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0]
        g = f" g{module.groups}" if module.groups > 1 else ""
        return f"Conv{k}x{k}{g} {module.in_channels}→{module.out_channels}"
    if isinstance(module, nn.BatchNorm2d):
        return "BN"
    if isinstance(module, nn.LeakyReLU):
        return f"LReLU({module.negative_slope:g})"
    if isinstance(module, nn.ReLU):
        return "ReLU"
    if isinstance(module, nn.Identity):
        return "identity"
    if isinstance(module, nn.Dropout):
        return f"Dropout({module.p:g})"
    if isinstance(module, nn.Linear):
        return f"FC {module.in_features}→{module.out_features}"
    if isinstance(module, nn.Sequential):
        return " · ".join(_describe(m) for m in module)
    children = list(module.children())
    inner = ", ".join(_describe(m) for m in children)
    return f"{type(module).__name__}({inner})" if children else type(module).__name__


#: The data flow of a ResGANet block (paper §2.1, implementation spec §1.2), printed beside the
#: block's modules in the architecture figure.
RESGANET_FLOW = (
    "h = conv_in(x)                  # C_in -> w channels, 4 groups of d = w/4\n"
    "t = trunk(h)                    # per group: BN-LReLU-Conv3x3, twice\n"
    "A = sigmoid(gate(t[attention])) # groups 0 and 2: per-pixel, per-channel weights\n"
    "F = t[features] + feature_shortcut(h[features])   # groups 1 and 3: residual units\n"
    "y = bn_out(conv_out(expand(F * A)))   # each gated group -> 2d channels, concat, 1x1\n"
    "y = se(y)                       # squeeze-and-excitation (paper preset)\n"
    "out = LReLU(shortcut(x) + y)    # residual connection"
)


def _wrap(text: str, width: int = 20) -> str:
    """`` · ``-separated layer names packed into lines of at most ``width`` characters."""
    lines: list[str] = []
    for item in text.split(" · "):
        if lines and len(lines[-1]) + 3 + len(item) <= width:
            lines[-1] += " · " + item
        else:
            lines.append(item)
    return "\n".join(lines)


def architecture_spec() -> dict[str, Any]:
    """What the architecture figure shows, read from a FocusNet++ (``paper`` preset) instance."""
    import torch

    from focusnet.models import create_model

    with torch.device("meta"):
        model = create_model("focusnetpp", preset="paper").eval()
    shapes: dict[str, list[int]] = {}
    hooks = []
    for name, module in model.named_modules():
        if name.count(".") <= 1 and name:
            hooks.append(module.register_forward_hook(lambda m, i, o, n=name: shapes.__setitem__(n, list(o.shape))))
    for i, head in enumerate(model.heads):  # the network runs each head's body (its logits), then the sigmoid
        hooks.append(head.body.register_forward_hook(
            lambda m, i_, o, n=f"heads.{i}": shapes.__setitem__(n, list(o.shape))))
    block = model.encoder[1][0]
    for name, module in block.named_children():
        hooks.append(module.register_forward_hook(
            lambda m, i, o, n=name: shapes.__setitem__("block." + n, list(o.shape))))
    with torch.no_grad():
        model(torch.empty(1, 3, 256, 256, device="meta"))
    for h in hooks:
        h.remove()

    def params(module: Any) -> int:
        return sum(p.numel() for p in module.parameters())

    def blocks_of(stage: Any) -> str:
        kinds = [type(m).__name__ for m in stage]
        return f"{kinds[0]} x{len(kinds)}"

    def node(key: str, label: str, module: Any) -> dict[str, Any]:
        return {"id": key, "label": label, "shape": shapes[key], "params": params(module)}

    nodes = [node("stem", f"stem\n{_describe(model.stem)}", model.stem)]
    for i, stage in enumerate(model.encoder):
        name = f"E{i + 1}" if i < len(model.encoder) - 1 else "bottleneck"
        nodes.append(node(f"encoder.{i}", f"{name}\n{blocks_of(stage)}", stage))
    for i, stage in enumerate(model.decoder):
        nodes.append(node(f"decoder.{i}", f"D{len(model.decoder) - i}\n{blocks_of(stage)}", stage))
    for i, head in enumerate(model.heads):
        nodes.append(node(f"heads.{i}", f"head\n{_wrap(_describe(head.body) + ' · sigmoid')}", head))
    nodes.append(node("fusion", f"fusion\n{_wrap(_describe(model.fusion))}", model.fusion))
    block_rows = [
        {"name": name, "text": _describe(module), "shape": shapes.get("block." + name)}
        for name, module in block.named_children()
    ]
    return {
        "title": "FocusNet++ (`paper` preset) at 1 x 3 x 256 x 256",
        "total": params(model),
        "dropout": _describe(model.dropout),
        "nodes": nodes,
        "block": {
            "title": f"ResGANet block of E2 ({block.conv_in.in_channels}→{block.conv_out.out_channels} channels, "
            f"d = {block.group} channels per group)",
            "rows": block_rows,
            "flow": RESGANET_FLOW,
            "params": params(block),
        },
    }


def draw_architecture(spec: dict[str, Any], path: Path) -> None:
    """Draw :func:`architecture_spec` as a U-shaped block diagram plus the ResGANet panel."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    fig = Figure(figsize=(15, 10.5), dpi=80)
    ax = fig.add_axes((0.01, 0.33, 0.98, 0.62))
    ax.set_xlim(-0.6, 13.4)
    ax.set_ylim(-4.75, 0.7)
    ax.axis("off")
    nodes = {n["id"]: n for n in spec["nodes"]}
    n_enc = sum(1 for k in nodes if k.startswith("encoder."))
    n_dec = sum(1 for k in nodes if k.startswith("decoder."))
    pos: dict[str, tuple[float, float]] = {"stem": (0.0, 0.0)}
    for i in range(n_enc):
        pos[f"encoder.{i}"] = (1.0 + i, -float(i))
    for i in range(n_dec):
        pos[f"decoder.{i}"] = (1.0 + n_enc + i, -float(n_dec - 1 - i))
        pos[f"heads.{i}"] = (1.75 + n_enc + n_dec, -float(n_dec - 1 - i))
    pos["fusion"] = (3.45 + n_enc + n_dec, -(n_dec - 1) / 2)
    colours = {"stem": "#dddddd", "encoder": "#a6cee3", "decoder": "#b2df8a", "heads": "#fdbf6f", "fusion": "#fb9a99"}

    def half(key: str) -> float:  # half the box width
        return 0.62 if key.startswith(("heads", "fusion")) else 0.46

    h2 = 0.45  # half the box height
    for key, (x, y) in pos.items():
        n, shape = nodes[key], nodes[key]["shape"]
        text = f"{n['label']}\n{shape[1]} ch, {shape[2]}x{shape[3]}\n{n['params']:,} params"
        ax.add_patch(FancyBboxPatch((x - half(key), y - h2), 2 * half(key), 2 * h2, boxstyle="round,pad=0.02",
                                    fc=colours[key.split(".")[0]], ec="#333333", lw=0.8))
        ax.text(x, y, text, ha="center", va="center", fontsize=6.8, linespacing=1.15)

    def arrow(start: tuple[float, float], end: tuple[float, float], colour: str = "#333333", ls: str = "-") -> None:
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=colour, lw=0.85, ls=ls))

    order = ["stem"] + [f"encoder.{i}" for i in range(n_enc)] + [f"decoder.{i}" for i in range(n_dec)]
    for a, b in zip(order, order[1:]):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        if y1 == y0:  # stem -> E1
            arrow((x0 + half(a), y0), (x1 - half(b), y1))
            continue
        down = y1 < y0
        arrow((x0 + half(a), y0 - 0.3 if down else y0), (x1 - half(b), y1) if down else (x1 - half(b) + 0.05, y1 - 0.3))
        if a.startswith("encoder") and b.startswith("encoder"):
            label = "max-pool /2"
        elif a.startswith("encoder"):
            label = f"{spec['dropout']},\nnearest x2"
        else:
            label = "nearest x2"
        ax.text((x0 + x1) / 2 + (-0.06 if down else 0.06), (y0 + y1) / 2 - 0.15, label, fontsize=6.5, color="#333333",
                ha="right" if down else "left", va="center")
    fx, fy = pos["fusion"]
    for i in range(n_dec):
        enc, dec, head = f"encoder.{n_enc - 2 - i}", f"decoder.{i}", f"heads.{i}"
        (x0, y0), (x1, y1), (hx, hy) = pos[enc], pos[dec], pos[head]
        arrow((x0 + half(enc), y0 + 0.3), (x1 - half(dec), y1 + 0.3), colour="#1f78b4", ls="--")
        ax.text((x0 + x1) / 2, y0 + 0.35, "skip, added", fontsize=6.5, color="#1f78b4", ha="center")
        arrow((x1 + half(dec), y1), (hx - half(head), hy), colour="#b15928")
        arrow((hx + half(head), hy), (fx - half("fusion"), fy), colour="#b15928")
        factor = nodes["fusion"]["shape"][2] // nodes[dec]["shape"][2]
        ax.text(hx + half(head) + 0.04, hy + 0.04, f"nearest x{factor}" if factor > 1 else "", fontsize=6.5,
                color="#b15928", va="bottom")
    ax.text(fx, fy - h2 - 0.08, "input: the 4 maps, concatenated\noutput: logits", fontsize=7, ha="center", va="top")
    ax.set_title(f"{spec['title']}: {spec['total']:,} parameters (drawn from the model's modules and forward hooks)",
                 fontsize=10)

    bx = fig.add_axes((0.01, 0.01, 0.98, 0.31))
    bx.axis("off")
    block = spec["block"]
    bx.text(0.0, 0.97, f"{block['title']}: {block['params']:,} parameters", fontsize=9, fontweight="bold", va="top")
    for k, row in enumerate(block["rows"]):
        shape = row["shape"]
        where = f"{shape[1]} ch, {shape[2]}x{shape[3]}" if shape else ""
        bx.text(0.0, 0.85 - 0.085 * k, f"{row['name']}", fontsize=8, family="monospace", va="top", fontweight="bold")
        bx.text(0.13, 0.85 - 0.085 * k, f"{row['text']}", fontsize=8, va="top")
        bx.text(0.47, 0.85 - 0.085 * k, where, fontsize=8, va="top", color="#555555")
    bx.text(0.56, 0.97, "data flow (paper §2.1):", fontsize=8.5, va="top", fontweight="bold")
    bx.text(0.56, 0.88, block["flow"], fontsize=7.5, family="monospace", va="top")
    _save(fig, path, spec)


def loss_spec() -> dict[str, Any]:
    """Samples of ALL(HL) and its slope at :class:`~focusnet.losses.ALLHybridLoss`'s defaults."""
    import torch

    from focusnet.losses import ALLHybridLoss, adaptive_log, adaptive_log_offset

    parameters = inspect.signature(ALLHybridLoss.__init__).parameters
    defaults = {k: p.default for k, p in parameters.items() if k in ("gamma", "omega", "epsilon")}
    xs = [round(i * 0.0025, 6) for i in range(0, 241)]  # HL from 0 to 0.6
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    y = adaptive_log(x, **defaults)
    (grad,) = torch.autograd.grad(y.sum(), x)
    return {
        "params": defaults,
        "offset": round(adaptive_log_offset(**defaults), 10),
        "x": xs,
        "y": [round(float(v), 6) for v in y.detach()],
        "slope": [round(float(v), 6) for v in grad],
    }


def draw_loss(spec: dict[str, Any], path: Path) -> None:
    """Draw :func:`loss_spec`: ALL(HL) beside HL itself, and the slope dALL/dHL."""
    from matplotlib.figure import Figure

    g, w, e = spec["params"]["gamma"], spec["params"]["omega"], spec["params"]["epsilon"]
    fig = Figure(figsize=(10, 4), dpi=90)
    a1, a2 = fig.subplots(1, 2)
    a1.plot(spec["x"], spec["y"], color="#1f78b4", lw=2, label="ALL(HL)")
    a1.plot(spec["x"], spec["x"], color="#999999", ls=":", label="HL (no wrapper)")
    a1.axvline(g, color="#e31a1c", ls="--", lw=1)
    a1.text(g + 0.005, 0.2, f"γ = {g:g}", color="#e31a1c", fontsize=9)
    a1.set_xlabel("hybrid loss HL = k·C_b + (1−k)·TL")
    a1.set_ylabel("loss value")
    a1.set_title(f"ALL(HL): ω·ln(1 + HL/ε) below γ, HL − C above (C = {spec['offset']:.4f})", fontsize=9)
    a1.legend(fontsize=8, loc="lower right")
    a2.plot(spec["x"], spec["slope"], color="#33a02c", lw=2)
    a2.axvline(g, color="#e31a1c", ls="--", lw=1)
    a2.set_yscale("log")
    a2.set_xlabel("hybrid loss HL")
    a2.set_ylabel("dALL/dHL (autograd)")
    a2.set_title(f"slope: ω/ε = {w / e:g} at 0, {w / (e + g):.2f} just below γ, 1 above", fontsize=9)
    fig.suptitle(f"Adaptive logarithmic wrapper of FocusNet++'s loss (ω = {w:g}, ε = {e:g}, γ = {g:g})", fontsize=10)
    fig.tight_layout()
    _save(fig, path, spec)


def _save(fig: Any, path: Path, spec: Any) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None, HASH_KEY: _digest(spec)})


def figure_hash(path: Path) -> str | None:
    """The source digest stored in a generated PNG (None when missing or unreadable)."""
    if not path.is_file():
        return None
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.info.get(HASH_KEY)
    except OSError:
        return None
