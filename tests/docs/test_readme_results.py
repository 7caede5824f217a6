"""The README's results section is generated from ``benchmarks/published/*.json`` by
``scripts/docgen/readme_results.py``: every row of a comparison (models that focusnet does not
register included) with its paired test and command, training runs grouped by protocol, and the
committed README block equal to the rendered one."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))

from docgen.measured import PublishedResultError  # noqa: E402
from docgen.readme_results import results_block  # noqa: E402

ROW = {"params_M": 1.5, "epochs": 4, "train_wall_s": 100.0, "dice_mean": 0.8, "dice_ci95": [0.7, 0.9],
       "pooled_dice": 0.82, "thresholded_jaccard": 0.6, "jaccard_mean": 0.7, "precision_mean": 0.8,
       "recall_mean": 0.85}


def _write(folder: Path, name: str, data: dict) -> Path:
    path = folder / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _script():
    spec = importlib.util.spec_from_file_location("update_readme_tables", REPO / "scripts" / "update_readme_tables.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_head_to_head_renders_every_row_the_paired_test_and_the_command(tmp_path: Path) -> None:
    _write(tmp_path, "h2h.json", {
        "benchmark": "head-to-head", "date": "20261204-165746", "data": "/d/isic_all", "split_file": "/s/h2h.json",
        "size": 64, "minutes": 1.0, "threads": 2, "ids": ["a", "b", "c"],
        "protocol": {"threshold": 0.5, "aggregation": "per-image mean (bootstrap 95% CI)"},
        "rows": [dict(ROW, model="focusnetpp:paper"), dict(ROW, model="monai.BasicUNet", dice_mean=0.8512)],
        "paired": {"difference_mean": -0.0512, "difference_ci95": [-0.07, -0.03], "wilcoxon": {"pvalue": 0.0021}},
        "published": {"command": "`python benchmarks/bench_head_to_head.py --work W`"},
    })
    block = results_block(tmp_path)
    assert "| `focusnetpp:paper` | 1.50 | 4 | 0.8 (0.7–0.9) |" in block
    assert "| `monai.BasicUNet` | 1.50 | 4 | 0.8512 (0.7–0.9) |" in block
    assert "| 3 | −0.0512 (p = 0.0021) |" in block  # n = the test ids; the paired column of BasicUNet
    assert "−0.0512 per-image Dice (95% CI −0.0700 to −0.0300), Wilcoxon p = 0.0021" in block
    assert "Reproduce: `python benchmarks/bench_head_to_head.py --work W`." in block
    assert "test split of `isic_all` (split file `h2h.json`), n = 3 images, scored at 64²" in block
    assert "probability > 0.5" in block and "Equal budget: 1 minutes per model, 2 thread(s) each" in block
    assert "JSON: [`h2h.json`](h2h.json)" in block


def test_seed_summary_comes_first_with_every_run_and_the_seed_averaged_test(tmp_path: Path) -> None:
    """benchmarks/head_to_head_seeds.py's JSON renders as its own table, ahead of the single comparisons."""
    spec = importlib.util.spec_from_file_location("head_to_head_seeds", REPO / "benchmarks" / "head_to_head_seeds.py")
    seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeds)
    sides = []
    runs = [("fn0", "focusnetpp:lite", [0.9, 0.8, 0.7, 0.6]), ("fn1", "focusnetpp:lite", [0.8, 0.8, 0.7, 0.7]),
            ("bu0", "monai.BasicUNet", [0.85, 0.8, 0.75, 0.5])]
    for name, model, dice in runs:
        # lesions of 2, 10, 30 and 80 of 100 pixels: one image in each area group but 50-75%
        per_image = [{"id": str(i), "dice": d, "tp": n, "fn": 0, "fp": 0, "tn": 100 - n}
                     for i, (d, n) in enumerate(zip(dice, (2, 10, 30, 80)))]
        side = {"model": model, "epochs": 3, "overrides": ["model_kwargs.norm=instance"],
                "summary": {"per_image": per_image}}
        sides.append(_write(tmp_path, f"{name}.side", side))
    result = seeds.analyse({"focusnetpp": sides[:2], "basicunet": sides[2:]}, split="the test split")
    result["command"] = "python benchmarks/head_to_head_seeds.py --focusnetpp A B --basicunet C"
    published = tmp_path / "published"
    published.mkdir()
    _write(published, "z-seeds.json", result)
    _write(published, "a-h2h.json", {
        "benchmark": "head-to-head", "date": "20261204-165746", "data": "/d/isic_all", "split_file": "/s/h2h.json",
        "size": 64, "minutes": 1.0, "threads": 2, "ids": ["a", "b", "c"], "protocol": {"threshold": 0.5},
        "rows": [dict(ROW, model="focusnetpp:paper"), dict(ROW, model="monai.BasicUNet")],
        "paired": {"difference_mean": -0.05, "difference_ci95": [-0.07, -0.03], "wilcoxon": {"pvalue": 0.002}},
    })
    block = results_block(published)
    assert block.index("z-seeds.json") < block.index("a-h2h.json")  # the summary over seeds first
    assert "| `focusnetpp:lite` (model_kwargs.norm=instance) | 2 | 0.7500, 0.7500 | 0.7500 ± 0.0000 |" in block
    assert "| `monai.BasicUNet` (model_kwargs.norm=instance) | 1 | 0.7250 | 0.7250 ± – |" in block
    assert "FocusNet++ against `monai.BasicUNet`: single runs paired" in block
    assert "2 pairs): differences from +0.0250 to +0.0250" in block
    assert "Protocol: the test split, n = 4 images" in block
    assert "Seed-averaged" in block and "+0.0250 (95% CI" in block and "n = 4 images" in block
    assert "Reproduce: `python benchmarks/head_to_head_seeds.py --focusnetpp A B --basicunet C`." in block
    assert "| side | < 5% (1) | 5–20% (1) | 20–50% (1) | 50–75% (0) | ≥ 75% (1) |" in block
    assert "| `focusnetpp:lite` | 0.8500 | 0.8000 | 0.7000 | – | 0.6500 |" in block
    broken = dict(result, comparisons={"basicunet": {"cross_pairs": [], "seed_averaged": {}}})
    _write(published, "z-seeds.json", broken)
    with pytest.raises(PublishedResultError, match="z-seeds.json"):
        results_block(published)


