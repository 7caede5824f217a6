"""``focusnet evaluate``: per-image CSVs, both resolutions, protocol keys, overwrite rule, and agreement
of the original-resolution numbers with ``focusnet score`` of the written original-size masks."""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focusnet.cli import main
from focusnet.engine.config import TrainConfig
from focusnet.errors import FocusNetError
from tests.helpers import tiny_train_config

PROTOCOL_KEYS = {"split", "resolution", "threshold", "aggregation", "empty_score", "empty_rule"}
METRICS = ("precision", "recall", "dice", "jaccard", "specificity", "accuracy")


@pytest.fixture(scope="module")
def run(lesions, tmp_path_factory) -> Path:
    """A 1-epoch run of a tiny FocusNet++ at 32x32 on 12 synthetic 48x48 lesions."""
    from focusnet.engine.train import train

    work = tmp_path_factory.mktemp("work")
    return train(tiny_train_config(lesions, work / "tiny", work / "prepared"))


def _fresh(run: Path, tmp_path: Path) -> Path:
    """A copy of the run without any eval/ folder (tests must not see each other's outputs)."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval"))
    return copy


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_evaluate_writes_both_resolutions(run, tmp_path):
    from focusnet.engine.evaluate import CSV_COLUMNS, evaluate_run

    run = _fresh(run, tmp_path)
    summary = evaluate_run(run, split="test")
    test_ids = json.loads((run / "split.json").read_text())["test"]
    out = run / "eval" / "test"
    for name in ("per_image_model_res.csv", "per_image_original_res.csv", "summary.json", "summary.md"):
        assert (out / name).is_file(), name

    for name in ("per_image_model_res.csv", "per_image_original_res.csv"):
        rows = _read_csv(out / name)
        assert len(rows) == len(test_ids)
        assert tuple(rows[0]) == CSV_COLUMNS
        assert [r["id"] for r in rows] == test_ids
        assert all((r["orig_h"], r["orig_w"]) == ("48", "48") for r in rows)
        assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    model_rows = _read_csv(out / "per_image_model_res.csv")
    assert all(sum(int(r[k]) for k in ("tp", "fp", "fn", "tn")) == 32 * 32 for r in model_rows)
    orig_rows = _read_csv(out / "per_image_original_res.csv")
    assert all(sum(int(r[k]) for k in ("tp", "fp", "fn", "tn")) == 48 * 48 for r in orig_rows)

    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for key in ("model_resolution", "original_resolution"):
        result = on_disk[key]
        assert {"per_image", "mean", "std", "median", "pooled", "thresholded_jaccard", "count", "protocol"} <= set(result)
        assert PROTOCOL_KEYS <= set(result["protocol"]), key
        assert result["protocol"]["split"] == "test" and result["protocol"]["threshold"] == 0.5
        assert result["count"] == len(test_ids)
        assert all(math.isfinite(result["mean"][m]) for m in METRICS)
    assert on_disk["model_resolution"]["protocol"]["resolution"].startswith("32x32")
    assert "original" in on_disk["original_resolution"]["protocol"]["resolution"]
    assert "bilinear" in on_disk["original_resolution"]["protocol"]["resize"]
    assert on_disk["weights"] == "weights/best.safetensors" or on_disk["weights"].startswith("best.ckpt")
    md = (out / "summary.md").read_text()
    for text in ("Model resolution", "Original resolution", "test split", "empty-mask rule", "threshold", "aggregation"):
        assert text in md

    # model resolution agrees with what training wrote (same weights, data and threshold rule)
    trained = json.loads((run / "summary.json").read_text())
    trained = trained.get("model_resolution", trained)
    if "mean" in trained:
        assert on_disk["model_resolution"]["mean"]["dice"] == pytest.approx(trained["mean"]["dice"], abs=1e-6)


def test_original_resolution_agrees_with_focusnet_score(run, tmp_path):
    """Write the original-size masks with the same resize rule, score them: identical numbers."""
    from focusnet.engine.evaluate import evaluate_run, load_checkpoint, load_eval_data
    from focusnet.engine.predict import probabilities_to_size
    from focusnet.engine.scoring import score_folders
    from focusnet.engine.train import read_config

    run = _fresh(run, tmp_path)
    summary = evaluate_run(run, split="test", threshold=0.4)
    config = read_config(run)
    data = load_eval_data(run, "test")
    model = load_checkpoint(run)
    pred_dir, true_dir = tmp_path / "pred", tmp_path / "true"
    pred_dir.mkdir()
    true_dir.mkdir()
    with torch.inference_mode():
        probs = torch.sigmoid(model(data.images))[:, 0].numpy()
    for image_id, prob, (h, w) in zip(data.ids, probs, data.orig_sizes.tolist()):
        mask = probabilities_to_size(prob, (h, w)) > 0.4
        Image.fromarray(mask.astype(np.uint8) * 255).save(pred_dir / f"{image_id}.png")
        shutil.copy(Path(config.data_root) / "masks" / f"{image_id}.png", true_dir / f"{image_id}.png")
    scored = score_folders(pred_dir, true_dir)
    ours = summary["original_resolution"]
    assert scored["per_image"] == ours["per_image"]
    for key in ("mean", "std", "median", "pooled"):
        assert scored[key] == pytest.approx(ours[key], abs=1e-12), key
    assert scored["thresholded_jaccard"] == pytest.approx(ours["thresholded_jaccard"], abs=1e-12)
    assert scored["protocol"]["resized_predictions"] == 0  # already at the true masks' size


def test_overwrite_rule_and_options(run, tmp_path):
    from focusnet.engine.evaluate import evaluate_run

    run = _fresh(run, tmp_path)
    first = evaluate_run(run, split="val")
    before = (run / "eval" / "val" / "summary.json").stat().st_mtime_ns
    again = evaluate_run(run, split="val")  # same weights, same settings: the earlier one, nothing written
    assert again["reused"] is True and again["model_resolution"] == first["model_resolution"]
    assert (run / "eval" / "val" / "summary.json").stat().st_mtime_ns == before
    with pytest.raises(FocusNetError, match="other settings \\(threshold\\).*--overwrite"):
        evaluate_run(run, split="val", threshold=0.4)
    summary = evaluate_run(run, split="val", original_resolution=False, empty_score=0.0, overwrite=True)
    assert summary["original_resolution"] is None
    assert summary["model_resolution"]["protocol"]["empty_score"] == 0.0
    assert not (run / "eval" / "val" / "per_image_original_res.csv").exists()  # the stale one is removed
    assert "Not computed" in (run / "eval" / "val" / "summary.md").read_text()
    with pytest.raises(FocusNetError, match="threshold"):
        evaluate_run(run, split="val", threshold=1.0, overwrite=True)
    with pytest.raises(FocusNetError, match="unknown split"):
        evaluate_run(run, split="holdout")


def test_safetensors_weights_are_preferred(run, tmp_path):
    """weights/best.safetensors when present (no unpickling); best.ckpt otherwise; same numbers."""
    from focusnet.engine.evaluate import _load, evaluate_run
    from focusnet.engine.train import read_config
    from focusnet.weights import save_weights

    run = _fresh(run, tmp_path)
    safe = run / "weights" / "best.safetensors"
    if not safe.is_file():
        config = read_config(run)
        save_weights(_load(run, "best.ckpt")[0], run / "weights" / "best", config.model,
                     config.model_args(), {"size": config.size, "channels": config.channels,
                                           "normalization": config.normalization})
    with_safe = evaluate_run(run, split="test", original_resolution=False)
    assert with_safe["weights"] == "weights/best.safetensors"
    shutil.rmtree(run / "weights")
    with_ckpt = evaluate_run(run, split="test", original_resolution=False, overwrite=True)
    assert with_ckpt["weights"].startswith("best.ckpt")
    assert with_ckpt["model_resolution"]["per_image"] == with_safe["model_resolution"]["per_image"]


def test_hand_made_cache_run(tmp_path):
    """A cache-layout run folder made by hand (config.json + split.json + best.ckpt): both resolutions."""
    from focusnet.data.cache import open_cache, prepare
    from focusnet.data.synthetic import generate
    from focusnet.engine.evaluate import evaluate_run
    from focusnet.models import create_model

    src = tmp_path / "lesions"
    generate("lesions", src, count=8, size=40, seed=1, overwrite=True)
    config = TrainConfig(
        model="unet",
        model_kwargs={"base_width": 4},
        data={"format": "folder", "source": str(src), "split": "random:0.5,0.25,0.25", "cache_dir": str(tmp_path / "prepared")},
        size=32,
        num_threads=1,
    )
    cache = prepare("folder", src, tmp_path / "prepared", size=32, split="random:0.5,0.25,0.25", progress=False)["cache"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    (run / "split.json").write_text(json.dumps(open_cache(cache).splits))
    torch.manual_seed(0)
    model = create_model("unet", base_width=4)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 0}, run / "best.ckpt")
    summary = evaluate_run(run, split="test")
    assert summary["data"].startswith(f"cache {cache}")
    assert summary["original_resolution"]["count"] == len(open_cache(cache).splits["test"])
    rows = _read_csv(run / "eval" / "test" / "per_image_original_res.csv")
    assert all(sum(int(r[k]) for k in ("tp", "fp", "fn", "tn")) == 40 * 40 for r in rows)


def test_cli_evaluate(run, tmp_path, capsys):
    from focusnet.cli import main

    run = _fresh(run, tmp_path)
    assert main(["evaluate", str(run), "--split", "val", "--no-original-resolution"]) == 0
    out = capsys.readouterr().out
    assert "model resolution" in out and "original resolution" not in out
    assert main(["evaluate", str(run), "--split", "val"]) == 2  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--split", "val", "--overwrite", "--json", "--threshold", "0.3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["threshold"] == 0.3 and summary["original_resolution"]["count"] == summary["count"]


def test_evaluation_of_earlier_weights_is_stale(run, tmp_path, capsys):
    """After the weights change (a resume trained further), the earlier evaluation is not shown as
    current: it is refused as stale, and --overwrite replaces it."""
    from focusnet.engine.evaluate import evaluate_run

    run = _fresh(run, tmp_path)
    evaluate_run(run, split="val")
    assert main(["evaluate", str(run), "--split", "val"]) == 0
    assert "already up to date" in capsys.readouterr().out
    from safetensors import safe_open
    from safetensors.torch import save_file

    weights = run / "weights" / "best.safetensors"
    with safe_open(str(weights), framework="pt") as fh:  # other weights, as a further epoch would give
        metadata = fh.metadata()
        tensors = {k: fh.get_tensor(k) + (0.01 if fh.get_tensor(k).is_floating_point() else 0) for k in fh.keys()}
    save_file(tensors, str(weights), metadata=metadata)
    with pytest.raises(FocusNetError, match="earlier weights.*stale.*--overwrite"):
        evaluate_run(run, split="val")
    assert evaluate_run(run, split="val", overwrite=True).get("reused") is None


def test_every_mask_empty_is_warned_about(run, tmp_path, capsys):
    """An evaluation where the model predicted no foreground anywhere says so (it said nothing)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    run = _fresh(run, tmp_path)
    weights = run / "weights" / "best.safetensors"
    with safe_open(str(weights), framework="pt") as fh:
        metadata = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    last_bias = "fusion.3.bias"  # the output layer's bias (focusnetpp)
    tensors[last_bias] = torch.full_like(tensors[last_bias], -100.0)
    save_file(tensors, str(weights), metadata=metadata)
    assert main(["evaluate", str(run), "--split", "val"]) == 0
    assert "every predicted mask is empty" in capsys.readouterr().err
