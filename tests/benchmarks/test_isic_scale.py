"""benchmarks/bench_isic_scale.py: ISIC at the paper's scale, each side against FocusNet++ (issue 18)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from focusnet.data.paths import data_root

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_isic_scale.py"


def test_smoke_run_scores_every_side_on_the_same_images_and_refuses_a_finished_side(tmp_path: Path) -> None:
    pytest.importorskip("monai", reason="MONAI is not installed (pip install '.[bench]'); BasicUNet is a side")
    if not (data_root() / "isic2018_task1_512crop").is_dir():
        pytest.skip(f"no ISIC data under {data_root()} (set FOCUSNET_DATA)")
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, str(SCRIPT), "smoke", "--work", str(work)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((work / "isic-scale.json").read_text())
    assert [r["side"] for r in result["rows"]] == ["focusnetpp", "focusnetpp_lite_instance", "focusnetpp_instance",
                                                   "unet", "attention_unet", "basicunet"]
    assert result["counts"] == {"train": 8, "val": 4, "test": 4}
    assert result["ids"] == json.loads((work / "split.json").read_text())["test"]  # head_to_head_seeds.py pairs on them
    assert all(r["epochs"] == 1 and r["n"] == 4 for r in result["rows"])
    assert all(r["dice_ci95"][0] <= r["dice_mean"] <= r["dice_ci95"][1] for r in result["rows"])
    # the Attention U-Net side trains with the recipe's BatchNorm momentum, not Keras' 0.01
    assert json.loads((work / "attention_unet-run" / "config.json").read_text())["model_kwargs"] == {"bn_momentum": 0.1}
    lite = json.loads((work / "focusnetpp_lite_instance-run" / "config.json").read_text())
    assert (lite["preset"], lite["model_kwargs"], lite["seed"]) == ("lite", {"bn_momentum": 0.1, "norm": "instance"}, 0)
    paper = json.loads((work / "focusnetpp_instance-run" / "config.json").read_text())
    assert (paper["preset"], paper["model_kwargs"]) == ("paper", {"bn_momentum": 0.1, "norm": "instance"})
    ref = result["per_image_dice"]["focusnetpp"]
    for side, paired in result["paired"].items():
        other = result["per_image_dice"][side]
        assert paired["difference_mean"] == pytest.approx(sum(a - b for a, b in zip(ref, other)) / len(ref))
        assert 0.0 <= paired["wilcoxon"]["pvalue"] <= 1.0
    assert set(result["paired"]) == {"focusnetpp_lite_instance", "focusnetpp_instance", "unet", "attention_unet",
                                     "basicunet"}
    again = subprocess.run([sys.executable, str(SCRIPT), "side", "unet", "--work", str(work)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "unet.json exists" in again.stderr


def test_no_budget_needs_an_epoch_count(tmp_path: Path) -> None:
    """``--minutes 0`` drops the wall-clock budget (host-independent runs); the epoch count must then be given."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "side", "unet", "--work", str(tmp_path), "--minutes", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--minutes 0 needs --epochs" in proc.stderr
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_a_variant_side_needs_a_tag_and_gets_its_own_file(tmp_path: Path) -> None:
    """``--set`` (an ablation on top of a side's recipe) is refused without ``--tag`` and for BasicUNet
    (whose loop reads no focusnet config); a tagged variant is kept in ``W/<side>-<tag>.json``, so it
    neither overwrites nor is mistaken for the side itself."""
    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(SCRIPT), "side", *extra, "--work", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)

    untagged = run("unet", "--set", "lr=2e-3")
    assert untagged.returncode == 2 and "name the variant with --tag" in untagged.stderr
    basicunet = run("basicunet", "--set", "lr=2e-3", "--tag", "lr2")
    assert basicunet.returncode == 2 and "not basicunet" in basicunet.stderr
    smoke = subprocess.run([sys.executable, str(SCRIPT), "smoke", "--tag", "lr2", "--work", str(tmp_path)],
                           capture_output=True, text=True, timeout=120)  # `report` would not find tagged sides
    assert smoke.returncode == 2 and "with the command `side`" in smoke.stderr
    assert not any(tmp_path.iterdir())  # refused before anything was written
    (tmp_path / "unet-lr2.json").write_text("{}\n")
    finished = run("unet", "--set", "lr=2e-3", "--tag", "lr2")
    assert finished.returncode != 0 and "unet-lr2.json exists" in finished.stderr
