"""Fail early, with the space needed, when a folder's disk is too full for what is about to be written.

:func:`ensure_free_space` asks :func:`shutil.disk_usage` about the nearest existing folder of a path
(the path itself may not exist yet) and raises :class:`~focusnet.errors.FocusNetError` with one line
naming the folder, the space needed and available, and the fix.

Example:
    >>> ensure_free_space("runs/new", 10 * 2**20, "train")  # doctest: +SKIP
"""
from __future__ import annotations

import shutil
from pathlib import Path

from focusnet.errors import FocusNetError

__all__ = ["MARGIN_BYTES", "ensure_free_space", "format_bytes", "free_bytes"]

MARGIN_BYTES = 16 * 2**20  # logs, manifests, plots, temporary files


def format_bytes(n: int | float) -> str:
    """``n`` bytes as ``"1.25 GB"``, ``"3.4 MB"`` or ``"12 KB"`` (binary units)."""
    n = float(n)
    if n >= 2**30:
        return f"{n / 2**30:.2f} GB"
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB"
    return f"{n / 2**10:.0f} KB"


def _existing_parent(path: Path) -> Path:
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: str | Path) -> tuple[Path, int]:
    """``(nearest existing folder of path, its free bytes)``."""
    folder = _existing_parent(Path(path))
    return folder, int(shutil.disk_usage(folder).free)  # looked up at call time: tests patch shutil.disk_usage


def ensure_free_space(
    path: str | Path, needed_bytes: int, what: str, fix: str = "free space or choose another --out"
) -> None:
    """Raise :class:`FocusNetError` unless the disk of ``path`` has ``needed_bytes`` free.

    Args:
        path: the folder about to be written (need not exist yet).
        needed_bytes: the estimated size of what will be written, margin included.
        what: what needs the space, e.g. ``"the prepared cache (12 images at 256 x 256)"``.
        fix: the advice at the end of the message.
    """
    folder, free = free_bytes(path)
    if free < needed_bytes:
        raise FocusNetError(
            f"{folder}: not enough free disk space for {what}: needs about {format_bytes(needed_bytes)}, "
            f"{format_bytes(free)} available; {fix}"
        )
