"""Compare models under one protocol: ``focusnet compare`` (training, evaluation, tables, statistics, figures, report).

Modules: :mod:`~focusnet.compare.runner` (the workflow), :mod:`~focusnet.compare.profiles`,
:mod:`~focusnet.compare.stats`, :mod:`~focusnet.compare.tables`,
:mod:`~focusnet.compare.paper_reference`, :mod:`~focusnet.compare.figures`,
:mod:`~focusnet.compare.report`. Imports are lazy: ``import focusnet.compare`` loads none of them.
"""
from __future__ import annotations

__all__ = ["run_compare", "parse_model_specs"]


def __getattr__(name: str):  # noqa: ANN202 - lazy re-exports
    if name in __all__:
        from focusnet.compare import runner  # lazy: `import focusnet.compare` loads no training stack

        return getattr(runner, name)
    raise AttributeError(name)
