"""Training output when stdout is not a terminal (a redirected log): one plain line per epoch, no
carriage-return progress bars, and no Lightning model summary with its "Total Flops 0"."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from focusnet.cli import main


def test_redirected_training_prints_one_line_per_epoch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from focusnet.data.synthetic import generate
    from tests.reliability.conftest import tiny_train_config

    generate("lesions", tmp_path / "data", count=8, size=16, seed=0, overwrite=True)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_train_config(tmp_path / "data", tmp_path / "prepared", epochs=2, progress_bar=True)))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0  # pytest's stdout is not a terminal
    captured = capsys.readouterr()
    both = captured.out + captured.err
    assert "\r" not in both and "Flops" not in both
    lines = [line for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 0 (1 of 2)", "epoch 1 (2 of 2)"]
    assert all("train_loss" in line and "val_dice" in line for line in lines)
    assert "trainable parameters" in captured.out
