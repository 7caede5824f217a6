"""``docs/reference/api.md``: the public Python API (``__all__`` of the modules in
:data:`API_MODULES`), signatures and docstrings."""
from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from .common import GENERATED, _sig, anchor, docstring_to_md, md_cell, rst_to_md

#: Modules whose public names (``__all__``) make up the Python API reference, in page order.
API_MODULES = (
    "focusnet",
    "focusnet.models",
    "focusnet.models.registry",
    "focusnet.models.spec",
    "focusnet.models.ensemble",
    "focusnet.losses",
    "focusnet.metrics",
    "focusnet.weights",
    "focusnet.complexity",
    "focusnet.errors",
    "focusnet.vocab",
    "focusnet.runtime",
    "focusnet.kernels",
    "focusnet.data.synthetic",
    "focusnet.data.readers",
    "focusnet.data.cache",
    "focusnet.data.splits",
    "focusnet.engine.config",
    "focusnet.engine.train",
    "focusnet.engine.evaluate",
    "focusnet.engine.predict",
    "focusnet.engine.scoring",
    "focusnet.engine.export",
    "focusnet.cli.demo",
    "focusnet.compare",
)


def _public(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n for n, obj in vars(module).items()
            if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__
        ]
    return list(names)


def _home(name: str, obj: Any, exporters: list[str]) -> str:
    """The listed module that documents ``obj``: the exporter closest to where it is defined."""
    where = getattr(obj, "__module__", None) or ""
    best = max(exporters,
               key=lambda m: (where == m or where.startswith(m + "."), len(m) if where.startswith(m) else -1))
    return best


def api_reference() -> str:
    """``docs/reference/api.md``: the public names of :data:`API_MODULES`, signatures and docstrings."""
    modules = {name: importlib.import_module(name) for name in API_MODULES}
    exporters: dict[tuple[str, int], list[str]] = {}
    objects: dict[tuple[str, int], Any] = {}
    for mod_name, module in modules.items():
        for name in _public(module):
            obj = getattr(module, name)
            key = (name, id(obj))
            exporters.setdefault(key, []).append(mod_name)
            objects[key] = obj
    lines = [
        "# Python API reference",
        "",
        GENERATED,
        "",
        "The public names (`__all__`) of the modules below, with their signatures and docstrings. The "
        "`pycon` examples are doctests: `tests/docs/test_doctests.py` runs every one of them (those marked "
        "`# doctest: +SKIP` need real data or minutes of training).",
        "",
        *[f"- [`{m}`](#{anchor(m)}): {md_cell(_first_line(modules[m].__doc__))}" for m in API_MODULES],
    ]
    for mod_name, module in modules.items():
        lines += ["", f"## {mod_name}", ""]
        doc = docstring_to_md(module.__doc__)
        if doc:
            lines += [doc, ""]
        for name in _public(module):
            obj = getattr(module, name)
            key = (name, id(obj))
            home = _home(name, obj, exporters[key])
            if home != mod_name and (inspect.isfunction(obj) or inspect.isclass(obj)):
                lines += [f"- `{name}`: see [`{home}.{name}`](#{anchor(home + '.' + name)})", ""]
                continue
            lines += _api_entry(mod_name, name, obj)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).rstrip() + "\n"


def _first_line(doc: str | None) -> str:
    return rst_to_md(inspect.cleandoc(doc or "").split("\n\n")[0].replace("\n", " "))


def _api_entry(mod_name: str, name: str, obj: Any) -> list[str]:
    if inspect.isclass(obj):
        kind = "exception" if issubclass(obj, BaseException) else "class"
        lines = [f"### {mod_name}.{name}", "", "```text", f"{kind} {name}{_sig(obj)}", "```", ""]
        lines += [docstring_to_md(obj.__doc__), ""]
        for attr, member in vars(obj).items():
            documented = inspect.isfunction(member) or isinstance(member, (classmethod, staticmethod, property))
            if attr.startswith("_") or not documented:
                continue
            func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
            if isinstance(member, property):
                lines += [f"- **`{name}.{attr}`** (property): {_first_line(member.__doc__)}", ""]
                continue
            doc = docstring_to_md(func.__doc__)
            lines += [f"#### {name}.{attr}", "", "```text", f"{attr}{_sig(func)}", "```", ""]
            if doc:
                lines += [doc, ""]
        return lines
    if inspect.isfunction(obj) or callable(obj) and hasattr(obj, "__wrapped__"):
        return [f"### {mod_name}.{name}", "", "```text", f"{name}{_sig(obj)}", "```", "",
                docstring_to_md(obj.__doc__), ""]
    text = repr(obj)
    if len(text) > 160:
        text = f"{type(obj).__name__} of {len(obj)} entries" if hasattr(obj, "__len__") else type(obj).__name__
    return [f"- `{name}` = `{md_cell(text)}`", ""]
