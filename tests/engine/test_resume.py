"""Resume: a 4-epoch run equals, bit for bit, a run killed (SIGKILL) after epoch 2 and resumed with `--resume`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

TINY = {"widths": [8, 8, 8, 8, 8], "stem_width": 8, "head_mid": [8, 8, 8, 8], "fusion_mid": 8, "bottleneck_dropout": 0.3}


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("FOCUSNET_RUN_DIR", None)
    return env


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from focusnet.data.synthetic import generate

    root = tmp_path_factory.mktemp("resume")
    generate("lesions", root / "data", count=48, size=32, seed=1, overwrite=True)
    config = {
        "model": "focusnetpp",
        "preset": "lite",
        "model_kwargs": TINY,
        "data": {"format": "folder", "source": str(root / "data"), "split": "random:0.5,0.25,0.25", "cache_dir": str(root / "prepared")},
        "size": 32,
        "batch_size": 4,
        "epochs": 4,
        "lr": 1.0e-3,
        "lr_schedule": "cosine",
        # dropout and augmentation draw random numbers every step: resume must replay them exactly
        "augment": {"enabled": True, "rotate": 15.0, "brightness": 0.1, "contrast": 0.1, "saturation": 0.1},
        "num_threads": 1,
        "progress_bar": False,
        "seed": 3,
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return root, path


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "focusnet.cli", "train", *args]


def test_killed_and_resumed_run_equals_an_uninterrupted_run(setup):
    root, config = setup
    full, killed = root / "full", root / "killed"

    start = time.perf_counter()
    done = subprocess.run(_cli(str(config), "--out", str(full)), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    uninterrupted_s = time.perf_counter() - start

    proc = subprocess.Popen(_cli(str(config), "--out", str(killed)), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress = killed / "progress.json"
    deadline = time.monotonic() + 300
    epochs_done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if progress.is_file():
            try:
                epochs_done = json.loads(progress.read_text())["epochs_done"]
            except (ValueError, KeyError):  # replaced while reading
                epochs_done = 0
            if epochs_done >= 2:
                break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed; make the test run longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    saved = torch.load(killed / "last.ckpt", map_location="cpu", weights_only=False)
    assert 2 <= saved["epoch"] + 1 < 4, saved["epoch"]  # stopped after epoch 2 (maybe 3), not finished
    assert not (killed / "summary.json").exists()
    assert {"optimizer_states", "lr_schedulers", "state_dict", "epoch", "callbacks"} <= set(saved)
    assert any("rng" in v for v in saved["callbacks"].values() if isinstance(v, dict))

    resumed = subprocess.run(_cli("--resume", str(killed)), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    for which in ("last", "best"):
        a, b = _weights(full / "weights" / f"{which}.safetensors"), _weights(killed / "weights" / f"{which}.safetensors")
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{which}: {len(different)} tensors differ, e.g. {different[:3]}"
    assert json.loads((full / "summary.json").read_text())["per_image"] == json.loads((killed / "summary.json").read_text())["per_image"]

    # the log keeps every epoch once, and records the resume
    from focusnet.engine.plots import read_epoch_metrics

    for run in (full, killed):
        metrics = read_epoch_metrics(run / "logs" / "metrics.csv")
        assert sorted(metrics["val_loss"]) == [0, 1, 2, 3] == sorted(metrics["lr"])
    a = read_epoch_metrics(full / "logs" / "metrics.csv")
    b = read_epoch_metrics(killed / "logs" / "metrics.csv")
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=0, abs=0) and a["lr"] == b["lr"]
    env = json.loads((killed / "environment.json").read_text())
    assert env["seed"] == 3 and len(env["resumes"]) == 1 and env["resumes"][0]["resumed"] is True
    print(f"\nuninterrupted 4-epoch run (subprocess): {uninterrupted_s:.1f} s")


def test_resume_refuses_a_changed_model_and_a_folder_without_checkpoint(setup, tmp_path, capsys):
    from focusnet.cli import main

    assert main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "last.ckpt" in err and err.count("\n") == 1
    root, _ = setup
    run = root / "full"
    if not (run / "last.ckpt").is_file():
        pytest.skip("needs the run of the previous test")
    assert main(["train", "--resume", str(run), "lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "'lr' cannot change when resuming" in err and "epochs" in err


def test_resume_restores_the_training_row_lost_between_checkpoint_and_logging(tmp_path):
    """Lightning checkpoints an epoch at the end of validation and logs its train_loss/lr row after
    that; a run stopped in between must not resume with that row missing from metrics.csv."""
    import csv

    from focusnet.cli import main
    from focusnet.data.synthetic import generate
    from focusnet.engine.module import EPOCH_ROW_KEY
    from focusnet.engine.plots import read_epoch_metrics
    from tests.reliability.conftest import tiny_train_config

    generate("lesions", tmp_path / "data", count=8, size=16, seed=0, overwrite=True)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_train_config(tmp_path / "data", tmp_path / "prepared", epochs=2)))
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    saved = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)[EPOCH_ROW_KEY]
    before = read_epoch_metrics(run / "logs" / "metrics.csv")
    assert saved["epoch"] == 1
    assert saved["train_loss"] == pytest.approx(before["train_loss"][1], rel=1e-5)
    assert saved["lr"] == pytest.approx(before["lr"][1])

    # emulate the stop: epoch 1's training row never reached the log
    path = run / "logs" / "metrics.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept = [r for r in rows if not (r["epoch"] == "1" and r.get("train_loss"))]
    assert len(kept) == len(rows) - 1
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)

    assert main(["train", "--resume", str(run), "epochs=3"]) == 0
    after = read_epoch_metrics(path)
    assert sorted(after["train_loss"]) == [0, 1, 2] == sorted(after["lr"]) == sorted(after["val_loss"])
    assert after["train_loss"][1] == pytest.approx(saved["train_loss"])
