"""Fixtures shared by the test files of several folders (helpers that are not fixtures: tests/helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models on shared CPUs: one intra-op thread is faster and steadier (restored afterwards).
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lesions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic 48x48 lesion images with masks (folder format, seed 0), one folder per test module."""
    from focusnet.data.synthetic import generate

    root = tmp_path_factory.mktemp("lesions")
    generate("lesions", root, count=12, size=48, seed=0, overwrite=True)
    return root
