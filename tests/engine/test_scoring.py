"""`focusnet score` on folders of PNG masks: numbers against plain numpy, and one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focusnet.cli import main
from focusnet.engine.scoring import format_summary, score_folders

METRICS = ("precision", "recall", "dice", "jaccard", "specificity", "accuracy")


def _save(path: Path, mask: np.ndarray, scale: int = 255) -> None:
    Image.fromarray(mask.astype(np.uint8) * scale, mode="L").save(path)


def _make_masks(n: int = 6, size: int = 12, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random (pred, true) pairs, including both-empty, empty-truth and empty-prediction images."""
    rng = np.random.default_rng(seed)
    pairs = {}
    for i in range(n):
        true = rng.random((size, size)) < 0.4
        pred = true ^ (rng.random((size, size)) < 0.2)
        pairs[f"case{i}"] = (pred, true)
    empty = np.zeros((size, size), dtype=bool)
    pairs["case0"] = (empty, empty)
    pairs["case1"] = (pairs["case1"][0], empty)
    pairs["case2"] = (empty, pairs["case2"][1])
    return pairs


def _write(tmp_path: Path, pairs, pred_suffix: str = "", true_suffix: str = "") -> tuple[Path, Path]:
    pred_dir, true_dir = tmp_path / "pred", tmp_path / "true"
    pred_dir.mkdir()
    true_dir.mkdir()
    for name, (pred, true) in pairs.items():
        _save(pred_dir / f"{name}{pred_suffix}.png", pred)
        _save(true_dir / f"{name}{true_suffix}.png", true, scale=1)  # 0/1 masks are binary too
    return pred_dir, true_dir


