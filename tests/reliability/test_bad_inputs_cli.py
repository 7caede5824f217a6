"""Malformed inputs through the ``focusnet`` command line, end to end (issue 8, part 1).

Table-driven: every case builds its inputs under ``in/`` (data sets, configs, weights, images),
runs ``focusnet ...`` in process and checks that

* the exit code is 2 and nothing is printed on stdout;
* stderr is exactly one line, ``focusnet: error: ...``, containing the offending file name (or
  config key) and a fix hint, and no traceback;
* every file under ``in/`` is byte-identical (sha256 tree hash, links not followed) and no file
  was added to or removed from the input folders.

The data-layer refusals of ``focusnet prepare`` (27 cases) live in tests/data/test_bad_inputs.py;
the weights-file errors of ``load_model`` in tests/test_weights.py. This table goes through the
other commands (train, predict, score, evaluate) and adds the cases those files do not cover.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from focusnet.cli import main
from tests.data.test_bad_inputs import H, W, make_folder, mask, rgb
from tests.reliability.conftest import copy_weights, tiny_train_config, tree_hash, tree_state

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    """Where a case builds its inputs (``inp``) and where outputs may go (``out``)."""

    inp: Path
    out: Path
    weights: Path  # the session's template folder of tiny saved models


@dataclass
class Case:
    argv: list[str]
    expect: list[str]  # fragments of the error line: the file (or key) and the fix hint
    after: Callable[[], None] | None = None  # extra check after the run
    extra_roots: list[Path] = field(default_factory=list)  # more input roots to hash


# ------------------------------------------------------------------------------------ builders
def _folder(env: Env, name: str = "data", n: int = 4) -> Path:
    return make_folder(env.inp / name, n)


def _prepare(env: Env, src: Path, *extra: str) -> list[str]:
    return ["prepare", "--format", "folder", "--source", str(src), "--out", str(env.out / "prepared"),
            "--size", "16", "--workers", "1", "--no-progress", *extra]


def _png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _config(env: Env, data: dict | str, name: str = "config.yaml") -> Path:
    path = env.inp / "configs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _train_config(env: Env, **changes) -> Path:
    src = env.inp / "data"
    if not src.exists():
        _folder(env)
    return _config(env, tiny_train_config(src, env.out / "prepared", **changes))


def _train(env: Env, config: Path, *extra: str) -> list[str]:
    return ["train", str(config), *extra, "--out", str(env.out / "run")]


def _image(env: Env, name: str = "photo.png") -> Path:
    path = env.inp / "images" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb(7, (20, 28)).save(path)
    return path


def _predict(env: Env, model: Path | str, *inputs: Path | str, out: Path | None = None) -> list[str]:
    inputs = inputs or (_image(env),)
    return ["predict", str(model), *map(str, inputs), str(out or env.out / "masks"), "--no-progress"]


def _model(env: Env, name: str = "focusnetpp") -> Path:
    return copy_weights(env.weights, name, env.inp / "model")


# ------------------------------------------------------------------------------ data sets (prepare)
def d_truncated_png(env):
    src = _folder(env)
    path = src / "images" / "c1.png"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return Case(_prepare(env, src), ["images/c1.png", "truncated", "re-export or remove this file"])


def d_truncated_jpeg(env):
    src = _folder(env)
    (src / "images" / "c1.png").unlink()
    data = _png_bytes(rgb(1, (64, 80)), "JPEG")
    (src / "images" / "c1.jpg").write_bytes(data[: len(data) // 2])
    return Case(_prepare(env, src), ["images/c1.jpg", "truncated", "re-export or remove this file"])


def d_zero_byte_image(env):
    src = _folder(env)
    (src / "images" / "c2.png").write_bytes(b"")
    return Case(_prepare(env, src), ["images/c2.png", "unreadable", "re-export or remove this file"])


def d_zero_byte_mask(env):
    src = _folder(env)
    (src / "masks" / "c0.png").write_bytes(b"")
    return Case(_prepare(env, src), ["masks/c0.png", "unreadable", "re-export or remove this file"])


def d_unsupported_extension(env):
    """An image saved as .gif is not a data-set image: its mask is reported as orphaned."""
    src = _folder(env)
    img = src / "images" / "c3.png"
    Image.open(img).save(src / "images" / "c3.gif")
    img.unlink()
    return Case(_prepare(env, src), ["masks/c3.png", "mask has no image 'c3'", "add the image or remove the mask"])


def d_jpeg_mask_named_png(env):
    """JPEG bytes under a .png name: decoded by content, and the JPEG artefacts make it non-binary."""
    src = _folder(env)
    noisy = np.zeros((H, W), np.uint8)
    noisy[3:17, 5:23] = 255
    (src / "masks" / "c1.png").write_bytes(_png_bytes(Image.fromarray(noisy), "JPEG"))
    # half, not nonzero: nonzero would count the compression noise as lesion (issue 17, item 6)
    return Case(_prepare(env, src), ["masks/c1.png", "mask is not binary", "JPEG compression", "--mask-rule half"])


def d_size_mismatch(env):
    src = _folder(env)
    mask((H + 2, W)).save(src / "masks" / "c2.png")
    return Case(_prepare(env, src), ["masks/c2.png", f"mask is {H + 2}x{W}", "re-export it"])


def d_rgb_mask(env):
    src = _folder(env)
    m = np.zeros((H, W, 3), np.uint8)
    m[2:9, 2:9] = (0, 255, 0)
    Image.fromarray(m, mode="RGB").save(src / "masks" / "c0.png")
    return Case(_prepare(env, src), ["masks/c0.png", "differing colour channels", "single-channel"])


def d_16bit_mask(env):
    src = _folder(env)
    m = np.zeros((H, W), np.uint16)
    m[2:9, 2:9], m[12:20, 12:20] = 1000, 65535
    Image.fromarray(m).save(src / "masks" / "c1.png")
    return Case(_prepare(env, src), ["masks/c1.png", "mask is not binary (values 0, 1000, 65535)", "--mask-rule nonzero"])


def d_palette_mask(env):
    src = _folder(env)
    m = np.zeros((H, W), np.uint8)
    m[2:9, 2:9], m[12:20, 12:20] = 1, 2
    img = Image.fromarray(m, mode="P")
    img.putpalette([0, 0, 0, 255, 255, 255, 128, 128, 128] + [0] * (253 * 3))
    img.save(src / "masks" / "c2.png")
    return Case(_prepare(env, src), ["masks/c2.png", "mask is not binary (values 0, 128, 255)", "--mask-rule nonzero"])


def d_mask_values_012(env):
    src = _folder(env)
    m = np.zeros((H, W), np.uint8)
    m[2:9, 2:9], m[12:20, 12:20] = 1, 2
    Image.fromarray(m).save(src / "masks" / "c3.png")
    return Case(_prepare(env, src), ["masks/c3.png", "mask is not binary (values 0, 1, 2)", "--mask-rule nonzero"])


def d_image_without_mask(env):
    src = _folder(env)
    (src / "masks" / "c2.png").unlink()
    return Case(_prepare(env, src), ["images/c2.png", "no mask for image 'c2'", "add the mask or remove the image"])


def d_one_image_dataset(env):
    """One image cannot be split into train and validation data: refused before a run folder exists."""
    src = _folder(env, n=1)
    config = _config(env, tiny_train_config(src, env.out / "prepared"))
    return Case(_train(env, config), ["in/data", "add images"], after=lambda: _no_run(env))


def d_non_ascii_path(env):
    src = make_folder(env.inp / "données é", 3)
    for sub in ("images", "masks"):
        (src / sub / "c1.png").rename(src / sub / "bild_äöü.png")
    bad = src / "images" / "bild_äöü.png"
    bad.write_bytes(bad.read_bytes()[:40])
    return Case(_prepare(env, src), ["données é/images/bild_äöü.png", "truncated", "re-export or remove this file"])


def d_space_in_path(env):
    src = make_folder(env.inp / "my data set", 3)
    for sub in ("images", "masks"):
        (src / sub / "c1.png").rename(src / sub / "case 1.png")
    m = np.zeros((H, W), np.uint8)
    m[:, :5], m[:, 5:9] = 7, 255
    Image.fromarray(m).save(src / "masks" / "case 1.png")
    return Case(_prepare(env, src), ["my data set/masks/case 1.png", "not binary", "--mask-rule nonzero"])


def d_symlink_loop_source(env):
    env.inp.mkdir(parents=True, exist_ok=True)
    loop = env.inp / "loop"
    os.symlink(loop, loop)
    return Case(_prepare(env, loop), [str(loop), "loop", "pass the folder"])


def d_symlink_loop_image(env):
    src = _folder(env)
    img = src / "images" / "c1.png"
    img.unlink()
    os.symlink(img, img)  # images/c1.png -> itself
    return Case(_prepare(env, src), ["images/c1.png", "loop", "remove"])


def d_split_unknown_ids(env):
    src = _folder(env)
    split = env.inp / "split.json"
    split.write_text(json.dumps({"train": ["c0", "c1"], "val": ["c2", "nobody"], "test": ["c3"]}))
    return Case(_prepare(env, src, "--split", str(split)), ["split.json", "'nobody'", "remove them"])


# ------------------------------------------------------------------------------- configs (train)
def c_unknown_key(env):
    return Case(_train(env, _train_config(env, lr_schedul="cosine")), ["config.yaml", "unknown config key 'lr_schedul'", "did you mean 'lr_schedule'?"])


def c_unknown_nested_key(env):
    return Case(_train(env, _train_config(env, data={"sauce": "x"})), ["config.yaml", "'data.sauce'", "did you mean 'data.source'?"])


def c_wrong_type(env):
    return Case(_train(env, _train_config(env, epochs="two")), ["config.yaml", "epochs", "must be an integer >= 1", "'two'"])


def c_negative_batch_size(env):
    return Case(_train(env, _train_config(env, batch_size=-4)), ["config.yaml", "batch_size", "must be an integer >= 1", "-4"])


def c_lr_zero(env):
    return Case(_train(env, _train_config(env, lr=0)), ["config.yaml", "lr: must be a number in (0, 10]"])


def c_unknown_model(env):
    return Case(_train(env, _train_config(env, model="nosuchnet")), ["nosuchnet", "focusnetpp"])


def c_unknown_preset(env):
    return Case(_train(env, _train_config(env, preset="huge")), ["preset", "'huge'", "choose one of", "lite"])


def c_invalid_yaml(env):
    return Case(_train(env, _config(env, "model: focusnetpp\nepochs: [3\n")), ["config.yaml", "cannot parse the config"])


def c_not_a_mapping(env):
    return Case(_train(env, _config(env, "- 1\n- 2\n")), ["config.yaml", "expected a mapping of keys to values"])


def c_missing_config(env):
    env.inp.mkdir(parents=True, exist_ok=True)
    return Case(_train(env, env.inp / "nope.yaml"), ["nope.yaml", "config file not found"])


def c_unknown_override(env):
    return Case(_train(env, _train_config(env), "epochz=3"), ["epochz", "did you mean 'epochs'?"])


def c_source_not_a_folder(env):
    return Case(_train(env, _train_config(env, data={"source": str(env.inp / "nowhere")})), ["data.source", "nowhere", "is not a folder"])


def c_split_file_unknown_ids(env):
    split = env.inp / "ids.json"
    config = _train_config(env, data={"split": str(split)})
    split.write_text(json.dumps({"train": ["c0", "c1"], "val": ["c2"], "test": ["ghost"]}))
    return Case(_train(env, config), ["ids.json", "'ghost'", "remove them"], after=lambda: _no_run(env))


def c_zero_threads_override(env):
    return Case(_train(env, _train_config(env), "num_threads=0"), ["num_threads", "must be an integer >= 1"])


# --------------------------------------------------------------------------------- CLI arguments
def a_predict_missing_input(env):
    return Case(_predict(env, _model(env), env.inp / "no_such.png"), ["no_such.png", "no such file or folder", "pass an image file"])


def a_predict_missing_model(env):
    return Case(_predict(env, env.inp / "gone.safetensors"), ["gone.safetensors", "file not found", "pass a .safetensors"])


def a_predict_output_inside_input(env):
    img = _image(env)
    return Case(_predict(env, _model(env), img.parent, out=img.parent / "masks"),
                ["the output folder is inside the input folder", "images"])


def a_predict_symlink_loop_input(env):
    env.inp.mkdir(parents=True, exist_ok=True)
    loop = env.inp / "loop.png"
    os.symlink(loop, loop)
    return Case(_predict(env, _model(env), loop), ["loop.png", "pass an image file"])


def a_prepare_out_inside_source(env):
    src = _folder(env)
    argv = _prepare(env, src)
    argv[argv.index("--out") + 1] = str(src / "cache")
    return Case(argv, ["inside the source folder", "choose --out outside it"])


def a_score_missing_folder(env):
    truth = env.inp / "truth"
    truth.mkdir(parents=True)
    mask().save(truth / "a.png")
    return Case(["score", str(env.inp / "preds"), str(truth)], ["preds"])


def a_resume_not_a_run(env):
    folder = env.inp / "not-a-run"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("hello")
    return Case(["train", "--resume", str(folder)], ["not-a-run/last.ckpt", "nothing to resume"])


def a_evaluate_not_a_run(env):
    folder = env.inp / "not-a-run"
    folder.mkdir(parents=True)
    return Case(["evaluate", str(folder)], ["not-a-run/config.json", "focusnet train"])


# ----------------------------------------------------------------------------------- checkpoints
def k_truncated_safetensors(env):
    path = _model(env)
    path.write_bytes(path.read_bytes()[:200])
    return Case(_predict(env, path), ["focusnetpp.safetensors", "truncated", "re-save or re-download"])


def k_zero_byte_safetensors(env):
    path = _model(env)
    path.write_bytes(b"")
    return Case(_predict(env, path), ["focusnetpp.safetensors", "truncated or empty", "re-save or re-download"])


def k_other_model(env):
    """U-Net tensors under a FocusNet++ config: refused, naming both models."""
    path = _model(env)
    unet = copy_weights(env.weights, "unet", env.inp / "other")
    path.write_bytes(unet.read_bytes())
    return Case(_predict(env, path), ["focusnetpp.safetensors", "weights do not fit the config's model focusnetpp(",
                                      "the weights were saved for unet(", "use the .json saved with them"])


def _evil_pickle(marker: Path) -> bytes:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps({"state_dict": Evil()})


def k_pickle_runs_code(env):
    env.inp.mkdir(parents=True, exist_ok=True)
    marker = env.out / "PWNED"
    path = env.inp / "model.pt"
    path.write_bytes(_evil_pickle(marker))
    return Case(_predict(env, path), ["model.pt", "is a PyTorch pickle checkpoint", "safetensors"],
                after=lambda: _not_created(marker))


def k_pickle_named_safetensors(env):
    env.inp.mkdir(parents=True, exist_ok=True)
    marker = env.out / "PWNED"
    path = env.inp / "model.safetensors"
    path.write_bytes(_evil_pickle(marker))
    return Case(_predict(env, path), ["model.safetensors", "is a PyTorch pickle checkpoint", "safetensors"],
                after=lambda: _not_created(marker))


def k_missing_keys(env):
    from safetensors.torch import load_file, save_file

    path = _model(env)
    tensors = load_file(str(path))
    dropped = sorted(tensors)[0]
    del tensors[dropped]
    save_file(tensors, str(path), metadata={"format": "focusnet.weights"})
    return Case(_predict(env, path), ["focusnetpp.safetensors", f"missing keys {dropped}", "focusnetpp(preset='lite'"])


def k_invalid_json_config(env):
    path = _model(env)
    path.with_suffix(".json").write_text("{not json")
    return Case(_predict(env, path), ["focusnetpp.json", "invalid JSON", "fix it, or delete it"])


def k_evaluate_pickle_checkpoint(env):
    """A run whose best.ckpt is a pickle that would run code: refused, not unpickled."""
    from focusnet.engine.config import TrainConfig

    run = env.inp / "run"
    run.mkdir(parents=True)
    src = _folder(env)
    cfg = TrainConfig.from_dict(tiny_train_config(src, env.out / "prepared", out_dir=str(run)))
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    (run / "split.json").write_text(json.dumps({"train": ["c0", "c1"], "val": ["c2"], "test": ["c3"]}))
    marker = env.out / "PWNED"
    (run / "best.ckpt").write_bytes(_evil_pickle(marker))
    return Case(["evaluate", str(run), "--split", "val", "--no-original-resolution"],
                ["best.ckpt", "checkpoint"], after=lambda: _not_created(marker))


# ------------------------------------------------------------------------------------ the table
def _not_created(marker: Path) -> None:
    assert not marker.exists(), "the pickle's code ran"


def _no_run(env: Env) -> None:
    run = env.out / "run"
    assert not run.exists() or not any(run.iterdir()), f"a bad input left a run folder: {sorted(run.iterdir())}"


CASES = [
    # data sets
    d_truncated_png, d_truncated_jpeg, d_zero_byte_image, d_zero_byte_mask, d_unsupported_extension,
    d_jpeg_mask_named_png, d_size_mismatch, d_rgb_mask, d_16bit_mask, d_palette_mask, d_mask_values_012,
    d_image_without_mask, d_one_image_dataset, d_non_ascii_path, d_space_in_path, d_symlink_loop_source,
    d_symlink_loop_image, d_split_unknown_ids,
    # configs
    c_unknown_key, c_unknown_nested_key, c_wrong_type, c_negative_batch_size, c_lr_zero, c_unknown_model,
    c_unknown_preset, c_invalid_yaml, c_not_a_mapping, c_missing_config, c_unknown_override,
    c_source_not_a_folder, c_split_file_unknown_ids, c_zero_threads_override,
    # CLI arguments
    a_predict_missing_input, a_predict_missing_model, a_predict_output_inside_input, a_predict_symlink_loop_input,
    a_prepare_out_inside_source, a_score_missing_folder, a_resume_not_a_run, a_evaluate_not_a_run,
    # checkpoints
    k_truncated_safetensors, k_zero_byte_safetensors, k_other_model, k_pickle_runs_code,
    k_pickle_named_safetensors, k_missing_keys, k_invalid_json_config, k_evaluate_pickle_checkpoint,
]


# Cases the package does not handle yet: strict xfail, so each turns into a failure once fixed
# (then remove it from here). The reason names the fix.
KNOWN_GAPS: dict = {}


def _param(case):
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[case])] if case in KNOWN_GAPS else []
    return pytest.param(case, marks=marks, id=case.__name__)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_gives_one_line_exit_2_and_touches_nothing(case, tmp_path, model_template, capsys, monkeypatch):
    monkeypatch.delenv("FOCUSNET_RUN_DIR", raising=False)
    env = Env(tmp_path / "in", tmp_path / "out", model_template)
    spec = case(env)
    roots = [env.inp, *spec.extra_roots]
    before = {str(r): tree_state(r) for r in roots}
    hashes = {str(r): tree_hash(r) for r in roots}
    capsys.readouterr()

    rc = main(spec.argv)
    out, err = capsys.readouterr()

    assert rc == 2, f"exit code {rc}; stderr: {err!r}"
    assert out == "", out
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {err!r}"
    line = lines[0]
    assert line.startswith("focusnet: error: "), line
    for fragment in spec.expect:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    for r in roots:
        after = tree_state(r)
        assert sorted(after) == sorted(before[str(r)]), f"files added or removed under {r}"
        assert tree_hash(r) == hashes[str(r)], [k for k in after if after[k] != before[str(r)].get(k)]
    if spec.after is not None:
        spec.after()


def test_at_least_30_distinct_malformed_inputs():
    assert len(CASES) == len(set(CASES)) >= 30


# ------------------------------------------------------------------------------------------ --debug
def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "focusnet.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=str(REPO))


def test_debug_prints_the_traceback_and_plain_mode_does_not(tmp_path):
    cfg = tmp_path / "in" / "config.yaml"
    cfg.parent.mkdir()
    cfg.write_text("epochs: 2\nlr_schedul: cosine\n")
    plain = _cli("train", str(cfg), "--out", str(tmp_path / "run"))
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr.splitlines() == [plain.stderr.strip()] and "Traceback" not in plain.stderr
    assert plain.stderr.startswith("focusnet: error: ") and "lr_schedul" in plain.stderr

    debug = _cli("--debug", "train", str(cfg), "--out", str(tmp_path / "run"))
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "focusnet.errors.FocusNetError" in debug.stderr and "lr_schedul" in debug.stderr
    assert not (tmp_path / "run").exists()
