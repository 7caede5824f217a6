"""`focusnet demo`: refuses used folders at once; the full demo (slow) reaches Dice >= 0.80 in < 10 min."""
from __future__ import annotations

import json
import time

import pytest

from focusnet.cli import main
from focusnet.errors import FocusNetError


def test_demo_refuses_a_used_run_folder_before_any_work(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("focusnet: error:") and "--out" in err and "\n" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["old.txt"]


def test_demo_rejects_a_bad_epoch_count(tmp_path):
    from focusnet.cli.demo import run_demo

    with pytest.raises(FocusNetError, match="epochs"):
        run_demo(out=tmp_path / "run", epochs=0)
    assert not (tmp_path / "run").exists()


def test_demo_config_is_valid_and_uses_focusnetpp(tmp_path):
    from focusnet.cli.demo import DEMO_SETTINGS, demo_config

    config = demo_config(tmp_path / "run", epochs=3)
    assert config.model == "focusnetpp" and config.preset == DEMO_SETTINGS["preset"]
    assert config.epochs == 3 and config.data_root == str(tmp_path / "run" / "data")
    assert config.accelerator == "cpu"


@pytest.mark.slow
def test_full_demo_reaches_dice_080_within_10_minutes(tmp_path, capsys):
    from focusnet.cli.demo import run_demo

    start = time.perf_counter()
    result = run_demo(out=tmp_path / "demo")
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    run = tmp_path / "demo"
    assert str(run) in out and "dice" in out
    assert json.loads((run / "summary.json").read_text()) == result
    assert result["protocol"]["split"] == "test"
    print(f"demo: {elapsed:.0f} s, test Dice {result['mean']['dice']:.4f}")
    assert result["mean"]["dice"] >= 0.80, result["mean"]
    assert elapsed < 600, elapsed
