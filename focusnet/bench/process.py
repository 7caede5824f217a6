"""The parent's side of the benchmark worker protocol: one model (or the conv-peak probe) per Python
process (``python -m focusnet.bench.worker``), driven by JSON lines over its stdin and stdout.

The first line sent is the job (the worker answers with the model's set-up: parameters, FLOPs, or an
error); then ``{"cmd": "run", "phase", "iters"}``, ``{"cmd": "reset_memory"}``, ``{"cmd": "memory"}``
and ``{"cmd": "quit"}``, each answered with one line ``{"ok": true, ...}`` or ``{"ok": false,
"error"}``. :mod:`focusnet.bench.worker` is the other side.

Example:
    >>> w = WorkerProcess({"label": "conv_peak", "kind": "conv", "conv_shape": [1, 4, 8, 8], "device": "cpu",
    ...                    "channels_last": False, "precision": "32-true", "seed": 0})  # doctest: +SKIP
    >>> w.receive()["ok"], w.request({"cmd": "run", "phase": "conv", "iters": 2})["iters"]  # doctest: +SKIP
    (True, 2)
    >>> w.close()  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["WORKER_MODULE", "WorkerProcess"]

#: The module a worker process runs (``python -m WORKER_MODULE``).
WORKER_MODULE = "focusnet.bench.worker"


class WorkerProcess:
    """One model (or the conv-peak probe) in its own Python process, driven by JSON lines.

    Args:
        job: what the worker sets up (sent as its first line): ``label``, ``kind`` (``conv`` or
            ``model``) and the run's settings.
    """

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.label = job["label"]
        self.error: str | None = None
        self.setup: dict[str, Any] = {}
        self._log = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the checkout holding this focusnet package
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self.send(job)

    def send(self, msg: dict[str, Any]) -> None:
        """Write one message (a dead worker is reported by the next :meth:`receive`)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # reported by receive()

    def receive(self) -> dict[str, Any]:
        """The next reply; ``{"ok": False, "error"}`` with the log's tail when the worker has exited."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            return {"ok": False, "error": f"worker exited with code {self.proc.returncode}: {self.log_tail()}"}
        return json.loads(line)

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send ``msg`` and wait for its reply."""
        self.send(msg)
        return self.receive()

    def collect_setup(self) -> None:
        """Wait for the reply to the job: :attr:`setup` on success, else :attr:`error`."""
        reply = self.receive()
        if reply.get("ok"):
            self.setup = reply
        else:
            self.error = reply.get("error", "setup failed")

    def log_tail(self, n: int = 1500) -> str:
        """The last ``n`` characters the worker wrote to stderr."""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().strip()
        return text[-n:] if text else "(no output)"

    def close(self) -> None:
        """Ask the worker to quit (killed after 10 s) and release its pipes and log."""
        if self.proc.poll() is None:
            self.send({"cmd": "quit"})
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(Exception):
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        self._log.close()

