"""Where the real data lives (one setting: the ``FOCUSNET_DATA`` environment variable)."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "FOCUSNET_DATA"


def data_root() -> Path:
    """The real-data root: ``$FOCUSNET_DATA`` if set, else ``<repo>/../shared/data``.

    The folder is not checked for existence; callers report or skip when it is missing.

    Example:
        >>> data_root().name  # doctest: +SKIP
        'data'
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
