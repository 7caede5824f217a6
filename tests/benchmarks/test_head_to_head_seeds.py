"""benchmarks/head_to_head_seeds.py: the head-to-head over several training seeds, on synthetic side results."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "head_to_head_seeds.py"


def _side(path: Path, dice: list[float], ids: list[str] | None = None) -> Path:
    ids = ids or [f"img{i}" for i in range(len(dice))]
    path.write_text(json.dumps({"model": "m", "epochs": 3, "summary": {"per_image": [
        {"id": i, "dice": d} for i, d in zip(ids, dice)]}}))
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_side_statistics_cross_pairs_and_seed_average(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.9, 40)
    fn = [base + 0.05 + rng.normal(0, 0.02, 40) for _ in range(3)]
    bu = [base + rng.normal(0, 0.02, 40) for _ in range(2)]
    fn_files = [str(_side(tmp_path / f"fn{i}.json", list(d))) for i, d in enumerate(fn)]
    bu_files = [str(_side(tmp_path / f"bu{i}.json", list(d))) for i, d in enumerate(bu)]
    out = tmp_path / "seeds.json"
    proc = _run("--focusnetpp", *fn_files, "--basicunet", *bu_files, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    means = [float(d.mean()) for d in fn]
    assert result["sides"]["focusnetpp"]["mean_of_runs"] == pytest.approx(np.mean(means))
    assert result["sides"]["focusnetpp"]["sd_of_runs"] == pytest.approx(np.std(means, ddof=1))
    pairs = result["comparisons"]["basicunet"]["cross_pairs"]
    assert len(pairs) == 3 * 2
    assert pairs[0]["difference_mean"] == pytest.approx(float((fn[0] - bu[0]).mean()))
    averaged = result["comparisons"]["basicunet"]["seed_averaged"]
    assert averaged["difference_mean"] == pytest.approx(float(np.mean(fn, axis=0).mean() - np.mean(bu, axis=0).mean()))
    assert averaged["focusnetpp_better"] > 35 and averaged["wilcoxon"]["pvalue"] < 1e-4  # a shift of 0.05 on 40 images
    assert "seed-averaged" in proc.stdout
    # the test set's resolution: the smallest mean difference these 40 images detect, beside each pair
    d = np.mean(fn, axis=0) - np.mean(bu, axis=0)
    detectable = 2.8015852 * d.std(ddof=1) / np.sqrt(d.size)
    assert averaged["wilcoxon"]["detectable_difference"] == pytest.approx(detectable, rel=1e-6)
    assert f"±{averaged['wilcoxon']['detectable_difference']:.4f}" in proc.stdout
    again = _run("--focusnetpp", *fn_files, "--basicunet", *bu_files, "--out", str(out))
    assert again.returncode != 0 and "exists" in again.stderr  # an earlier result is not overwritten


def test_refuses_results_on_other_images_and_foreign_files(tmp_path: Path) -> None:
    fn = _side(tmp_path / "fn.json", [0.8, 0.7, 0.9])
    bu = _side(tmp_path / "bu.json", [0.8, 0.7, 0.9], ids=["a", "b", "c"])
    proc = _run("--focusnetpp", str(fn), "--basicunet", str(bu))
    assert proc.returncode != 0 and "other test images" in proc.stderr and "Traceback" not in proc.stderr
    foreign = tmp_path / "foreign.json"
    foreign.write_text("{}")
    proc = _run("--focusnetpp", str(fn), "--basicunet", str(foreign))
    assert proc.returncode != 0 and str(foreign) in proc.stderr and "Traceback" not in proc.stderr


def test_further_sides_and_runs_read_from_a_scale_report(tmp_path: Path) -> None:
    """``--side NAME RUN...`` adds a side paired with FocusNet++; ``REPORT.json#SIDE`` reads one side of a
    bench_isic_scale.py report (its per_image_dice and ids) whose work folder is gone."""
    ids = [f"img{i}" for i in range(30)]
    rng = np.random.default_rng(1)
    fn0, unet0, fn1, unet1 = (rng.uniform(0.4, 0.9, 30) for _ in range(4))
    report = tmp_path / "scale.json"
    report.write_text(json.dumps({"benchmark": "isic-scale", "ids": ids,
                                  "sides": {"focusnetpp": {"model": "focusnetpp:paper", "epochs": 15},
                                            "unet": {"model": "unet", "epochs": 9}},
                                  "per_image_dice": {"focusnetpp": list(fn0), "unet": list(unet0)}}))
    fn_file = str(_side(tmp_path / "fn1.json", list(fn1), ids))
    unet_file = str(_side(tmp_path / "unet1.json", list(unet1), ids))
    out = tmp_path / "seeds.json"
    proc = _run("--focusnetpp", f"{report}#focusnetpp", fn_file, "--side", "unet", f"{report}#unet", unet_file,
                "--split", "bcdu test split", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert list(result["comparisons"]) == ["unet"] and result["protocol"]["split"] == "bcdu test split"
    assert result["sides"]["focusnetpp"]["runs"][0]["model"] == "focusnetpp:paper"
    assert result["sides"]["unet"]["runs"][0]["epochs"] == 9
    averaged = result["comparisons"]["unet"]["seed_averaged"]
    expected = float(((fn0 + fn1) / 2 - (unet0 + unet1) / 2).mean())
    assert averaged["difference_mean"] == pytest.approx(expected, abs=1e-12)
    assert "--side unet" in result["command"] and "--split 'bcdu test split'" in result["command"]
    missing = _run("--focusnetpp", f"{report}#attention_unet", "--side", "unet", unet_file)
    assert missing.returncode != 0 and "attention_unet" in missing.stderr and "Traceback" not in missing.stderr
    twice = _run("--focusnetpp", fn_file, "--side", "focusnetpp", fn_file)
    assert twice.returncode != 0 and "new side" in twice.stderr
    alone = _run("--focusnetpp", fn_file)
    assert alone.returncode != 0 and "at least one other side" in alone.stderr


def test_an_earlier_result_stands_for_its_runs(tmp_path: Path) -> None:
    """``SEEDS.json#SIDE`` of an earlier result adds all its runs of that side, as stored, so a third seed
    is added after the first two runs' work folders are gone."""
    rng = np.random.default_rng(2)
    fn, bu = [rng.uniform(0.4, 0.9, 25) for _ in range(3)], [rng.uniform(0.4, 0.9, 25) for _ in range(3)]
    files = {name: [str(_side(tmp_path / f"{name}{i}.json", list(d))) for i, d in enumerate(runs)]
             for name, runs in (("fn", fn), ("bu", bu))}
    first = tmp_path / "first.json"
    proc = _run("--focusnetpp", *files["fn"][:2], "--basicunet", *files["bu"][:2], "--out", str(first))
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "fn0.json").unlink()  # the first runs' files need not exist any more
    second = tmp_path / "second.json"
    proc = _run("--focusnetpp", f"{first}#focusnetpp", files["fn"][2], "--basicunet", f"{first}#basicunet",
                files["bu"][2], "--out", str(second))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(second.read_text())
    runs = result["sides"]["focusnetpp"]["runs"]
    assert [r["file"] for r in runs] == files["fn"] and runs[0]["read_from"] == f"{first}#focusnetpp"
    assert "read_from" not in runs[2]
    expected = float(np.mean(fn, axis=0).mean() - np.mean(bu, axis=0).mean())
    assert result["comparisons"]["basicunet"]["seed_averaged"]["difference_mean"] == pytest.approx(expected, abs=1e-12)
    assert len(result["comparisons"]["basicunet"]["cross_pairs"]) == 9
    # the same command with the result it wrote in place of `first`: each run counts once, the result is the same
    third = tmp_path / "third.json"
    proc = _run("--focusnetpp", f"{second}#focusnetpp", files["fn"][2], "--basicunet", f"{second}#basicunet",
                files["bu"][2], "--out", str(third))
    assert proc.returncode == 0, proc.stderr
    again = json.loads(third.read_text())
    assert [r["file"] for r in again["sides"]["focusnetpp"]["runs"]] == files["fn"]
    assert again["comparisons"] == result["comparisons"]
    _side(tmp_path / "fn2.json", list(fn[2] + 0.01))  # that seed trained again: not the stored run any more
    proc = _run("--focusnetpp", f"{second}#focusnetpp", files["fn"][2], "--basicunet", files["bu"][0])
    assert proc.returncode != 0 and "named twice with different per-image Dice" in proc.stderr


