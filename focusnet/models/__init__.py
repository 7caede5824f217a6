"""Segmentation architectures: FocusNet++ and the baselines of the paper's tables.

Every module in this package that defines a model registers it with
:func:`~focusnet.models.registry.register_model`; importing the package imports them all,
so adding a model is adding one file.
"""
from __future__ import annotations

import importlib
import pkgutil

from focusnet.models.registry import create_model, list_models, list_presets, register_model

_NOT_MODELS = {"registry", "blocks", "layers", "resganet", "ensemble"}

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _NOT_MODELS and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["create_model", "list_models", "list_presets", "register_model"]
