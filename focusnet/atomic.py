"""Atomic file writes: a temporary file in the same folder, flushed, then renamed over the target.

A reader (or a killed process) sees either the old file or the whole new one, never half of it.
The temporary file comes from :func:`tempfile.mkstemp`, which creates it mode 0600; before the
rename it gets the mode an ordinary ``open(path, "w")`` would give (0666 less the umask), so
outputs written this way are as readable by others as every other file the user writes.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write(p, "hello\\n").read_text()
    'hello\\n'
"""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

__all__ = ["atomic_write", "file_mode", "replace_into", "temp_path"]

_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The mode a new file gets from ``open(path, "w")``: 0666 less the process's umask.

    Example:
        >>> old = os.umask(0o022); mode = file_mode(); _ = os.umask(old)
        >>> oct(mode)
        '0o644'
    """
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def temp_path(path: str | os.PathLike[str]) -> Path:
    """A new, empty temporary file beside ``path`` (same folder, hidden name) for :func:`replace_into`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def replace_into(tmp: str | os.PathLike[str], path: str | os.PathLike[str], mode: int | None = None) -> Path:
    """Give ``tmp`` the umask's file mode (or ``mode``), then rename it over ``path``; returns ``path``."""
    os.chmod(tmp, file_mode() if mode is None else mode)
    os.replace(tmp, path)
    return Path(path)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int | None = None) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; returns ``path``.

    The file gets ``mode``, by default the umask's (:func:`file_mode`). The parent folder must
    exist. On any error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        replace_into(tmp, path, mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