def _side_with_counts(path: Path, dice: list[float], lesion_pixels: list[int], pixels: int = 100) -> Path:
    """A side file whose rows carry confusion counts: ``lesion_pixels`` of ``pixels`` are lesion."""
    rows = [{"id": f"img{i}", "dice": d, "tp": n, "fn": 0, "fp": 0, "tn": pixels - n}
            for i, (d, n) in enumerate(zip(dice, lesion_pixels))]
    path.write_text(json.dumps({"model": "m", "epochs": 3, "summary": {"per_image": rows}}))
    return path


def test_dice_by_lesion_area(tmp_path: Path) -> None:
    """Each side's seed-averaged Dice by the fraction of the image the lesion covers, edges [low, high)."""
    lesion = [1, 4, 5, 30, 60, 75, 100]  # of 100 pixels: < 5% twice, 5-20%, 20-50%, 50-75%, >= 75% twice
    fn = [_side_with_counts(tmp_path / f"fn{i}.json", [0.1 + 0.2 * i, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], lesion)
          for i in range(2)]
    bu = _side_with_counts(tmp_path / "bu.json", [0.9] * 7, lesion)
    out = tmp_path / "seeds.json"
    proc = _run("--focusnetpp", *map(str, fn), "--basicunet", str(bu), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    areas = json.loads(out.read_text())["by_lesion_area"]
    assert areas["images"] == [2, 1, 1, 1, 2]
    # the first image averages 0.1 and 0.3 over the two seeds
    assert areas["seed_averaged_dice"]["focusnetpp"] == pytest.approx([(0.2 + 0.2) / 2, 0.3, 0.4, 0.5, 0.65])
    assert areas["seed_averaged_dice"]["basicunet"] == pytest.approx([0.9] * 5)
    assert "< 5% (2)" in proc.stdout and "≥ 75% (2)" in proc.stdout
    # a side scored on other masks (another size) is refused, naming the file
    other = _side_with_counts(tmp_path / "other.json", [0.9] * 7, [2, 4, 5, 30, 60, 75, 100])
    proc = _run("--focusnetpp", str(fn[0]), "--basicunet", str(other))
    assert proc.returncode != 0 and str(other) in proc.stderr and "lesion areas" in proc.stderr
    assert "Traceback" not in proc.stderr
