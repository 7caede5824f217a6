"""Numerical failures (issue 8, part 5): a NaN loss stops training with a clear message naming the
batch's ids and keeps the last good checkpoint; an all-empty-mask validation set gives finite
metrics, with the empty-mask rule applied and reported."""
from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from focusnet.cli import main
from focusnet.engine.guards import NonFiniteLossGuard
from tests.data.test_bad_inputs import make_folder, mask
from tests.reliability.conftest import tiny_train_config


@pytest.fixture()
def guarded(monkeypatch):
    """Make sure the trainer has the guard (a no-op once train.py registers it itself)."""
    from focusnet.engine import train as train_mod

    real = train_mod.build_trainer

    def with_guard(*args, **kwargs):
        trainer = real(*args, **kwargs)
        if not any(isinstance(cb, NonFiniteLossGuard) for cb in trainer.callbacks):
            trainer.callbacks.insert(0, NonFiniteLossGuard())
        return trainer

    monkeypatch.setattr(train_mod, "build_trainer", with_guard)
    monkeypatch.delenv("FOCUSNET_RUN_DIR", raising=False)


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("focusnet:")]


def test_nan_loss_stops_training_names_the_batch_and_keeps_the_last_good_checkpoint(tmp_path, guarded, monkeypatch, capsys):
    from focusnet.engine.callbacks import EpochShuffleSampler
    from focusnet.engine.module import SegmentationModule

    make_folder(tmp_path / "data", 12)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_train_config(tmp_path / "data", tmp_path / "prepared", epochs=3)))
    run = tmp_path / "run"
    poisoned = {"epoch": 1, "batch": 1}
    real_step = SegmentationModule.training_step

    def step(self, batch, batch_idx):
        loss = real_step(self, batch, batch_idx)
        if self.current_epoch == poisoned["epoch"] and batch_idx == poisoned["batch"]:
            loss = loss * float("nan")
        return loss

    monkeypatch.setattr(SegmentationModule, "training_step", step)
    rc = main(["train", str(config), "--out", str(run)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = _error_lines(err)
    assert len(lines) == 1, err
    line = lines[0]

    # the ids of the poisoned batch: this epoch's order of the train split, batch 1 (batch size 4)
    train_ids = json.loads((run / "split.json").read_text())["train"]
    sampler = EpochShuffleSampler(len(train_ids), seed=1)
    sampler.set_epoch(poisoned["epoch"])
    order = list(sampler)
    expected = [train_ids[i] for i in order[4:8]]
    assert line.startswith("focusnet: error: non-finite training loss (nan) at epoch 1"), line
    for i in expected:
        assert repr(i) in line, (i, line)
    assert f"the last good checkpoint is kept: {run / 'last.ckpt'} (epoch 0)" in line
    assert "--resume" in line

    # the checkpoint on disk is the end of epoch 0, finite, and was not overwritten by the failed epoch
    ckpt = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert json.loads((run / "progress.json").read_text())["epoch"] == 0
    assert not (run / "summary.json").exists()


def test_nan_in_the_first_epoch_says_no_checkpoint_exists(tmp_path, guarded, monkeypatch, capsys):
    from focusnet.engine.module import SegmentationModule

    make_folder(tmp_path / "data", 8)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_train_config(tmp_path / "data", tmp_path / "prepared", epochs=1)))
    real_step = SegmentationModule.training_step
    monkeypatch.setattr(SegmentationModule, "training_step",
                        lambda self, b, i: real_step(self, b, i) + float("inf"))
    rc = main(["train", str(config), "--out", str(tmp_path / "run")])
    lines = _error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1
    assert "non-finite training loss (inf) at epoch 0, step 0, batch 0 (ids '" in lines[0]
    assert "no checkpoint was written before it" in lines[0]
    assert not (tmp_path / "run" / "last.ckpt").exists()


def test_all_empty_validation_masks_give_finite_metrics_and_report_the_empty_rule(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FOCUSNET_RUN_DIR", raising=False)
    src = make_folder(tmp_path / "data", 8)  # c0..c7 with a lesion each
    val = ["c5", "c6", "c7"]
    for i in val:
        mask(value=0).save(src / "masks" / f"{i}.png")  # no foreground at all
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["c0", "c1", "c2", "c3"], "val": val, "test": ["c4"]}))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_train_config(src, tmp_path / "prepared", epochs=2, data={"split": str(split)})))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 0, capsys.readouterr().err

    from focusnet.engine.plots import read_epoch_metrics

    metrics = read_epoch_metrics(run / "logs" / "metrics.csv")
    for key in ("val_loss", "val_dice", "train_loss"):
        assert sorted(metrics[key]) == [0, 1], key
        assert all(math.isfinite(v) for v in metrics[key].values()), (key, metrics[key])
    assert all(0.0 <= v <= 1.0 for v in metrics["val_dice"].values())

    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "val", "--json", "--no-original-resolution"]) == 0
    summary = json.loads(capsys.readouterr().out)["model_resolution"]
    assert summary["count"] == 3
    for stat in ("mean", "std", "median", "pooled"):
        for name, value in summary[stat].items():
            assert value is not None and math.isfinite(value), (stat, name, value)
    for row in summary["per_image"]:
        assert row["tp"] == 0 and row["fn"] == 0  # no true foreground anywhere
        # the empty-mask rule: an empty prediction of an empty mask scores empty_score (1), else 0
        expected = 1.0 if row["fp"] == 0 else 0.0
        assert row["dice"] == row["jaccard"] == row["recall"] == expected, row
    protocol = summary["protocol"]
    assert protocol["empty_score"] == 1.0 and "denominator is 0" in protocol["empty_rule"]
