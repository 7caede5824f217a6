"""focusnet: FocusNet++ (Kaul et al., ISBI 2021) and its baselines for 2D medical image segmentation.

Example:
    >>> import focusnet
    >>> model = focusnet.create_model("focusnetpp")  # paper preset
    >>> "focusnetpp" in focusnet.list_models()
    True
"""
from __future__ import annotations

from focusnet.errors import FocusNetError
from focusnet.models import create_model, list_models
from focusnet.weights import load_model

__version__ = "0.1.0"

__all__ = ["FocusNetError", "create_model", "list_models", "load_model", "__version__"]
