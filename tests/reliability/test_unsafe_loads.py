"""No code path of the package unpickles untrusted files (issue 8, part 4).

Scans the syntax tree of every ``focusnet/**/*.py`` (so comments and docstrings do not count) for:

* ``pickle.load`` / ``pickle.loads`` / ``pickle.Unpickler`` (also ``_pickle``, ``cPickle``, ``dill``,
  ``joblib``), including ``from pickle import load``;
* ``torch.load(...)`` without ``weights_only=True``;
* ``np.load(...)`` / ``numpy.load(...)`` with ``allow_pickle=True``;
* ``yaml.load(...)`` without a safe loader (``SafeLoader`` / ``CSafeLoader``), ``yaml.unsafe_load``,
  ``yaml.full_load``, ``yaml.load_all`` without a safe loader;
* any call passing ``weights_only=False`` (e.g. ``Trainer.fit(..., weights_only=False)``, which makes
  Lightning unpickle the resume checkpoint).

Each offender is listed as ``path:line: code``.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "focusnet"
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "joblib", "cloudpickle"}
PICKLE_FUNCS = {"load", "loads", "Unpickler"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _is_false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def scan_source(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """``[(line, reason)]`` for every unsafe load in ``source``."""
    tree = ast.parse(source, filename=filename)
    found: list[tuple[int, str]] = []
    aliases: dict[str, str] = {}  # local name -> "module.func" for `from pickle import load as x`
    modules: dict[str, str] = {}  # local name -> module for `import numpy as np`
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                modules[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                if node.module in PICKLE_MODULES and a.name in PICKLE_FUNCS:
                    found.append((node.lineno, f"imports {node.module}.{a.name}"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        full = aliases.get(name) or (f"{modules.get(head, head)}.{rest}" if rest else modules.get(head, head))
        mod, _, func = full.rpartition(".")
        if mod in PICKLE_MODULES and func in PICKLE_FUNCS:
            found.append((node.lineno, f"{full}() unpickles"))
        elif full == "torch.load" and not _is_true(_kw(node, "weights_only")):
            found.append((node.lineno, "torch.load() without weights_only=True"))
        elif full in ("numpy.load", "np.load") and _is_true(_kw(node, "allow_pickle")):
            found.append((node.lineno, "numpy.load(allow_pickle=True)"))
        elif full in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
            found.append((node.lineno, f"{full}()"))
        elif full in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if _dotted(loader).rpartition(".")[2] not in SAFE_YAML_LOADERS:
                found.append((node.lineno, f"{full}() without a safe Loader"))
        if _is_false(_kw(node, "weights_only")) and full != "torch.load":
            found.append((node.lineno, f"{name or 'call'}(weights_only=False) unpickles a checkpoint"))
    return sorted(set(found))


def _offenders() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for lineno, reason in scan_source(text, str(path)):
            rel = path.relative_to(PACKAGE.parent)
            out.append(f"{rel}:{lineno}: {reason}: {lines[lineno - 1].strip()}")
    return out


def test_scanner_finds_every_kind_of_unsafe_load():
    bad = """
import pickle, torch, yaml
import numpy as np
from pickle import loads as unpickle
pickle.load(open("x", "rb"))
torch.load("a.ckpt")
torch.load("a.ckpt", map_location="cpu", weights_only=False)
np.load("a.npy", allow_pickle=True)
yaml.load(text)
yaml.load(text, Loader=yaml.FullLoader)
yaml.unsafe_load(text)
trainer.fit(module, ckpt_path="last.ckpt", weights_only=False)
unpickle(b"")
"""
    lines = [line for line, _ in scan_source(bad)]
    assert lines == [4, 5, 6, 7, 8, 9, 10, 11, 12, 13], scan_source(bad)


def test_scanner_accepts_safe_loads():
    good = """
import torch, yaml
import numpy as np
torch.load("a.ckpt", map_location="cpu", weights_only=True)
np.load("a.npy", mmap_mode="r")
np.load("a.npy", allow_pickle=False)
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
trainer.test(module, ckpt_path="best.ckpt", weights_only=True)
json.loads(text)
"""
    assert scan_source(good) == []


def test_package_has_no_unsafe_load():
    offenders = _offenders()
    assert not offenders, "unsafe loads in the package (use safetensors, weights_only=True, " \
        "allow_pickle=False, yaml.safe_load):\n" + "\n".join(offenders)
