"""Run the docstring examples of every ``focusnet`` module, of the docs scripts and of the model cards.

Run in a fresh process (``python -m tests.docs.doctests OUT.json``) from a scratch folder, with one
torch thread: some examples register models or write small files, which must not leak into the test
session. Writes ``{target: {"attempted", "failed", "skipped", "report"}}`` to OUT.json.
"""
from __future__ import annotations

import doctest
import importlib
import importlib.util
import io
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ("scripts/gen_docs.py", "scripts/update_readme_tables.py")
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def package_modules() -> list[str]:
    """Every module of the ``focusnet`` package, found from its files (nothing imported)."""
    names = []
    for path in sorted((REPO / "focusnet").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def model_cards() -> list[str]:
    return sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs" / "models").glob("*.md") if p.name != "index.md")


def targets() -> list[str]:
    """Module names, script paths and Markdown paths, in the order they run."""
    return package_modules() + ["tests.docs.fences"] + list(SCRIPTS) + model_cards()


def _run(tests: list[doctest.DocTest]) -> dict:
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    skipped = 0
    for test in tests:
        skipped += sum(1 for e in test.examples if e.options.get(doctest.SKIP))
        runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    return {"attempted": result.attempted, "failed": result.failed, "skipped": skipped, "report": out.getvalue()[-6000:]}


def run_target(target: str) -> dict:
    finder = doctest.DocTestFinder(exclude_empty=True)
    if target.endswith(".md"):  # the ```pycon blocks of a page, as one session
        text = (REPO / target).read_text(encoding="utf-8")
        blocks = re.findall(r"^```pycon\n(.*?)^```", text, flags=re.S | re.M)
        parser = doctest.DocTestParser()
        return _run([parser.get_doctest("\n".join(blocks), {}, target, str(REPO / target), 0)])
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(target).stem, REPO / target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    tests = [t for t in finder.find(module, module.__name__) if t.examples]
    return _run(sorted(tests, key=lambda t: t.name))


def main(out: str) -> int:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(REPO))
    results = {}
    for target in targets():
        start = time.perf_counter()
        try:
            results[target] = run_target(target)
        except Exception as exc:  # noqa: BLE001 - an import error is this target's failure
            results[target] = {"attempted": 0, "failed": 1, "skipped": 0, "report": f"could not run: {exc!r}"}
        results[target]["seconds"] = round(time.perf_counter() - start, 2)
    Path(out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
