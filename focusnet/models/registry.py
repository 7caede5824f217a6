"""timm-style model registry: ``create_model(name, **kwargs)`` and ``list_models()``.

``model_constructor(name)`` and ``model_signature(name)`` give the registered function and its
keyword arguments (for documentation and argument checks); nothing outside reads the table itself.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

import torch.nn as nn

from focusnet.errors import FocusNetError
from focusnet.runtime import tune_cpu_allocator

__all__ = [
    "ENSEMBLE_KWARG", "create_model", "list_models", "list_presets", "model_constructor", "model_signature",
    "register_model",
]

#: The keyword ``create_model`` takes for every model (not passed to the constructor): N members.
ENSEMBLE_KWARG = "ensemble"

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_PRESETS: dict[str, tuple[str, ...]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str, presets: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Register a model constructor under ``name``.

    Args:
        name: registry name, e.g. ``"focusnetpp"``.
        presets: names accepted by the constructor's ``preset`` keyword (first is the default).

    Example:
        >>> @register_model("tiny_example")
        ... def tiny(**kwargs): ...
    """

    def decorator(fn: F) -> F:
        if name in _MODELS and _MODELS[name] is not fn:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        _PRESETS[name] = tuple(presets)
        return fn

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted.

    Example:
        >>> "focusnetpp" in list_models()
        True
    """
    _import_all()
    return sorted(_MODELS)


def list_presets(name: str) -> tuple[str, ...]:
    """Presets a model accepts (empty when it has none)."""
    _import_all()
    _check_name(name)
    return _PRESETS[name]


def model_constructor(name: str) -> Callable[..., nn.Module]:
    """The function registered under ``name`` (its module documents the model).

    Example:
        >>> model_constructor("focusnetpp").__module__
        'focusnet.models.focusnetpp'
    """
    _import_all()
    _check_name(name)
    return _MODELS[name]


def model_signature(name: str) -> inspect.Signature:
    """The signature of the constructor registered under ``name``: the keyword arguments it takes.

    Example:
        >>> "preset" in model_signature("focusnetpp").parameters
        True
    """
    return inspect.signature(model_constructor(name))


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model.

    Building a model also applies :func:`focusnet.runtime.tune_cpu_allocator` (once per process):
    glibc then keeps large freed CPU tensors for reuse instead of unmapping them, which makes a plain
    training loop as fast as ``focusnet train`` (at 256x256 a FocusNet++ step otherwise spends a third
    of its time page-faulting activations in). The process keeps its peak memory until it exits.
    Opt out with ``FOCUSNET_ALLOCATOR_TUNING=0`` in the environment.

    Args:
        name: a name from :func:`list_models`.
        **kwargs: passed to the model constructor (``preset``, ``in_channels``, ``num_classes``, ...),
            except ``ensemble``: an integer N > 1 builds N independently initialised copies averaged
            in probability (:class:`focusnet.models.ensemble.ProbabilityEnsemble`); 1 or absent,
            the model itself.

    Example:
        >>> model = create_model("focusnetpp", preset="paper")
        >>> sum(p.numel() for p in model.parameters())
        1487941
    """
    _import_all()
    _check_name(name)
    presets = _PRESETS[name]
    preset = kwargs.get("preset")
    if preset is not None and presets and preset not in presets:
        raise FocusNetError(
            f"unknown preset {preset!r} for model {name!r}; choose one of: {', '.join(presets)}"
        )
    members = kwargs.pop(ENSEMBLE_KWARG, 1)
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise FocusNetError(f"model {name!r}: {ENSEMBLE_KWARG} must be an integer >= 1 (members), got {members!r}")
    tune_cpu_allocator()  # FOCUSNET_ALLOCATOR_TUNING=0: off
    try:
        if members == 1:
            return _MODELS[name](**kwargs)
        from focusnet.models.ensemble import ProbabilityEnsemble

        return ProbabilityEnsemble([_MODELS[name](**kwargs) for _ in range(members)])
    except TypeError as exc:  # unknown keyword argument
        raise FocusNetError(f"model {name!r}: {exc}") from exc


def _check_name(name: str) -> None:
    if name not in _MODELS:
        raise FocusNetError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(_MODELS))} "
            "(`focusnet models` lists them)"
        )


def _import_all() -> None:
    # Importing the package registers every architecture.
    import focusnet.models  # noqa: F401
