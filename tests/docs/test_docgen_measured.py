"""The model cards' measured accuracy comes from the JSON in ``benchmarks/published/``: each adapter
of ``scripts/docgen/measured.py`` reads its kind, a bad file fails naming itself, and
``benchmarks/publish_run.py`` packs a run folder without overwriting a published one."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))

from docgen import measured  # noqa: E402

TEST = {"mean": {"dice": 0.81, "jaccard": 0.7, "precision": 0.8, "recall": 0.9}, "pooled": {"dice": 0.85}, "count": 5}


def _write(folder: Path, name: str, data: dict) -> Path:
    path = folder / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["isic-train", "dsb-train"])
def test_train_benchmark_json(kind: str, tmp_path: Path) -> None:
    data = {
        "benchmark": kind, "date": "20261126-101010", "data": "/data/isic2018_task1_512crop",
        "split_file": "/w/isic-split.json", "counts": {"train": 30, "val": 5, "test": 5}, "model": "focusnetpp",
        "preset": "paper", "size": 128, "epochs": 3, "train_wall_s": 61.5, "budget": "max_minutes=1",
        "test": {"model_resolution": TEST, "original_resolution": dict(TEST, mean=dict(TEST["mean"], dice=0.82))},
    }
    if kind == "dsb-train":
        data["split"] = "paper-test"
    (r,) = measured.load_result_file(_write(tmp_path, "a.json", data))
    assert (r.model, r.preset, r.resolution, r.epochs, r.n_images) == ("focusnetpp", "paper", 128, 3, 5)
    assert (r.dice, r.jaccard, r.precision, r.recall, r.pooled_dice) == (0.81, 0.7, 0.8, 0.9, 0.85)
    assert r.date == "2026-11-26" and "30 train / 5 val / 5 test" in r.split and "0.8200" in r.note
    assert r.dataset == "isic2018_task1_512crop" and r.train_seconds == 61.5


def test_head_to_head_keeps_registered_models_and_applies_the_annotation(tmp_path: Path) -> None:
    row = {"epochs": 4, "train_wall_s": 100.0, "dice_mean": 0.8, "dice_ci95": [0.7, 0.9], "pooled_dice": 0.82,
           "jaccard_mean": 0.7, "precision_mean": 0.8, "recall_mean": 0.85}
    data = {
        "benchmark": "head-to-head", "date": "20261204-165746", "data": "/d/isic_all", "split_file": "/s/h2h.json",
        "size": 64, "minutes": 1.0, "threads": 2, "ids": ["a", "b", "c"],
        "rows": [dict(row, model="focusnetpp:paper"), dict(row, model="monai.BasicUNet", dice_mean=0.85)],
        "published": {"title": "T", "command": "python x.py"},
    }
    (r,) = measured.load_result_file(_write(tmp_path, "h.json", data))
    assert (r.model, r.preset, r.n_images, r.title, r.command) == ("focusnetpp", "paper", 3, "T", "python x.py")
    assert "monai.BasicUNet 0.8500" in r.note and r.dataset == "isic_all"


def test_isic_scale_gives_each_registered_side_its_paired_test(tmp_path: Path) -> None:
    row = {"epochs": 9, "train_wall_s": 3600.0, "dice_mean": 0.8, "dice_ci95": [0.7, 0.9], "pooled_dice": 0.82,
           "jaccard_mean": 0.7, "precision_mean": 0.8, "recall_mean": 0.85, "n": 470}
    data = {
        "benchmark": "isic-scale", "date": "20261204-234500", "data": "isic2018_task1_512crop_all", "size": 128,
        "minutes": 60.0, "threads": 1, "counts": {"train": 1640, "val": 234, "test": 470},
        "rows": [dict(row, side="focusnetpp", model="focusnetpp:paper"),
                 dict(row, side="unet", model="unet", dice_mean=0.78),
                 dict(row, side="basicunet", model="monai.BasicUNet", dice_mean=0.85)],
        "paired": {"unet": {"difference_mean": 0.02, "wilcoxon": {"pvalue": 0.001}},
                   "basicunet": {"difference_mean": -0.05, "wilcoxon": {"pvalue": 0.01}}},
    }
    fn, un = measured.load_result_file(_write(tmp_path, "s.json", data))
    assert [(r.model, r.preset) for r in (fn, un)] == [("focusnetpp", "paper"), ("unet", None)]
    for r in (fn, un):
        assert r.n_images == 470 and r.resolution == 128 and "1640 train / 234 val / 470 test" in r.split
    assert "FocusNet++ − it: +0.0200 (Wilcoxon p = 0.001)" in un.note and "FocusNet++ − it" not in fn.note
    assert "monai.BasicUNet 0.8500" in fn.note and fn.dataset == "isic2018_task1_512crop_all"


def test_run_summary_and_transcribed(tmp_path: Path) -> None:
    run_summary = {
        "benchmark": "run-summary", "date": "2026-12-04T21:32:47+0000", "run": "/tmp/run-lite", "epochs": 42,
        "train_seconds": 1120.0, "counts": {"train": 385, "val": 122, "test": 122},
        "summary": dict(TEST, protocol={"checkpoint": "best.ckpt (epoch 29)"}),
        "config": {"model": "focusnetpp", "preset": "lite", "size": 128,
                   "data": {"source": "/d/dsb2018_all/stage1_train", "split": "paper-test", "split_seed": 0}},
    }
    (r,) = measured.load_result_file(_write(tmp_path, "r.json", run_summary))
    assert (r.preset, r.epochs, r.dataset, r.date) == ("lite", 42, "dsb2018_all", "2026-12-04")
    assert "385 train / 122 val / 122 test" in r.split and r.transcribed_from is None
    transcribed = {
        "benchmark": "transcribed", "transcribed_from": "benchmarks/RESULTS.md (the run's JSON was not kept)",
        "model": "focusnetpp", "preset": "lite", "title": "T", "context": "C", "data": "dsb2018", "split": "S",
        "size": 256, "epochs": 15, "train_wall_s": 933, "date": "2026-11-26", "command": "`c`",
        "test": {"count": 39, "mean": {"dice": 0.8714}, "pooled_dice": None},
    }
    (t,) = measured.load_result_file(_write(tmp_path, "t.json", transcribed))
    assert t.dice == 0.8714 and t.jaccard is None and t.transcribed_from
    text = "\n".join(measured.accuracy_lines([t]))
    assert "transcribed from RESULTS.md" in text and "0.8714" in text


def test_unknown_kind_or_malformed_file_names_the_file(tmp_path: Path) -> None:
    bad = _write(tmp_path, "odd.json", {"benchmark": "mystery"})
    with pytest.raises(measured.PublishedResultError, match="odd.json.*mystery"):
        measured.measured_results(tmp_path)
    bad.write_text(json.dumps({"benchmark": "isic-train", "model": "focusnetpp"}))
    with pytest.raises(measured.PublishedResultError, match="odd.json.*malformed"):
        measured.load_result_file(bad)
    bad.write_text("{not json")
    with pytest.raises(measured.PublishedResultError, match="odd.json"):
        measured.load_result_file(bad)


def _publish_run():
    spec = importlib.util.spec_from_file_location("publish_run", REPO / "benchmarks" / "publish_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_publish_run_packs_a_run_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(dict(TEST, per_image=[{"dice": 1.0}])))
    (run / "config.json").write_text(json.dumps({"model": "focusnetpp", "preset": "lite", "size": 32,
                                                 "data": {"source": "/d/x", "split": "random", "split_seed": 0}}))
    (run / "split.json").write_text(json.dumps({"train": ["a", "b"], "val": ["c"], "test": ["d"]}))
    (run / "logs" / "metrics.csv").write_text(
        "epoch,step,train_loss,train_seconds,val_dice\n0,1,,,0.5\n0,1,0.9,2.5,\n1,2,0.8,3.0,\n")
    out = tmp_path / "pub" / "r.json"
    tool = _publish_run()
    assert tool.main([str(run), "--title", "T", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert "per_image" not in data["summary"] and data["epochs"] == 2 and data["train_seconds"] == 5.5
    assert data["counts"] == {"train": 2, "val": 1, "test": 1} and data["published"] == {"title": "T"}
    (r,) = measured.load_result_file(out)
    assert r.title == "T" and r.epochs == 2
    before = out.read_text()
    assert tool.main([str(run), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == before
    assert tool.main([str(run), "--out", str(out), "--force"]) == 0
    # a run older than the train_seconds column: epochs from train_loss, training time unknown
    (run / "logs" / "metrics.csv").write_text("epoch,step,train_loss,val_dice\n0,1,,0.5\n0,1,0.9,\n1,2,0.8,\n")
    assert tool.main([str(run), "--out", str(out), "--force"]) == 0
    (r,) = measured.load_result_file(out)
    assert r.epochs == 2 and r.train_seconds is None


def test_the_published_folder_loads_and_names_registered_models() -> None:
    from focusnet.models.registry import list_models

    records = measured.measured_results()
    assert records
    for r in records:
        assert r.model in list_models(), (r.source.name, r.model)
        assert 0 < r.dice <= 1 and r.n_images > 0 and r.resolution > 0, r.source.name