def test_isic_scale_renders_every_side_with_its_paired_test(tmp_path: Path) -> None:
    _write(tmp_path, "scale.json", {
        "benchmark": "isic-scale", "date": "20261205-101010", "data": "isic2018_task1_512crop_all", "size": 128,
        "minutes": 60.0, "threads": 1, "counts": {"train": 1640, "val": 234, "test": 470},
        "protocol": {"split": "test (bcdu, scaled)", "threshold": 0.5,
                     "aggregation": "per-image mean (bootstrap 95% CI); pooled Dice from summed counts",
                     "test": "two-sided Wilcoxon signed-rank on per-image Dice, FocusNet++ - other"},
        "rows": [dict(ROW, side="focusnetpp", model="focusnetpp:paper", n=470),
                 dict(ROW, side="unet", model="unet", dice_mean=0.78, n=470),
                 dict(ROW, side="basicunet", model="monai.BasicUNet", dice_mean=0.85, n=470)],
        "paired": {"unet": {"difference_mean": 0.02, "wilcoxon": {"pvalue": 0.001}},
                   "basicunet": {"difference_mean": -0.05, "difference_ci95": [-0.06, -0.04],
                                 "wilcoxon": {"pvalue": 0.013}, "focusnetpp_better": 200, "focusnetpp_worse": 270}},
    })
    block = results_block(tmp_path)
    for model in ("focusnetpp:paper", "unet", "monai.BasicUNet"):
        assert f"| `{model}` |" in block
    assert "| 470 | +0.0200 (p = 0.001) |" in block and "| 470 | −0.0500 (p = 0.013) |" in block
    assert "FocusNet++ − `unet`: +0.0200 per-image Dice, Wilcoxon p = 0.001" in block
    assert "FocusNet++ better on 200 images, worse on 270" in block
    assert "1640 train / 234 val / 470 test" in block and "60 minutes per model, 1 thread(s) each" in block
    # no published command: the benchmark script's steps, every side named
    assert "`python benchmarks/bench_isic_scale.py prepare --work WORK`" in block
    assert "(focusnetpp unet basicunet)" in block and "--minutes 60 --threads 1 --size 128" in block


