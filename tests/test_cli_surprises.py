"""Small command-line surprises a newcomer met (issue 17, item 9): --debug after the verb, export of
NAME:PRESET, and prepare --check not reporting a size it does not use."""
from __future__ import annotations

from pathlib import Path

import pytest

from focusnet.cli import main
from focusnet.errors import FocusNetError


def test_debug_is_accepted_after_the_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--debug"]) == 0
    with pytest.raises(FocusNetError):  # --debug: the traceback instead of the one line
        main(["score", str(tmp_path / "nope"), str(tmp_path / "nope"), "--debug"])
    with pytest.raises(FocusNetError):
        main(["--debug", "score", str(tmp_path / "nope"), str(tmp_path / "nope")])
    assert main(["score", str(tmp_path / "nope"), str(tmp_path / "nope")]) == 2


def test_export_takes_name_colon_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "focusnetpp:lite", "--format", "torchscript", "--size", "32", "--out", str(tmp_path / "m.pt")]) == 0
    assert "exported focusnetpp:lite with untrained weights" in capsys.readouterr().out
    # the spec grammar of compare and benchmark: constructor arguments in brackets
    spec = "focusnetpp:lite[norm=instance]"
    assert main(["export", spec, "--format", "torchscript", "--size", "32", "--out", str(tmp_path / "in.pt")]) == 0
    assert f"exported {spec} with untrained weights" in capsys.readouterr().out
    assert main(["export", "unet[widht=4]", "--format", "onnx", "--out", str(tmp_path / "w.onnx")]) == 2
    assert "takes no argument widht" in capsys.readouterr().err and not (tmp_path / "w.onnx").exists()
    assert main(["export", "focusnetpp:lite", "--preset", "paper", "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2


def test_prepare_check_does_not_report_a_size_it_does_not_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from focusnet.data.synthetic import generate

    generate("lesions", tmp_path / "data", count=6, size=32)
    assert main(["prepare", "--format", "folder", "--source", str(tmp_path / "data"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "checked 6 pairs" in out and "256x256" not in out
    assert main(["prepare", "--format", "folder", "--source", str(tmp_path / "data"), "--check", "--size", "64"]) == 0
    assert "64x64" in capsys.readouterr().out
