"""focusnet: FocusNet++ (Kaul et al., ISBI 2021) and its baselines for 2D medical image segmentation.

Example:
    >>> import focusnet
    >>> model = focusnet.create_model("focusnetpp")  # paper preset
    >>> "focusnetpp" in focusnet.list_models()
    True
"""
from __future__ import annotations

from focusnet.runtime import set_omp_wait_policy

set_omp_wait_policy()  # before torch loads libgomp: idle OpenMP threads sleep instead of spinning (focusnet.runtime)

from focusnet.errors import FocusNetError  # noqa: E402 - after the OpenMP setting
from focusnet.models import create_model, list_models  # noqa: E402
from focusnet.weights import load_model  # noqa: E402

__version__ = "0.1.0"

__all__ = ["FocusNetError", "create_model", "list_models", "load_model", "__version__"]
