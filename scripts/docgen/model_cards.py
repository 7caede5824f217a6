"""``docs/models/*.md``: a card per registered model and preset (paper, departures, parameters and
GMACs from :mod:`focusnet.complexity`, input constraints probed on the meta device, and the
accuracy published in ``benchmarks/published/``, see :mod:`docgen.measured`), plus
``docs/models/index.md``."""
from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any

from .common import GENERATED, _blocks, _unwrap, md_cell
from .measured import MeasuredResult, accuracy_lines, index_cell, results_for


@dataclass
class Variant:
    """One model card: a registered model and one of its presets (None: the model has none)."""

    model: str
    preset: str | None

    @property
    def slug(self) -> str:
        return self.model if self.preset is None else f"{self.model}-{self.preset}"

    @property
    def title(self) -> str:
        return f"`{self.model}`" + (f" (`{self.preset}` preset)" if self.preset else "")

    def kwargs(self) -> dict[str, Any]:
        return {} if self.preset is None else {"preset": self.preset}


def variants() -> list[Variant]:
    """Every registered model and preset, in registry order."""
    from focusnet.models import list_models, list_presets

    return [Variant(m, p) for m in list_models() for p in (list_presets(m) or (None,))]


def input_multiple(name: str, **kwargs: Any) -> tuple[int | None, int | None]:
    """``(multiple, smallest)``: H and W must be multiples of ``multiple``; ``smallest`` is the least
    side that works. Probed with forward passes on the meta device (shapes only, no arithmetic)."""
    import torch

    from focusnet.models import create_model

    with torch.device("meta"):
        model = create_model(name, **kwargs).eval()

    def works(side: int) -> bool:
        try:
            with torch.no_grad():
                out = model(torch.empty(1, 3, side, side, device="meta"))
        except Exception:  # noqa: BLE001 - any failure means the size does not work
            return False
        return tuple(out.shape[-2:]) == (side, side)

    for multiple in (1, 2, 4, 8, 16, 32, 64):
        odd = next(k for k in range(max(1, 64 // multiple), 10_000) if k % 2 == 1)
        if works(multiple * odd):
            smallest = next((multiple * k for k in range(1, 9) if works(multiple * k)), None)
            return multiple, smallest
    return None, None


def _module_doc(name: str) -> str:
    from focusnet.models.registry import model_constructor

    return inspect.getmodule(model_constructor(name)).__doc__ or ""


def _card_sections(name: str, preset: str | None) -> dict[str, list[str]]:
    """The module docstring split into ``title``, ``paper``, ``presets`` (this preset's entry),
    ``departures`` and ``architecture`` Markdown paragraphs."""
    blocks = _blocks(_module_doc(name))
    parts: dict[str, list[str]] = {"title": [], "paper": [], "presets": [], "departures": [], "architecture": []}
    parts["title"].append(_unwrap(blocks[0]))
    mode = None
    for block in blocks[1:]:
        is_list = block.lstrip().startswith("* ")
        if is_list and mode in ("departures", "presets"):
            target = mode
        else:
            mode = None
            first_sentence = block.split(". ")[0]
            if block.startswith("Paper:"):
                target = "paper"
            elif block.startswith("Presets"):
                target = mode = "presets"
                continue
            elif re.search(r"depart", first_sentence, re.I) or re.search(r"Departures", block):
                target = "departures"
                mode = "departures" if block.rstrip().endswith(":") else None
            else:
                target = "architecture"
        text = _unwrap(block)
        if target == "paper":
            text = text[len("Paper:"):].strip()
        if target == "presets":
            text = "\n".join(line for line in text.splitlines() if preset and line.startswith(f"- `{preset}`"))
            if not text:
                continue
        parts[target].append(text)
    return parts


def _constructor_rows(name: str, preset: str | None) -> list[str]:
    from focusnet.models.registry import model_constructor, model_signature

    fn = model_constructor(name)
    rows = ["| argument | default |", "|---|---|"]
    for pname, param in model_signature(name).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        default = preset if pname == "preset" and preset else param.default
        rows.append(f"| `{pname}` | `{default!r}` |")
    module = inspect.getmodule(fn)
    presets = getattr(module, "PRESETS", None)
    if preset and isinstance(presets, dict) and dataclasses.is_dataclass(presets.get(preset)):
        for f in dataclasses.fields(presets[preset]):
            value = getattr(presets[preset], f.name)
            rows.append(f"| `{f.name}` | `{value!r}` |")
    return rows


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def model_card(v: Variant, rows: list[dict[str, Any]], results: list[MeasuredResult]) -> str:
    """The Markdown card of one variant."""
    from focusnet.complexity import PAPER_UNITS_NOTE

    parts = _card_sections(v.model, v.preset)
    mine = [r for r in rows if r["model"] == v.model and r["preset"] == v.preset]
    main = next(r for r in mine if r["kwargs"] == v.kwargs())
    multiple, smallest = input_multiple(v.model, **v.kwargs())
    side = max(32, 2 * (multiple or 16))
    call = f'focusnet.create_model("{v.model}"' + (f', preset="{v.preset}"' if v.preset else "") + ")"
    lines = [f"# {v.title}", "", GENERATED, ""]
    lines += [parts["title"][0], ""]
    lines += parts["presets"] + ([""] if parts["presets"] else [])
    lines += [
        "```pycon",
        ">>> import torch, focusnet",
        ">>> from focusnet.complexity import count_parameters",
        f">>> model = {call}.eval()",
        ">>> count_parameters(model)",
        str(main["params"]),
        f">>> model(torch.randn(1, 3, {side}, {side})).shape  # logits, same height and width as the input",
        f"torch.Size([1, 1, {side}, {side}])",
        "```",
        "",
        "(`tests/docs/test_doctests.py` runs this example.)",
        "",
        "## Paper",
        "",
        *(parts["paper"] or ["Not stated in the module docstring."]),
        "",
        "## Size and compute",
        "",
        "Trainable parameters, and one forward pass on a 1 x 3 x 256 x 256 input in eval mode counted by "
        "`torch.utils.flop_counter` (`focusnet complexity " + v.model + (f" --preset {v.preset}" if v.preset else "")
        + "`):",
        "",
        "| configuration | parameters | GMACs | GFLOPs | paper's Table 2 Params / \"FLOPs\" | note |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in mine:
        paper = f"{r['paper_params']} / {r['paper_flops']}" if r["paper_params"] is not None else "–"
        lines.append(
            f"| `{md_cell(r['label'])}` | {_fmt_int(r['params'])} | {r['gmacs']:.2f} | {r['gflops']:.2f} | {paper} "
            f"| {md_cell(r['note'])} |"
        )
    if any(r["paper_params"] is not None for r in mine):
        lines += ["", f"Table 2's units: {PAPER_UNITS_NOTE}"]
    lines += [
        "",
        "## Input constraints",
        "",
        "- Input: a float tensor (B, `in_channels`, H, W), normalised as in training (per-image min-max to "
        "[0, 1] by default); `in_channels` is a constructor argument (3 for RGB, 1 for grey).",
        (f"- H and W must be multiples of {multiple}; the smallest side that works is {smallest}."
         if multiple else "- The input size could not be probed."),
        "- Output: logits (B, `num_classes`, H, W); apply a sigmoid for probabilities. The training and "
        "prediction commands resize every image to the config's `size` (default 256), which must satisfy the "
        "constraint above.",
        "",
        "(Probed by running the model on the meta device at sides that are odd multiples of 1, 2, 4, ... .)",
        "",
        "## What we changed and why",
        "",
    ]
    for text in parts["departures"] or ["No departures are listed in the module docstring."]:
        lines += [text, ""]
    if parts["architecture"]:
        lines += ["## Architecture", ""]
        for text in parts["architecture"]:
            lines += [text, ""]
    lines += ["## Constructor arguments", "", f"`{call[:-1]}, **kwargs)` accepts:", "",
              *_constructor_rows(v.model, v.preset), ""]
    lines += ["## Expected accuracy", "", *accuracy_lines(results_for(results, v.model, v.preset))]
    return "\n".join(lines).rstrip() + "\n"


def model_index(vs: list[Variant], rows: list[dict[str, Any]], results: list[MeasuredResult]) -> str:
    lines = [
        "# Model cards",
        "",
        GENERATED,
        "",
        "One card per registered model and preset, generated from the registry (`focusnet models`), the "
        "model modules' docstrings, `focusnet.complexity` and the JSON in `benchmarks/published/`. Parameters "
        "and GMACs are at 1 x 3 x 256 x 256.",
        "",
        "| card | parameters | GMACs | H, W multiple of | measured (test Dice, per-image mean) |",
        "|---|---:|---:|---:|---|",
    ]
    for v in vs:
        r = next(r for r in rows if r["model"] == v.model and r["kwargs"] == v.kwargs())
        multiple, _ = input_multiple(v.model, **v.kwargs())
        dice = index_cell(results_for(results, v.model, v.preset))
        lines.append(f"| [{v.title}]({v.slug}.md) | {_fmt_int(r['params'])} | {r['gmacs']:.2f} | {multiple} "
                     f"| {md_cell(dice)} |")
    return "\n".join(lines) + "\n"
