"""``docs/reference/config.md``: every config key with its default and allowed values, from
:class:`focusnet.engine.config.TrainConfig` (defaults from the dataclasses, allowed values from the
validator's own error messages, descriptions from the ``Attributes:`` docstrings) and the shipped
``configs/*.yaml``."""
from __future__ import annotations

import dataclasses
import inspect
import json
import re
from typing import Any

from .common import GENERATED, ROOT, _blocks, _unwrap, anchor, md_cell, rst_to_md


def _value(value: Any) -> str:
    if dataclasses.is_dataclass(value):
        return "(section)"
    if isinstance(value, tuple):
        value = list(value)
    return "`" + json.dumps(value) + "`"


def _config_table(cls: type, prefix: str) -> list[str]:
    """One row per declared field (:func:`focusnet.engine.config.settings`): its rule and help text."""
    from focusnet.engine.config import settings

    rows = ["| key | default | allowed | description |", "|---|---|---|---|"]
    for name, s in settings(cls, prefix).items():
        if dataclasses.is_dataclass(s.default):
            allowed = f"A mapping: see [the `{name}` section](#{anchor(f'The {name} section')})"
        else:
            allowed = s.rule.allowed
        rows.append(f"| `{s.key}` | {_value(s.default)} | {md_cell(allowed)} | {md_cell(rst_to_md(s.help))} |")
    return rows


def config_reference() -> str:
    """``docs/reference/config.md``: every key of :class:`TrainConfig` and its sections."""
    from focusnet.engine.config import AugmentConfig, DataConfig, TrainConfig, load_config
    from focusnet.losses import ALLHybridLoss

    lines = [
        "# Configuration reference",
        "",
        GENERATED,
        "",
        "`focusnet train CONFIG.yaml [KEY=VALUE ...]` reads a YAML (or JSON) file of the keys below, then "
        "applies the overrides in order: `epochs=10`, dotted keys for sections (`data.source=/data/isic`, "
        "`augment.enabled=true`, `model_kwargs.widths=[8,8,8,8,8]`, `loss.reduction=image`); values are read "
        "as YAML. A key missing from the file keeps its default. Unknown keys and bad values are refused "
        "before anything is written, with one line naming the key and what is allowed (the *allowed* column "
        "below is that message); the line ends with `(see docs/reference/config.md)`, this page. Every run "
        "saves its resolved config as `config.yaml` and `config.json` in the run folder.",
        "",
        "Defaults are the paper's training setup (Adam 1e-4 with the authors' step schedule, batch 8, 50 "
        "epochs, ALL-HL, no augmentation, best weights by validation loss); see "
        "[the training protocol](../explanation/protocol.md).",
        "",
        "## Top-level keys",
        "",
    ]
    lines += _config_table(TrainConfig, "")
    lines += ["", "## The data section", "", _unwrap(_blocks(DataConfig.__doc__)[0]), ""]
    lines += _config_table(DataConfig, "data.")
    lines += ["", "## The augment section", "", " ".join(_unwrap(b) for b in _blocks(AugmentConfig.__doc__)[:2]), ""]
    lines += _config_table(AugmentConfig, "augment.")

    lines += [
        "",
        "## The loss section",
        "",
        "Keyword arguments of `focusnet.losses.ALLHybridLoss` (see [the ALL-HL explanation](../explanation/loss.md)); "
        "a value outside the allowed range is refused when the config is read.",
        "",
        "| key | default | description |",
        "|---|---|---|",
    ]
    arg_notes = _google_args(ALLHybridLoss.__doc__)
    for name, param in inspect.signature(ALLHybridLoss.__init__).parameters.items():
        if name == "self":
            continue
        lines.append(f"| `loss.{name}` | {_value(param.default)} | {md_cell(arg_notes.get(name, ''))} |")
    lines.append("")
    lines.append("`loss` in a config file replaces the whole mapping; `loss.KEY=VALUE` overrides one argument.")

    lines += [
        "",
        "## The model_kwargs section",
        "",
        "Keyword arguments of the model's constructor, passed to `focusnet.create_model(model, preset=preset, "
        "**model_kwargs)`; each [model card](../models/index.md) lists its model's arguments and defaults. "
        "`in_channels` is set by `channels`; `model_kwargs.preset=NAME` is the same as `preset=NAME`.",
        "",
        "One key works for every model: `model_kwargs.ensemble=N` (N > 1) trains N copies of the model, each "
        "initialised anew and trained on its own loss over the same batches, and keeps the epoch whose "
        "ensemble (the logit of the members' mean probability) scores best. The saved weights, `predict`, "
        "`evaluate` and `export` take the ensemble as one model. It costs N times the parameters and the "
        "time per step (`focusnet.models.ensemble`).",
        "",
        "## The shipped configs",
        "",
        "How each file in `configs/` differs from the defaults above:",
        "",
        "| file | keys that differ from the defaults |",
        "|---|---|",
    ]
    defaults = _flat(TrainConfig().to_dict())
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        values = _flat(load_config(path).to_dict())
        diff = [f"`{k}: {json.dumps(v)}`" for k, v in values.items() if defaults.get(k) != v]
        lines.append(f"| `configs/{path.name}` | {md_cell(', '.join(diff) or '(none)')} |")
    return "\n".join(lines) + "\n"


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and key in ("data", "augment", "loss") and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _google_args(doc: str | None) -> dict[str, str]:
    """``{name: description}`` of a docstring's ``Args:`` section."""
    doc = inspect.cleandoc(doc or "")
    if "Args:" not in doc:
        return {}
    out: dict[str, str] = {}
    name = None
    for line in doc.split("Args:", 1)[1].splitlines():
        if not line.strip():
            if out:
                break
            continue
        indent = len(line) - len(line.lstrip())
        entry = re.match(r"^(\w+): (.*)$", line.strip())
        if indent <= 4 and entry:
            name = entry.group(1)
            out[name] = entry.group(2)
        elif indent <= 0:
            break
        elif name:
            out[name] += " " + line.strip()
    return {k: rst_to_md(v) for k, v in out.items()}
