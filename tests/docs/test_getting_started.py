"""The getting-started tutorial, command by command on a fresh clone, reaches what it promises: a
trained model, its summary.json, an evaluation and predicted masks at the new images' own size."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tests.docs.fences import GETTING_STARTED, REPO, environment, failure_report, fences, run_page, sandbox


def test_getting_started_page_reaches_a_trained_model_and_masks(docs_world: dict, tmp_path) -> None:
    clone = sandbox(docs_world["template"], tmp_path / "world", with_run=False)
    assert not (clone / "runs").exists() and not (clone / "data").exists()  # nothing from elsewhere

    results = run_page(GETTING_STARTED, clone, environment(tmp_path / "world", docs_world["bin"], docs_world["server"]))
    failed = [r for r in results if r.returncode != 0]
    assert not failed, failure_report(failed[0])
    assert len(results) == sum(1 for f in fences(REPO / GETTING_STARTED) if f.mark == "runnable")

    run = clone / "runs" / "first"
    page = (REPO / GETTING_STARTED).read_text(encoding="utf-8")
    listed = [p.name for p in (*run.iterdir(), *(run / "weights").iterdir(), *(run / "logs").iterdir())
              if not p.name.startswith(".") and p.name not in ("tensorboard", "hparams.yaml")]
    unlisted = [name for name in listed if f"`{name}" not in page and f"`logs/{name}" not in page
                and f"`weights/{name}" not in page and f"+ `{name}" not in page]
    assert not unlisted, f"the tutorial's run-folder listing omits {unlisted}"
    assert (run / "weights" / "best.safetensors").is_file() and (run / "weights" / "best.json").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["count"] == 9  # 15 % of the 60 images
    assert 0.0 <= summary["mean"]["dice"] <= 1.0 and summary["protocol"]["split"] == "test"
    evaluation = json.loads((run / "eval" / "test" / "summary.json").read_text())
    assert evaluation["original_resolution"]["count"] == 9
    assert (clone / "runs" / "demo" / "summary.json").is_file()

    masks = sorted((clone / "predictions").glob("*_mask.png"))
    assert [m.name for m in masks] == [f"new_{i:04d}_mask.png" for i in range(4)]  # not the training names
    for mask in masks:
        with Image.open(mask) as img:
            assert img.size == (96, 96)  # the new image's own size, not the model's 64 (32 in the test)
            assert set(np.unique(np.asarray(img)).tolist()) <= {0, 255}
    assert len(list((clone / "overlays").glob("*_overlay.png"))) == 4
    assert len(list((clone / "predictions_python").glob("*_mask.png"))) == 4
