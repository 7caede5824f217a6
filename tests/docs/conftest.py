"""Fixtures of the documentation tests: the fork server and the sandbox world the examples run in
(see fences.py and forkserver.py)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.docs.fences import REPO, build_world, train_first_run, write_shim


@pytest.fixture(scope="session")
def docs_server():
    """The fork server (torch, Lightning and focusnet imported once); yields its socket path."""
    folder = Path(tempfile.mkdtemp(prefix="fn-docs-"))  # short: Unix socket paths are limited
    socket_path = folder / "server.sock"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    log = open(folder / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "tests.docs.forkserver", str(socket_path)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        ready = proc.stdout.readline().strip()
        if ready != "ready":
            log.seek(0)
            pytest.fail(f"the docs fork server did not start:\n{log.read()[-4000:]}")
        yield str(socket_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def docs_world(tmp_path_factory: pytest.TempPathFactory, docs_server: str) -> dict:
    """The template world (tiny synthetic data sets and downloads, ``configs/``, the shims) with
    ``data/lesions`` and ``runs/first`` trained once, as the getting-started page trains them."""
    root = tmp_path_factory.mktemp("docs-world")
    template = build_world(root / "template")
    bin_dir = write_shim(root / "bin").parent
    train_first_run(template, bin_dir, docs_server)
    return {"template": template, "bin": bin_dir, "server": docs_server}