def _run_summary(preset: str, dice: float, context: str = "equal budget") -> dict:
    summary = {"mean": {"dice": dice, "jaccard": 0.7, "precision": 0.8, "recall": 0.9}, "pooled": {"dice": 0.85},
               "count": 12, "protocol": {"threshold": 0.5}}
    return {
        "benchmark": "run-summary", "date": "2026-12-04T21:32:47+0000", "run": f"/tmp/run-{preset}", "epochs": 7,
        "train_seconds": 600.0, "counts": {"train": 40, "val": 12, "test": 12}, "summary": summary,
        "config": {"model": "focusnetpp", "preset": preset, "size": 128,
                   "data": {"source": "/d/dsb2018_all/stage1_train", "split": "paper-test", "split_seed": 0}},
        "published": {"context": context, "command": f"`focusnet train C preset={preset}`"},
    }


def test_run_summaries_of_one_protocol_share_a_table(tmp_path: Path) -> None:
    _write(tmp_path, "b-nuclei.json", _run_summary("nuclei", 0.89))
    _write(tmp_path, "a-lite.json", _run_summary("lite", 0.9))
    _write(tmp_path, "c-other.json", _run_summary("paper", 0.7, context="another budget"))
    _write(tmp_path, "d-old.json", {  # an old single run: named in one line, its numbers left to the model cards
        "benchmark": "transcribed", "transcribed_from": "RESULTS.md", "context": "c", "date": "2026-11-26",
        "model": "focusnetpp", "preset": "lite", "title": "t", "data": "dsb2018", "split": "s", "size": 256,
        "test": {"count": 39, "mean": {"dice": 0.8714}}, "command": "x"})
    block = results_block(tmp_path)
    assert block.count("### Training runs: `dsb2018_all`, 128²") == 2  # two contexts, two tables
    first = block.split("### Training runs")[1]
    assert first.index("`focusnetpp:lite`") < first.index("`focusnetpp:nuclei`") and "preset=paper" not in first
    assert "| `focusnetpp:lite` | 7 | 600 | 0.9 | 0.7 | 0.8 | 0.9 | 0.85 | 12 | 2026-12-04 |" in first
    assert "- `focusnetpp:nuclei`: `focusnet train C preset=nuclei`" in first
    assert "40 train / 12 val / 12 test" in first and "probability > 0.5" in first
    assert "Older single runs" in block and "[`d-old.json`](d-old.json)" in block and "0.8714" not in block
    assert results_block(tmp_path) == block  # deterministic


def test_a_malformed_comparison_names_its_file(tmp_path: Path) -> None:
    data = {"benchmark": "head-to-head", "date": "20261204", "data": "/d/x", "split_file": "/s.json", "size": 64,
            "minutes": 1.0, "threads": 2, "ids": ["a"], "rows": [dict(ROW, model="focusnetpp:paper")], "paired": {}}
    del data["rows"][0]["params_M"]
    _write(tmp_path, "bad.json", data)
    with pytest.raises(PublishedResultError, match="bad.json"):
        results_block(tmp_path)


def test_the_readme_holds_the_rendered_block() -> None:
    script = _script()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split(script.RESULTS_START, 1)[1].split(script.RESULTS_END, 1)[0]
    assert block.strip() == results_block().strip(), (
        "README.md's results are stale: run `.venv/bin/python scripts/update_readme_tables.py`"
    )
    assert script.check(REPO / "README.md")
    stale = readme.replace(script.RESULTS_START, script.RESULTS_START + "\nold row", 1)
    assert script.render_readme(stale) == readme
    with pytest.raises(ValueError):
        script.render_readme(readme.replace(script.RESULTS_END, ""))
