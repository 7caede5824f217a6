"""What a comparison writes from its numbers: ``comparison.json``, tables, figures and ``report.html``.

The report's gallery and the qualitative figure need every test image with each model's mask:
:func:`_cases` runs each finished model once over the test split (at model resolution).

Example:
    >>> write_outputs(comparison, specs, configs, Path("runs/compare-isic"), print, 300, print)  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from focusnet.compare import figures, report, tables
from focusnet.compare.protocol import write_json
from focusnet.compare.specs import ModelSpec
from focusnet.engine import evaluate as ev
from focusnet.engine.config import TrainConfig
from focusnet.engine.rundir import torch_threads

__all__ = ["COMPARISON_JSON", "REPORT_HTML", "write_outputs"]

COMPARISON_JSON = "comparison.json"
REPORT_HTML = "report.html"


def _cases(
    comparison: dict[str, Any], configs: dict[str, tuple[TrainConfig, list[str]]], out_dir: Path
) -> list[dict[str, Any]]:
    """Every test image with its truth and each done model's mask, at model resolution."""
    done = [m for m in comparison["models"] if m["status"] == "done"]
    if not done:
        return []
    first = Path(done[0]["run_dir"])
    data = ev.load_eval_data(first, "test")
    images = data.images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    truths = (data.masks[:, 0] > 0.5).numpy()
    cases = [
        {"id": i, "image": images[k], "truth": truths[k], "predictions": {}, "dice": {}} for k, i in enumerate(data.ids)
    ]
    for m in done:
        config = configs[m["name"]][0]
        dice = {r["id"]: r["dice"] for r in m["summary"]["per_image"]}
        model, _ = ev.load_best_model(Path(m["run_dir"]), torch.device("cpu"))
        model.eval()
        with torch_threads(config.num_threads), torch.inference_mode():
            for start in range(0, len(cases), 16):
                probs = torch.sigmoid(model(data.images[start:start + 16]).float())[:, 0]
                for k, p in enumerate((probs > config.threshold).numpy()):
                    cases[start + k]["predictions"][m["name"]] = p
        for case in cases:
            case["dice"][m["name"]] = dice.get(case["id"], float("nan"))
        del model
    return cases


def write_outputs(
    comparison: dict[str, Any], specs: Sequence[ModelSpec], configs: dict[str, tuple[TrainConfig, list[str]]],
    out_dir: Path, say: Callable[[str], None], gallery_limit: int, show: Callable[[str], None],
) -> None:
    """Write ``comparison.json``, the tables, the figures and ``report.html``; show the results table.

    Args:
        comparison: :func:`focusnet.compare.results.collect`'s dict.
        specs: the models.
        configs: each model's config (and the dropped ``model_kwargs``), by run name.
        out_dir: the comparison folder.
        say: progress lines (stderr).
        gallery_limit: at most this many test images in the report's gallery.
        show: the results table, the command's result (stdout).

    Example:
        >>> write_outputs(comparison, specs, configs, Path("runs/compare-isic"), print, 300, print)  # doctest: +SKIP
    """
    write_json(out_dir / COMPARISON_JSON, comparison)
    written = tables.write_tables(comparison, out_dir / "tables")
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    done = [m for m in comparison["models"] if m["status"] == "done"]
    colors = figures.model_colors(m["name"] for m in comparison["models"])
    figs: dict[str, Path] = {}
    cases = _cases(comparison, configs, out_dir)
    if done:
        ref = next((m for m in done if m["name"] == comparison["reference"]), done[0])
        dice_by_id = {r["id"]: r["dice"] for r in ref["summary"]["per_image"] if r["dice"] is not None}
        picks = figures.select_cases(dice_by_id, per_group=2)
        names = [m["name"] for m in done]
        figs[f"Best, median and worst test images of {ref['name']} (model resolution)"] = figures.qualitative_grid(
            cases, picks, names, fig_dir / "qualitative", colors=colors)[0]
        figs["Training and validation curves"] = figures.training_curves(comparison, fig_dir / "curves")[0]
        dice_figure = figures.dice_distributions(comparison, fig_dir / "dice_distribution")[0]
        figs["Per-image Dice on the test split"] = dice_figure
    report_path = report.write_report(
        comparison,
        out_dir / REPORT_HTML,
        tables_markdown=tables.to_markdown(comparison, footer=False),
        paper_markdown=tables.paper_reference_markdown(comparison["dataset"]) or None,
        figures=figs,
        cases=cases,
        max_gallery=gallery_limit,
    )
    failed = [m["name"] for m in comparison["models"] if m["status"] != "done"]
    show(tables.to_markdown(comparison, footer=False))  # the result: stdout; progress and paths: stderr
    say(f"focusnet compare: tables {out_dir / 'tables'} ({len(written)} files), figures {fig_dir} "
        f"({sum(1 for _ in fig_dir.glob('*.p*'))} files), report {report_path}"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""))
