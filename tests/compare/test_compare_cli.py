"""`focusnet compare` end to end on synthetic lesions with two tiny models (< 1 min on 2 cores)."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from focusnet.cli import main
from focusnet.compare.runner import parse_model_specs, run_compare
from focusnet.errors import FocusNetError
from tests.compare.html_check import check_report
from tests.helpers import default_sigint

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "configs" / "demo.yaml"
MODELS = "focusnetpp:lite,unet[base_width=4]"


@pytest.fixture(scope="module")
def lesions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from focusnet.data.synthetic import generate

    folder = tmp_path_factory.mktemp("lesions") / "data"
    generate("lesions", folder, count=40, size=40, seed=0)
    return folder


def _overrides(data: Path, cache: Path, epochs: int = 2) -> list[str]:
    return [f"data.source={data}", f"data.cache_dir={cache}", "size=32", f"epochs={epochs}", "num_threads=1"]


def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def finished(lesions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cmp") / "out"
    code = main(["compare", str(DEMO_CONFIG), "--models", MODELS, "--out", str(out),
                 *_overrides(lesions, out.parent / "prepared")])
    assert code == 0
    return out


def test_compare_writes_tables_figures_and_report(finished: Path) -> None:
    out = finished
    comparison = json.loads((out / "comparison.json").read_text())
    assert [m["name"] for m in comparison["models"]] == ["focusnetpp-lite", "unet-base_width4"]
    assert all(m["status"] == "done" for m in comparison["models"])
    assert comparison["reference"] == "focusnetpp-lite"
    for m in comparison["models"]:
        # the numbers are the model's own evaluation, per image, at original resolution
        ev = json.loads((out / "runs" / m["name"] / "eval" / "test" / "summary.json").read_text())
        assert m["summary"]["mean"]["dice"] == pytest.approx(ev["original_resolution"]["mean"]["dice"])
        assert m["params"] > 0 and m["epochs_run"] == 2 and m["train_seconds"] > 0
        assert set(m["curves"]) == {"train_loss", "val_loss", "val_dice"} and len(m["curves"]["val_loss"]) == 2
        # one epoch numbering (from 0) everywhere: the best epoch is a key of the curves and best.json's epoch
        assert str(m["best_epoch"]) in m["curves"]["val_dice"]
        best_json = json.loads((out / "runs" / m["name"] / "weights" / "best.json").read_text())
        assert best_json["extra"]["epoch"] == m["best_epoch"]
    ids = [[r["id"] for r in m["summary"]["per_image"]] for m in comparison["models"]]
    assert ids[0] == ids[1] and len(ids[0]) == comparison["protocol"]["test_images"]  # same test split
    assert "unet-base_width4" in comparison["stats"]["tests"]
    for name in ("results.md", "results.csv", "results.tex"):
        assert (out / "tables" / name).stat().st_size > 200
    for stem in ("qualitative", "curves", "dice_distribution"):
        assert (out / "figures" / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / "figures" / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"
    check = check_report(out / "report.html")
    assert check["external_refs"] == 0 and not check["bad_images"]
    assert check["images"] >= 3 + 2 * comparison["protocol"]["test_images"]  # figures + a thumbnail per image and model
    assert check["sortable_headers"] > 0
    for key in ("split", "resolution", "threshold", "aggregation", "versions", "hardware"):
        assert key in comparison["protocol"]
    # the protocol describes the run (issue 17, item 8), not the quick profile as written
    proto = comparison["protocol"]
    assert "2 models (focusnetpp-lite, unet-base_width4) at 32x32, 2 epochs" in proto["run"]
    assert "size=128, epochs=8 replaced by the overrides size=32, epochs=2" in proto["profile"]
    assert "ISIC" not in proto["profile"] and "three models" not in proto["profile"]
    assert "at 32x32, 2 epochs" in (out / "report.html").read_text()


def test_rerun_reuses_finished_models(finished: Path, lesions: Path, capsys: pytest.CaptureFixture) -> None:
    before = {m: _tree_hash(finished / "runs" / m) for m in ("focusnetpp-lite", "unet-base_width4")}
    code = main(["compare", str(DEMO_CONFIG), "--models", MODELS, "--out", str(finished),
                 *_overrides(lesions, finished.parent / "prepared")])
    assert code == 0
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("finished earlier; reusing") == 2 and ": training " not in err and "resuming" not in err
    # the header says what runs (issue 17, item 8): the overrides' size and epochs, not the profile's
    header = err.splitlines()[0]
    assert header.startswith("focusnet compare: 2 models (focusnetpp-lite, unet-base_width4) at 32x32, 2 epochs"), header
    assert "128x128" not in header and "8 epochs" not in header and "ISIC" not in header
    assert "replaced by the overrides size=32, epochs=2" in err
    # the results table is the command's output (stdout); progress stays on stderr
    out_lines = captured.out.strip().splitlines()
    assert captured.out.startswith("## Results") and "| focusnetpp-lite (ref.) | done |" in captured.out
    assert not [line for line in out_lines if line.startswith(("focusnet compare:", "[", "  profile"))], captured.out
    assert "focusnetpp-lite" in captured.out and "unet-base_width4" in captured.out
    assert "| focusnetpp-lite" not in err and "reusing" not in captured.out
    assert {m: _tree_hash(finished / "runs" / m) for m in before} == before


def test_other_settings_in_the_same_folder_are_refused(finished: Path, lesions: Path, capsys: pytest.CaptureFixture) -> None:
    before = _tree_hash(finished)
    code = main(["compare", str(DEMO_CONFIG), "--models", MODELS, "--out", str(finished),
                 *_overrides(lesions, finished.parent / "prepared", epochs=3)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "epochs differ" in err[0] and str(finished) in err[0]
    assert _tree_hash(finished) == before


def test_bad_model_fails_before_anything_is_written(tmp_path: Path, lesions: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    for models, needle in (("focusnetpp:lite,nosuchnet", "nosuchnet"), ("unet[widht=3]", "widht"),
                           ("focusnetpp:huge", "huge"), ("unet,unet", "twice")):
        code = main(["compare", str(DEMO_CONFIG), "--models", models, "--out", str(out), *_overrides(lesions, tmp_path / "p")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and needle in err[0], (models, err)
        assert not out.exists()


class _Boom(nn.Module):
    def __init__(self, in_channels: int = 3, **_: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("boom: this model cannot train")
        return self.conv(x)


def test_one_failure_is_reported_and_the_others_go_on(tmp_path: Path, lesions: Path, capsys: pytest.CaptureFixture) -> None:
    from focusnet.models import registry

    registry._import_all()
    registry._MODELS["boom_test"] = lambda **kw: _Boom(**kw)
    registry._PRESETS["boom_test"] = ()
    try:
        lines: list[str] = []
        comparison = run_compare(DEMO_CONFIG, "boom_test,focusnetpp:lite", out=tmp_path / "out",
                                 overrides=[*_overrides(lesions, tmp_path / "prepared", epochs=1), "progress_bar=true"],
                                 log=lines.append)
    finally:
        registry._MODELS.pop("boom_test")
        registry._PRESETS.pop("boom_test")
    status = {m["name"]: (m["status"], m["error"]) for m in comparison["models"]}
    assert status["focusnetpp-lite"] == ("done", None)
    assert status["boom_test"][0] == "failed" and "boom: this model cannot train" in status["boom_test"][1]
    assert (tmp_path / "out" / "logs" / "boom_test.log").read_text().count("Traceback") >= 1
    assert "boom: this model cannot train" in (tmp_path / "out" / "tables" / "results.md").read_text()
    assert "boom: this model cannot train" in (tmp_path / "out" / "report.html").read_text()
    assert any("FAILED" in line for line in lines)
    # training's own lines are progress: stderr; stdout holds only the results table (issue 17, item 8)
    captured = capsys.readouterr()
    assert "epoch 0 (1 of 1)" in captured.err and "epoch 0" not in captured.out
    assert "| focusnetpp-lite" in captured.out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupted_compare_resumes_without_retraining(tmp_path: Path, lesions: Path) -> None:
    """SIGINT while the second model trains; the same command again retrains nothing that had finished."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "focusnet.cli", "compare", str(DEMO_CONFIG), "--models", MODELS, "--out", str(out),
           *_overrides(lesions, tmp_path / "prepared", epochs=6)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            preexec_fn=default_sigint)
    first = out / "runs" / "focusnetpp-lite" / "summary.json"
    second_ckpt = out / "runs" / "unet-base_width4" / "last.ckpt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (first.is_file() and second_ckpt.is_file()):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGINT)
    log1 = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, log1[-3000:]
    assert "run the same command again" in log1
    state = json.loads((out / "compare.json").read_text())
    assert state["models"]["focusnetpp-lite"]["status"] == "done"
    assert state["models"]["unet-base_width4"]["status"] == "pending"
    done_hash = _tree_hash(out / "runs" / "focusnetpp-lite")

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "focusnetpp-lite: finished earlier; reusing" in again.stderr
    assert "unet-base_width4: resuming" in again.stderr
    assert _tree_hash(out / "runs" / "focusnetpp-lite") == done_hash
    comparison = json.loads((out / "comparison.json").read_text())
    assert [m["status"] for m in comparison["models"]] == ["done", "done"]
    assert comparison["models"][1]["epochs_run"] == 6
    assert (out / "report.html").is_file()


def test_model_specs() -> None:
    specs = parse_model_specs("focusnetpp, focusnetpp:official ,unet[base_width=8;dropout=0.0]")
    assert [s.name for s in specs] == ["focusnetpp", "focusnetpp-official", "unet-base_width8-dropout0.0"]
    assert specs[2].kwargs == {"base_width": 8, "dropout": 0.0}
    for bad in ("", "unet[base_width]", "un et", "a:b:c"):
        with pytest.raises(FocusNetError):
            parse_model_specs(bad)