def _numpy_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Plain numpy metrics; 0/0 counts as 1 on a perfect prediction and 0 otherwise."""
    tp, fp = int(np.sum(pred & true)), int(np.sum(pred & ~true))
    fn, tn = int(np.sum(~pred & true)), int(np.sum(~pred & ~true))
    perfect = fp == 0 and fn == 0

    def ratio(num: int, den: int) -> float:
        return num / den if den else (1.0 if perfect else 0.0)

    return {
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "jaccard": ratio(tp, tp + fp + fn),
        "specificity": ratio(tn, tn + fp),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
    }


def _check_against_numpy(result: dict, pairs) -> None:
    names = sorted(pairs)
    assert result["count"] == len(names)
    assert [row["id"] for row in result["per_image"]] == names
    expected = [_numpy_metrics(*pairs[name]) for name in names]
    for row, exp in zip(result["per_image"], expected):
        for key, value in exp.items():
            assert row[key] == pytest.approx(value, abs=1e-12), (row["id"], key)
    preds = np.stack([pairs[n][0] for n in names])
    trues = np.stack([pairs[n][1] for n in names])
    pooled = _numpy_metrics(preds, trues)
    for metric in METRICS:
        values = np.array([exp[metric] for exp in expected])
        assert result["mean"][metric] == pytest.approx(values.mean(), abs=1e-12)
        assert result["std"][metric] == pytest.approx(values.std(ddof=0), abs=1e-12)
        assert result["median"][metric] == pytest.approx(np.median(values), abs=1e-12)
        assert result["pooled"][metric] == pytest.approx(pooled[metric], abs=1e-12)
    jac = np.array([exp["jaccard"] for exp in expected])
    assert result["thresholded_jaccard"] == pytest.approx(np.where(jac < 0.65, 0, jac).mean(), abs=1e-12)


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_score_json_matches_numpy(tmp_path, capsys):
    pairs = _make_masks()
    pred_dir, true_dir = _write(tmp_path, pairs)
    (pred_dir / ".hidden.png").write_bytes(b"not an image")  # hidden files are ignored
    (true_dir / "notes.txt").write_text("not a mask")  # so are non-image files
    code, out, err = _run(["score", str(pred_dir), str(true_dir), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    _check_against_numpy(result, pairs)
    protocol = result["protocol"]
    assert protocol["resolution"] == "true mask (original)"
    assert protocol["threshold"] == "binary masks as given"
    assert protocol["empty_score"] == 1.0 and protocol["resized_predictions"] == 0
    assert protocol["pred_dir"] == str(pred_dir) and protocol["true_dir"] == str(true_dir)


def test_score_with_suffixes_and_text_output(tmp_path, capsys):
    pairs = _make_masks(n=4, seed=1)
    pred_dir, true_dir = _write(tmp_path, pairs, pred_suffix="_mask", true_suffix="_segmentation")
    argv = ["score", str(pred_dir), str(true_dir), "--pred-suffix", "_mask", "--true-suffix", "_segmentation"]
    code, out, err = _run([*argv, "--json"], capsys)
    assert code == 0, err
    _check_against_numpy(json.loads(out), pairs)
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    assert "dice" in out and "thresholded Jaccard" in out and "pooled" in out and "count: 4" in out
    # Without the suffixes nothing pairs up: one line that points at the options.
    code, out, err = _run(["score", str(pred_dir), str(true_dir)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--pred-suffix" in err


def test_larger_predictions_are_resized_to_truth(tmp_path):
    pairs = _make_masks(n=3, seed=2)
    pred_dir, true_dir = _write(tmp_path, pairs)
    pred = pairs["case1"][0]
    _save(pred_dir / "case1.png", np.repeat(np.repeat(pred, 2, axis=0), 2, axis=1))  # 2x nearest upsample
    result = score_folders(pred_dir, true_dir)
    _check_against_numpy(result, pairs)
    assert result["protocol"]["resized_predictions"] == 1
    assert "nearest" in result["protocol"]["resize"]
    assert "Scored 3 images" in format_summary(result)


def _one_line_error(argv, capsys, must_name: str) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert must_name in lines[0]
    assert "Traceback" not in err and out == ""


def test_missing_prediction(tmp_path, capsys):
    pred_dir, true_dir = _write(tmp_path, _make_masks(n=3))
    (pred_dir / "case2.png").unlink()
    _one_line_error(["score", str(pred_dir), str(true_dir)], capsys, str(true_dir / "case2.png"))


def test_extra_prediction(tmp_path, capsys):
    pred_dir, true_dir = _write(tmp_path, _make_masks(n=3))
    _save(pred_dir / "stray.png", np.zeros((12, 12), dtype=bool))
    _one_line_error(["score", str(pred_dir), str(true_dir)], capsys, str(pred_dir / "stray.png"))


def test_unreadable_mask(tmp_path, capsys):
    pred_dir, true_dir = _write(tmp_path, _make_masks(n=3))
    (pred_dir / "case1.png").write_bytes(b"\x89PNG garbage, not an image" * 4)
    _one_line_error(["score", str(pred_dir), str(true_dir)], capsys, str(pred_dir / "case1.png"))


def test_non_binary_mask(tmp_path, capsys):
    pred_dir, true_dir = _write(tmp_path, _make_masks(n=3))
    values = (np.arange(144).reshape(12, 12) % 3).astype(np.uint8)  # 0, 1, 2
    Image.fromarray(values, mode="L").save(true_dir / "case2.png")
    _one_line_error(["score", str(pred_dir), str(true_dir)], capsys, str(true_dir / "case2.png"))


def test_nonexistent_folder(tmp_path, capsys):
    pred_dir, true_dir = _write(tmp_path, _make_masks(n=3))
    missing = tmp_path / "nowhere"
    _one_line_error(["score", str(missing), str(true_dir)], capsys, str(missing))


def test_duplicate_ids_and_empty_folder(tmp_path, capsys):
    pred_dir, true_dir = _write(tmp_path, _make_masks(n=3))
    _save(pred_dir / "case1.bmp", np.zeros((12, 12), dtype=bool))
    _one_line_error(["score", str(pred_dir), str(true_dir)], capsys, "case1")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(["score", str(empty), str(true_dir)], capsys, str(empty))


def test_predict_companion_files_are_skipped(tmp_path, capsys):
    """A `focusnet predict --probabilities --overlays` folder scores as it is: the _prob and _overlay
    files beside the _mask files are not masks; any other stray name is still an error."""
    pairs = _make_masks(n=3, seed=2)
    pred_dir, true_dir = _write(tmp_path, pairs, pred_suffix="_mask")
    for name in pairs:
        Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(pred_dir / f"{name}_overlay.png")
        Image.fromarray(np.full((12, 12), 128, np.uint8)).save(pred_dir / f"{name}_prob.png")
    argv = ["score", str(pred_dir), str(true_dir), "--pred-suffix", "_mask", "--json"]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    _check_against_numpy(json.loads(out), pairs)
    _save(pred_dir / "case0_other.png", np.zeros((12, 12), dtype=bool))
    _one_line_error(argv, capsys, str(pred_dir / "case0_other.png"))
