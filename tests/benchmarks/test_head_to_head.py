"""benchmarks/bench_head_to_head.py and the budget config it runs (issue 15)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from focusnet.data.paths import data_root
from focusnet.engine.config import load_config
from focusnet.models import create_model

ROOT = Path(__file__).resolve().parents[2]
SPLIT = ROOT / "benchmarks" / "splits" / "isic_head_to_head.json"
CONFIG = ROOT / "configs" / "isic2018_focusnetpp_budget.yaml"


def test_the_committed_split_is_350_50_300_and_disjoint() -> None:
    split = json.loads(SPLIT.read_text())
    assert {k: len(v) for k, v in split.items()} == {"train": 350, "val": 50, "test": 300}
    ids = [i for part in split.values() for i in part]
    assert len(set(ids)) == 400 + 300
    assert all(part == sorted(part) for part in split.values())
    # train and val are the small set's sorted ids, in order: every train id sorts before every val id
    assert max(split["train"]) < min(split["val"])


def test_the_budget_config_is_the_head_to_head_recipe() -> None:
    c = load_config(CONFIG)
    assert (c.model, c.preset, c.size, c.max_minutes, c.lr, c.lr_schedule, c.monitor, c.precision) == (
        "focusnetpp", "lite", 128, 25, 1e-3, "cosine", "val_dice", "32-true")
    assert c.augment.enabled and c.model_kwargs == {"bn_momentum": 0.1}
    assert (ROOT / c.data.split).resolve() == SPLIT and c.data.source.endswith("isic2018_task1_512crop_all")


def test_smoke_run_writes_both_sides_and_the_paired_test(tmp_path: Path) -> None:
    pytest.importorskip("monai", reason="MONAI is not installed (pip install '.[bench]'); it is the other side")
    if not (data_root() / "isic2018_task1_512crop").is_dir():
        pytest.skip(f"no ISIC data under {data_root()} (set FOCUSNET_DATA)")
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_head_to_head.py"), "--smoke", "--threads", "1",
                           "--set", "preset=paper", "--set", "model_kwargs.norm=instance", "--basicunet-seed", "1", "--work", str(tmp_path / "work"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    # --set reached the config, and the label names the changed model argument (not the config's own)
    assert [r["model"] for r in result["rows"]] == ["focusnetpp:paper[norm=instance]", "monai.BasicUNet"]
    assert json.loads((tmp_path / "work" / "basicunet.json").read_text())["seed"] == 1  # --basicunet-seed reached it
    assert all(r["epochs"] == 1 and r["dice_ci95"][0] <= r["dice_mean"] <= r["dice_ci95"][1] for r in result["rows"])
    fn, bu = result["per_image_dice"]["focusnetpp"], result["per_image_dice"]["basicunet"]
    assert len(fn) == len(bu) == len(result["ids"]) == 4
    paired = result["paired"]
    assert paired["difference_mean"] == pytest.approx(sum(a - b for a, b in zip(fn, bu)) / 4)
    assert paired["focusnetpp_better"] + paired["focusnetpp_worse"] + paired["ties"] == 4
    assert 0.0 <= paired["wilcoxon"]["pvalue"] <= 1.0
    assert "Wilcoxon p" in proc.stdout
    # Dice by lesion area: the groups hold every test image once, and weighted by their sizes give the mean
    areas = result["by_lesion_area"]
    assert sum(areas["images"]) == 4 and "lesion covers" in proc.stdout
    for side, dice in (("focusnetpp", fn), ("basicunet", bu)):
        weighted = sum(n * d for n, d in zip(areas["images"], areas["dice"][side]) if n)
        assert weighted / 4 == pytest.approx(sum(dice) / 4)
    # a second run into the same folder is refused unless --resume
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_head_to_head.py"), "--smoke",
                            "--work", str(tmp_path / "work"), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "--resume" in again.stderr


def test_one_side_alone_with_fixed_epochs(tmp_path: Path) -> None:
    if not (data_root() / "isic2018_task1_512crop").is_dir():
        pytest.skip(f"no ISIC data under {data_root()} (set FOCUSNET_DATA)")
    script = str(ROOT / "benchmarks" / "bench_head_to_head.py")
    no_epochs = subprocess.run([sys.executable, script, "--minutes", "0", "--work", str(tmp_path / "w0")],
                               capture_output=True, text=True, timeout=120)
    assert no_epochs.returncode == 2 and "--epochs" in no_epochs.stderr
    assert not (tmp_path / "w0").exists()  # refused before anything is written
    work, out = tmp_path / "work", tmp_path / "result.json"
    proc = subprocess.run([sys.executable, script, "--smoke", "--only", "focusnetpp", "--threads", "1",
                           "--set", "model_kwargs.bottleneck_dropout=0", "--set", "model_kwargs.enc_blocks=[1,1,1,1,2]",
                           "--work", str(work), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    side = json.loads((work / "focusnetpp.json").read_text())
    assert side["overrides"] == ["model_kwargs.bottleneck_dropout=0", "model_kwargs.enc_blocks=[1,1,1,1,2]"]
    assert side["epochs"] == 1
    # the parameter count is the trained network's, overrides included
    variant = create_model("focusnetpp", preset="lite", enc_blocks=(1, 1, 1, 1, 2))
    assert side["params"] == sum(p.numel() for p in variant.parameters()) > 377_381
    assert len(side["summary"]["per_image"]) == 4
    assert not (work / "basicunet.json").exists() and not out.exists()  # no other side, no comparison
