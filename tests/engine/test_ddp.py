"""DDP on CPU (gloo): metrics come from the counts of every process, equal to one process's on the same data.

`focusnet train --devices 2 --accelerator cpu` is started as a separate process (Lightning's DDP
launcher re-runs the command for rank 1). Its summary.json (test split scored by both processes,
each on its DistributedSampler shard, padded to equal length) must equal the one-process score of
the same weights on the same data, image for image; the odd number of test images makes the shards
padded, so a duplicated image would show.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

TINY = {"widths": [8, 8, 8, 8, 8], "stem_width": 8, "head_mid": [8, 8, 8, 8], "fusion_mid": 8}


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for key in ("FOCUSNET_RUN_DIR", "LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def test_two_process_ddp_metrics_equal_one_process(tmp_path):
    from focusnet.data.synthetic import generate
    from focusnet.engine.evaluate import evaluate_checkpoint

    generate("lesions", tmp_path / "data", count=14, size=32, seed=2, overwrite=True)
    config = {
        "model": "focusnetpp",
        "preset": "lite",
        "model_kwargs": TINY,
        # 14 images: 6 train, 3 val, 5 test -> shards of 2 + 2 (val) and 3 + 3 (test), padded
        "data": {"format": "folder", "source": str(tmp_path / "data"), "split": "random:0.43,0.21,0.36", "cache_dir": str(tmp_path / "prepared")},
        "size": 32,
        "batch_size": 2,
        "eval_batch_size": 2,
        "epochs": 2,
        "lr": 1.0e-3,
        "lr_schedule": "cosine",
        "num_threads": 1,
        "progress_bar": False,
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "ddp"
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "focusnet.cli", "train", str(tmp_path / "c.yaml"), "--out", str(run), "--devices", "2", "--accelerator", "cpu"]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=220, cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    split = json.loads((run / "split.json").read_text())
    assert len(split["test"]) % 2 == 1 and len(split["val"]) % 2 == 1
    ddp = json.loads((run / "summary.json").read_text())
    assert ddp["protocol"]["processes"] == 2
    one = evaluate_checkpoint(run, split="test")  # one process, same weights, same data
    assert ddp["count"] == one["count"] == len(split["test"])
    assert [r["id"] for r in ddp["per_image"]] == split["test"]
    assert ddp["per_image"] == one["per_image"]
    for key in ("mean", "pooled", "thresholded_jaccard"):
        assert ddp[key] == pytest.approx(one[key]), key

    # val_dice of every epoch is the full val split's (both shards), logged once by rank 0
    from focusnet.engine.plots import read_epoch_metrics

    metrics = read_epoch_metrics(run / "logs" / "metrics.csv")
    assert sorted(metrics["val_dice"]) == [0, 1]
    assert (run / "weights" / "best.safetensors").is_file() and (run / "weights" / "last.safetensors").is_file()
    env = json.loads((run / "environment.json").read_text())
    assert env["requested_devices"] == 2
    print(f"\nDDP 2-process CLI run: {elapsed:.1f} s")
