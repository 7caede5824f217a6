"""Every docstring example (doctest) of the package, of the docs scripts and of the model cards runs.

One fresh process runs them all (see doctests.py); each module or page is one test case here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.docs.doctests import REPO, targets

TARGETS = targets()


@pytest.fixture(scope="module")
def doctest_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    scratch = tmp_path_factory.mktemp("doctests")
    out = scratch / "results.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "tests.docs.doctests", str(out)], cwd=scratch, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("target", TARGETS)
def test_doctests_pass(target: str, doctest_results: dict) -> None:
    result = doctest_results[target]
    assert result["failed"] == 0, f"{target}: {result['failed']} doctest failure(s)\n{result['report']}"


def test_doctests_ran(doctest_results: dict) -> None:
    attempted = sum(r["attempted"] for r in doctest_results.values())
    cards = [t for t in TARGETS if t.endswith(".md")]
    assert cards and all(doctest_results[c]["attempted"] >= 3 for c in cards)
    assert attempted > 150, attempted
