"""Shared helpers of the reliability suite (issue 8): one torch thread, tree hashes that never follow
links, a tiny data set and config, and one tiny saved model reused by every checkpoint case."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

# Tiny FocusNet++ used by the training tests of this folder (seconds per run on one CPU thread).
TINY_KWARGS = {"widths": [4, 4, 4, 4, 4], "stem_width": 4, "head_mid": [4, 4, 4, 4], "fusion_mid": 4}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test of this folder on one intra-op thread (tests/conftest.py's ``one_thread``)."""


def tree_state(root: Path) -> dict[str, str]:
    """``{relative path: digest}`` of everything under ``root``, links not followed (loops are fine).

    Regular files are hashed (sha256 of the bytes, plus size and mtime), links by their target text,
    folders by their presence; so a changed byte, a touched file and a new or removed entry all show.
    """
    state: dict[str, str] = {}
    root = Path(root)
    if not os.path.lexists(root):
        return state
    if root.is_symlink():
        return {".": "link:" + os.readlink(root)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if path.is_symlink():
                state[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                state[rel] = "dir"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[rel] = f"file:{st.st_size}:{st.st_mtime_ns}:{digest}"
    return state


def tree_hash(root: Path) -> str:
    """One sha256 over :func:`tree_state`."""
    h = hashlib.sha256()
    for rel, digest in sorted(tree_state(root).items()):
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()


@pytest.fixture(scope="session")
def model_template(tmp_path_factory) -> Path:
    """A folder holding ``focusnetpp.safetensors/.json`` (tiny FocusNet++) and ``unet.safetensors/.json``."""
    from focusnet.models import create_model
    from focusnet.weights import save_weights

    folder = tmp_path_factory.mktemp("weights-template")
    pre = {"size": 16, "channels": 3, "normalization": "minmax"}
    torch.manual_seed(0)
    kwargs = {"preset": "lite", **TINY_KWARGS}
    save_weights(create_model("focusnetpp", **kwargs), folder / "focusnetpp", "focusnetpp", kwargs, pre)
    save_weights(create_model("unet", base_width=4), folder / "unet", "unet", {"base_width": 4}, pre)
    return folder


def copy_weights(template: Path, name: str, dest: Path) -> Path:
    """Copy ``name.safetensors`` and ``name.json`` into ``dest``; returns the ``.safetensors`` path."""
    dest.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy2(template / f"{name}{suffix}", dest / f"{name}{suffix}")
    return dest / f"{name}.safetensors"


def tiny_train_config(source: Path, cache_dir: Path, **changes) -> dict:
    """A tiny, fast training config (2 epochs of a 4-wide FocusNet++ at 16 x 16, one thread)."""
    config = {
        "model": "focusnetpp",
        "preset": "lite",
        "model_kwargs": dict(TINY_KWARGS),
        "data": {"format": "folder", "source": str(source), "split": "random:0.5,0.25,0.25", "cache_dir": str(cache_dir)},
        "size": 16,
        "batch_size": 4,
        "epochs": 2,
        "lr": 1.0e-3,
        "lr_schedule": "cosine",
        "progress_bar": False,
        "num_threads": 1,
        "seed": 1,
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config
