"""The on-disk layout of a prepared cache: file names, version, folder key, and writing it atomically.

A cache is a folder ``<format>-<size>-<hash>`` (:func:`cache_key`) holding ``images.npy``,
``masks.npy`` and ``manifest.json``; it is written under a temporary name and renamed into place
(:func:`_move_into_place`), so a cache is either complete or absent.

Example:
    >>> cache_key({"format": "folder", "size": 64})
    'folder-64-397887ec850d'
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

__all__ = ["CACHE_VERSION", "IMAGES", "MANIFEST", "MASKS", "cache_key"]

CACHE_VERSION = 1
MANIFEST = "manifest.json"
IMAGES = "images.npy"
MASKS = "masks.npy"


def cache_key(settings: dict) -> str:
    """``<format>-<size>-<12 hex>``: the cache folder name of a settings dict."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"{settings['format']}-{settings['size']}-{digest}"


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _up_to_date(cache_dir: Path, settings: dict, files: dict) -> dict | None:
    """The manifest of a complete cache with these settings and unchanged sources, else None."""
    path = cache_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("settings") != settings or manifest.get("files") != files:
        return None
    try:
        n, s = manifest["count"], settings["size"]
        if np.load(cache_dir / IMAGES, mmap_mode="r").shape != (n, s, s, settings["channels"]):
            return None
        if np.load(cache_dir / MASKS, mmap_mode="r").shape != (n, s, s):
            return None
    except (OSError, ValueError, KeyError):
        return None
    return manifest


def _compact(tmp: Path, kept: list[int]) -> None:
    """Rewrite the arrays of ``tmp`` with only the rows in ``kept``."""
    for name in (IMAGES, MASKS):
        old = np.load(tmp / name, mmap_mode="r")
        shape = (len(kept),) + old.shape[1:]
        new = np.lib.format.open_memmap(tmp / f"{name}.new", mode="w+", dtype=old.dtype, shape=shape)
        for j, i in enumerate(kept):
            new[j] = old[i]
        new.flush()
        del new, old
        os.replace(tmp / f"{name}.new", tmp / name)


def _move_into_place(tmp: Path, cache_dir: Path) -> None:
    """Rename the finished ``tmp`` folder to ``cache_dir``, replacing a stale cache there."""
    old = None
    if cache_dir.exists():
        old = cache_dir.with_name(f".old-{cache_dir.name}-{uuid.uuid4().hex[:8]}")
        os.rename(cache_dir, old)
    try:
        os.rename(tmp, cache_dir)
    except OSError:
        if (cache_dir / MANIFEST).is_file():  # another prepare finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
