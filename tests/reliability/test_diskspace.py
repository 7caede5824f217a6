"""Issue 8: preparing or training with too little free space fails early, in one line, with the space
needed, and writes nothing (``shutil.disk_usage`` is patched to report a nearly full disk)."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from focusnet.cli import main
from focusnet.diskspace import MARGIN_BYTES, ensure_free_space, format_bytes
from focusnet.errors import FocusNetError
from tests.reliability.conftest import tiny_train_config, tree_state

FREE = 5 * 2**10  # 5 KB: less than anything focusnet writes


@pytest.fixture()
def full_disk(monkeypatch):
    """Every disk reports FREE bytes free; records the folders asked about."""
    asked: list[Path] = []

    def disk_usage(path):  # noqa: ANN001, ANN202 - shutil's signature
        asked.append(Path(path))
        return SimpleNamespace(total=2**40, used=2**40 - FREE, free=FREE)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    monkeypatch.delenv("FOCUSNET_RUN_DIR", raising=False)
    return asked


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from focusnet.data.synthetic import generate

    root = tmp_path_factory.mktemp("disk") / "data"
    generate("lesions", root, count=8, size=24, seed=0, overwrite=True)
    return root


def _one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == "", out
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {err!r}"
    assert lines[0].startswith("focusnet: error: "), lines[0]
    return lines[0]


def test_ensure_free_space_names_the_nearest_existing_folder(tmp_path, full_disk):
    ensure_free_space(tmp_path / "a" / "b", FREE, "x")  # exactly enough: fine
    with pytest.raises(FocusNetError) as info:
        ensure_free_space(tmp_path / "a" / "b", 3 * 2**30, "the thing")
    msg = str(info.value)
    assert full_disk[-1] == tmp_path
    assert msg.startswith(f"{tmp_path}: not enough free disk space for the thing: needs about 3.00 GB, 5 KB available;"), msg
    assert "choose another --out" in msg and "\n" not in msg
    assert not (tmp_path / "a").exists()


def test_prepare_refuses_a_full_disk_before_writing(data, tmp_path, full_disk, capsys):
    out = tmp_path / "prepared"
    before = tree_state(data)
    capsys.readouterr()
    rc = main(["prepare", "--format", "folder", "--source", str(data), "--out", str(out), "--size", "16", "--no-progress"])
    line = _one_error_line(capsys)
    assert rc == 2
    needed = 8 * 16 * 16 * (3 + 1)
    assert f"needs about {format_bytes(needed + MARGIN_BYTES)}" in line, line
    assert "5 KB available" in line and "the prepared cache (8 images at 16 x 16)" in line, line
    assert not out.exists()  # no cache folder, no temporary folder
    assert tree_state(data) == before


def test_train_refuses_a_full_disk_before_writing(data, tmp_path, full_disk, capsys):
    from focusnet.engine.config import load_config
    from focusnet.engine.train import build_model, checkpoint_bytes, resolve_model

    cache, run = tmp_path / "prepared", tmp_path / "runs" / "tiny"
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_train_config(data, cache)))
    expected = checkpoint_bytes(build_model(resolve_model(load_config(cfg)))) + MARGIN_BYTES
    capsys.readouterr()
    rc = main(["train", str(cfg), "--out", str(run)])
    line = _one_error_line(capsys)
    assert rc == 2
    assert f"needs about {format_bytes(expected)}" in line and "checkpoints" in line, line
    assert line.startswith(f"focusnet: error: {tmp_path}: not enough free disk space"), line
    assert not (tmp_path / "runs").exists() and not cache.exists()

