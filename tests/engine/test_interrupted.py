"""A run interrupted before its last epoch: evaluate says how many epochs finished, predict and
focusnet.load_model say it was interrupted and how to finish it (or keep it as it is)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from focusnet.cli import main
from focusnet.errors import FocusNetError


@pytest.fixture()
def interrupted(tmp_path: Path) -> Path:
    """A 1-epoch run made to look as a 2-epoch run stopped after its first epoch (what Ctrl-C leaves)."""
    from focusnet.data.synthetic import generate
    from tests.reliability.conftest import tiny_train_config

    generate("lesions", tmp_path / "data", count=8, size=16, seed=0, overwrite=True)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_train_config(tmp_path / "data", tmp_path / "prepared", epochs=1)))
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    shutil.rmtree(run / "weights")
    (run / "summary.json").unlink()
    progress = json.loads((run / "progress.json").read_text())
    (run / "progress.json").write_text(json.dumps({**progress, "max_epochs": 2}))
    return run


def test_interrupted_run_is_named_as_such(interrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import focusnet

    assert main(["evaluate", str(interrupted), "--split", "val"]) == 0
    captured = capsys.readouterr()
    assert "training was interrupted (1 of 2 epochs finished)" in captured.err
    assert f"focusnet train --resume {interrupted}" in captured.err
    summary = json.loads((interrupted / "eval" / "val" / "summary.json").read_text())
    assert "1 of 2 epochs finished" in summary["weights"]

    images = tmp_path / "data" / "images"
    assert main(["predict", str(interrupted), str(images), str(tmp_path / "masks")]) == 2
    err = capsys.readouterr().err
    assert "interrupted (1 of 2 epochs finished)" in err and "--resume" in err and "epochs=N" in err
    assert "pass a .safetensors file or a run folder" not in err  # it is a run folder
    with pytest.raises(FocusNetError, match="interrupted"):
        focusnet.load_model(interrupted)

    # the way out the message names: keep the run as it is, with its best epoch's weights
    assert main(["train", "--resume", str(interrupted), "epochs=1"]) == 0
    assert (interrupted / "weights" / "best.safetensors").is_file()
    assert focusnet.load_model(interrupted) is not None
