"""Helpers shared by the test files of several folders (their fixtures are in tests/conftest.py)."""
from __future__ import annotations

import hashlib
import signal
from pathlib import Path
from typing import Any

from focusnet.engine.config import TrainConfig

# A FocusNet++ small enough to train for an epoch in seconds on one CPU thread.
TINY_FOCUSNETPP: dict[str, Any] = {"widths": (8, 8, 8, 8, 8), "stem_width": 8, "head_mid": (8, 8, 8, 8), "fusion_mid": 8}
# The same with its preset, as create_model and save_weights take it (in this order: a saved
# model's describe() lists the keyword arguments as given).
TINY_FOCUSNETPP_LITE: dict[str, Any] = {
    "preset": "lite", "widths": (8, 8, 8, 8, 8), "head_mid": (8, 8, 8, 8), "stem_width": 8, "fusion_mid": 8
}


def tiny_train_config(source: Path, out_dir: Path, cache_dir: Path, **changes: Any) -> TrainConfig:
    """One epoch of the tiny FocusNet++ at 32x32 on the folder data set ``source`` (random 50/25/25
    split, cache in ``cache_dir``), one thread, no progress bar; ``changes`` override any field."""
    base: dict[str, Any] = dict(
        model="focusnetpp",
        preset="lite",
        model_kwargs=TINY_FOCUSNETPP,
        data={"format": "folder", "source": str(source), "split": "random:0.5,0.25,0.25", "cache_dir": str(cache_dir)},
        out_dir=str(out_dir),
        size=32,
        batch_size=4,
        epochs=1,
        lr=1e-3,
        lr_schedule="constant",
        progress_bar=False,
        num_threads=1,  # tiny tensors: threads only add overhead (and stall on a busy machine)
    )
    base.update(changes)
    return TrainConfig(**base)


def tree_digest(root: Path) -> str:
    """Hash of every path, size, mtime and content under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        st = p.stat()
        h.update(f"{p.relative_to(root)}|{p.is_dir()}|{st.st_size}|{st.st_mtime_ns}".encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def default_sigint() -> None:
    """``preexec_fn`` of a child process a test interrupts with SIGINT: the default disposition, so its
    Python raises KeyboardInterrupt. A suite started as a background job of a shell without job control
    (``bash .ci/run &``) runs with SIGINT ignored, and its children would inherit that and never stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class FakeTimer:
    """Stands in for Lightning's ``Timer`` in budget tests: fixed elapsed and remaining seconds."""

    def __init__(self, elapsed: float, remaining: float | None) -> None:
        self.elapsed, self.remaining = elapsed, remaining

    def time_elapsed(self, stage: str = "train") -> float:
        return self.elapsed

    def time_remaining(self, stage: str = "train") -> float | None:
        return self.remaining
