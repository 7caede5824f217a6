"""Determinism (issue 8, part 6): the same seed on the CPU gives bit-identical weights and metrics.

Two tiny runs of the same config (with dropout and augmentation on, so every RNG matters) in one
process, into two run folders: the best and last ``.safetensors`` weights are equal tensor by tensor
and bit for bit, and the per-epoch metrics and the test summary are identical. A third run with
another seed differs (so the comparison is not vacuous). Training runs with deterministic
algorithms but without PyTorch's NaN fill of new tensors (a 7% CPU cost, ``restore_determinism``):
the runs are bit-identical without it, and the process's setting is back afterwards.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from focusnet.cli import main
from tests.data.test_bad_inputs import make_folder
from tests.reliability.conftest import tiny_train_config


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


#: metrics.csv columns that are wall-clock measurements, not results of the seeded computation
TIMING_COLUMNS = ("train_seconds",)


def _epoch_rows(run: Path) -> list[dict]:
    """metrics.csv rows without the timing columns (each row must still have them where logged)."""
    with open(run / "logs" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert any(row.get("train_seconds") for row in rows)  # the timing is logged, only not compared
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    src = make_folder(root / "data", 12)
    config = tiny_train_config(
        src, root / "prepared", epochs=2, seed=5, deterministic=True,
        model_kwargs={"bottleneck_dropout": 0.3},
        augment={"enabled": True, "rotate": 15.0, "brightness": 0.1, "contrast": 0.1},
    )
    from focusnet.engine.module import SegmentationModule

    out: dict = {"fill_during_training": []}
    original_step = SegmentationModule.training_step

    def recording_step(self, batch, batch_idx):
        out["fill_during_training"].append(torch.utils.deterministic.fill_uninitialized_memory)
        return original_step(self, batch, batch_idx)

    fill_before = torch.utils.deterministic.fill_uninitialized_memory
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SegmentationModule, "training_step", recording_step)
        mp.delenv("FOCUSNET_RUN_DIR", raising=False)
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for name, seed in (("a", 5), ("b", 5), ("other", 6)):
                path = root / f"{name}.yaml"
                path.write_text(yaml.safe_dump({**config, "seed": seed}))
                mp.delenv("FOCUSNET_RUN_DIR", raising=False)
                assert main(["train", str(path), "--out", str(root / name)]) == 0
                out[name] = root / name
        finally:
            torch.set_num_threads(before)
    out["fill_after"] = torch.utils.deterministic.fill_uninitialized_memory
    assert fill_before is True  # PyTorch's default: the test below would be vacuous otherwise
    return out


def test_training_does_not_fill_new_tensors_and_restores_the_setting(runs):
    assert runs["fill_during_training"] and not any(runs["fill_during_training"])
    assert runs["fill_after"] is True


@pytest.mark.parametrize("which", ["best", "last"])
def test_same_seed_gives_bit_identical_weights(runs, which):
    a = _weights(runs["a"] / "weights" / f"{which}.safetensors")
    b = _weights(runs["b"] / "weights" / f"{which}.safetensors")
    assert a.keys() == b.keys() and len(a) > 100
    differing = [k for k in a if a[k].dtype != b[k].dtype or a[k].numpy().tobytes() != b[k].numpy().tobytes()]
    assert not differing, differing[:5]


def test_same_seed_gives_identical_metrics(runs):
    rows_a, rows_b = _epoch_rows(runs["a"]), _epoch_rows(runs["b"])
    assert rows_a == rows_b and len(rows_a) >= 2
    sa = json.loads((runs["a"] / "summary.json").read_text())
    sb = json.loads((runs["b"] / "summary.json").read_text())
    for key in ("per_image", "mean", "std", "median", "pooled", "thresholded_jaccard", "count"):
        assert sa[key] == sb[key], key
    assert json.loads((runs["a"] / "split.json").read_text()) == json.loads((runs["b"] / "split.json").read_text())


def test_another_seed_gives_other_weights(runs):
    a = _weights(runs["a"] / "weights" / "last.safetensors")
    other = _weights(runs["other"] / "weights" / "last.safetensors")
    assert any(not torch.equal(a[k], other[k]) for k in a if a[k].is_floating_point())
