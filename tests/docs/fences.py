"""Run the documentation's examples: fenced code blocks marked ``runnable`` in README.md, CONTRIBUTING.md
and ``docs/**/*.md``.

Marking. Every ```` ```bash ```` / ```` ```python ```` fence (also ``sh``, ``shell``, ``console``, ``py``)
carries one word after the language: ``runnable`` (the tests run it) or ``no-run`` (it installs
software, downloads data, needs a GPU, a cluster or hours of training). An unmarked fence fails
:func:`unmarked_fences`'s test, so every example is either executed or visibly exempt.

Running. The runnable fences of one page run in order, in one fresh sandbox per page:

* the working folder is a stand-in for a fresh clone (``configs/`` copied from the repository) that
  also holds tiny synthetic stand-ins for the reader's own data and downloads (:func:`build_world`):
  ``my_data/`` (a folder data set with ``_mask`` suffixes), ``nnUNet_raw/Dataset501_ISIC/`` and its
  ``nnUNet_preprocessed/.../splits_final.json``, and ``downloads/`` with the official archive names
  (``ISIC2018_Task1-2_Training_Input.zip``, ``ISIC2018_Task1_Training_GroundTruth.zip``, the two
  ``Validation`` archives and ``stage1_train.zip``), all in the official layouts;
* ``../shared/data`` (and ``$FOCUSNET_DATA``) holds tiny synthetic ``isic2018_task1``,
  ``isic2018_task1_512crop`` and ``dsb2018`` folders in the shared data's layouts;
* bash fences run with ``bash -euo pipefail``; python fences run as a script; both with the
  project's ``python`` first on ``PATH``, one torch thread, and a ``focusnet`` that is the real
  command line with two test-only changes (:func:`shrink_argv`): ``focusnet train`` gets
  ``epochs=1 size=32`` (``epochs=2`` when resuming with an ``epochs`` override), ``focusnet compare``
  gets the same overrides after its profile's, and ``focusnet demo`` gets ``--epochs 1``, so every
  training run takes seconds;
* ``focusnet`` and ``python`` are shims that hand the command to a fork server (forkserver.py) which
  has imported torch, Lightning and focusnet once, so a command costs a fork instead of seconds of
  imports; each command still runs in a fresh process with the caller's folder, environment and
  streams;
* pages that start from a trained run say so with ``<!-- docs-test: needs-run -->``; they get
  ``data/lesions/`` and ``runs/first/``, made once per session exactly as the getting-started
  tutorial makes them.

``tests/docs/test_examples.py`` runs every page; ``tests/docs/test_getting_started.py`` runs the
tutorial and checks what it promises.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LANGUAGES = {"bash": "bash", "sh": "bash", "shell": "bash", "console": "bash", "python": "python", "py": "python"}
MARKS = ("runnable", "no-run")
NEEDS_RUN = "<!-- docs-test: needs-run -->"
GETTING_STARTED = "docs/tutorials/getting-started.md"
TINY_SIZE = 32  # the side every docs-test training run uses


@dataclass(frozen=True)
class Fence:
    """One fenced code block of a Markdown file."""

    path: str  # relative to the repository
    line: int  # 1-based line of the opening fence
    lang: str  # "bash" or "python" (None for other languages)
    mark: str | None  # "runnable", "no-run" or None
    code: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def markdown_files() -> list[Path]:
    """README.md, CONTRIBUTING.md, REPRODUCING.md and docs/**/*.md, sorted."""
    files = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "REPRODUCING.md"]
    files += sorted((REPO / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


_OPEN = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,}|~{3,})(?P<info>.*)$")


def fences(path: Path) -> list[Fence]:
    """The bash and python fences of a Markdown file (others are skipped), in order."""
    out: list[Fence] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, info = len(m["indent"]), m["ticks"], m["info"].strip().split()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{re.escape(ticks)}\s*$", lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        lang = LANGUAGES.get(info[0].lower()) if info else None
        if lang is not None:
            marks = [w for w in info[1:] if w in MARKS]
            out.append(Fence(path.relative_to(REPO).as_posix(), i + 1, lang, marks[0] if len(marks) == 1 else None,
                             "\n".join(body) + "\n"))
        i = j + 1
    return out


def all_fences() -> list[Fence]:
    return [f for path in markdown_files() for f in fences(path)]


def runnable_pages() -> list[str]:
    """Pages with at least one runnable fence (repository-relative)."""
    return sorted({f.path for f in all_fences() if f.mark == "runnable"})


# ------------------------------------------------------------------------------ tiny focusnet
def shrink_argv(argv: list[str]) -> list[str]:
    """The docs-test change to a ``focusnet`` command line: tiny, one-epoch training runs.

    Example:
        >>> shrink_argv(["train", "configs/demo.yaml", "data.source=x", "epochs=30", "--out", "r"])
        ['train', 'configs/demo.yaml', 'data.source=x', '--out', 'r', 'epochs=1', 'size=32', 'progress_bar=false']
        >>> shrink_argv(["train", "--resume", "r", "epochs=60"])
        ['train', '--resume', 'r', 'epochs=2', 'progress_bar=false']
        >>> shrink_argv(["demo", "--epochs", "5"])
        ['demo', '--epochs', '1']
        >>> shrink_argv(["compare", "configs/demo.yaml", "--models", "unet", "--profile", "quick"])
        ['compare', 'configs/demo.yaml', '--models', 'unet', '--profile', 'quick', 'epochs=1', 'size=32']
    """
    args = list(argv)
    command = next((a for a in args if not a.startswith("-")), None)
    if command == "train":
        kept = [a for a in args if not re.match(r"^(epochs|size)=", a)]
        if "--resume" in args:
            extend = any(re.match(r"^epochs=", a) for a in args)
            return kept + (["epochs=2"] if extend else []) + ["progress_bar=false"]
        return kept + ["epochs=1", f"size={TINY_SIZE}", "progress_bar=false"]
    if command == "compare":  # overrides after the profile's
        return [a for a in args if not re.match(r"^(epochs|size)=", a)] + ["epochs=1", f"size={TINY_SIZE}"]
    if command == "demo":
        out: list[str] = []
        skip = False
        for a in args:
            if skip:
                skip = False
                continue
            if a == "--epochs":
                skip = True
                continue
            if not a.startswith("--epochs="):
                out.append(a)
        return out + ["--epochs", "1"]
    return args


_FOCUSNET_SHIM = """#!{python}
# focusnet as the docs tests run it: the real command line with tiny training runs, run by the fork
# server when there is one (tests/docs/forkserver.py), else in this process.
import sys
sys.path.insert(0, {repo!r})
from tests.docs.forkserver import request
code = request("focusnet", sys.argv[1:])
if code is None:
    from tests.docs.fences import shrink_argv
    from focusnet.cli import main
    code = main(shrink_argv(sys.argv[1:]))
sys.exit(code)
"""

_PYTHON_SHIM = """#!{python}
# python as the docs tests run it: scripts and -c code run by the fork server when there is one
# (tests/docs/forkserver.py); anything else, or no server, runs the real interpreter.
import os
import sys
sys.path.insert(0, {repo!r})
from tests.docs.forkserver import request
args = sys.argv[1:]
code = None
if args and ((args[0] == "-c" and len(args) > 1) or not args[0].startswith("-")):
    code = request("python", args)
if code is None:
    os.execv({python!r}, [{python!r}, *args])
sys.exit(code)
"""


def write_shim(bin_dir: Path) -> Path:
    """Write the ``focusnet`` and ``python`` shims into ``bin_dir``; returns the ``focusnet`` one."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("focusnet", _FOCUSNET_SHIM), ("python", _PYTHON_SHIM)):
        shim = bin_dir / name
        shim.write_text(text.format(python=sys.executable, repo=str(REPO)))
        shim.chmod(0o755)
    if shutil.which("unzip") is None:  # a machine without Info-ZIP: the pages' `unzip -q ZIP [MEMBER] -d DIR`
        shim = bin_dir / "unzip"
        shim.write_text(_UNZIP_SHIM.format(python=sys.executable))
        shim.chmod(0o755)
    return bin_dir / "focusnet"


_UNZIP_SHIM = """#!{python}
import sys, zipfile
args = [a for a in sys.argv[1:] if a != "-q"]
dest = "."
if "-d" in args:
    i = args.index("-d")
    dest = args[i + 1]
    del args[i:i + 2]
archive, members = args[0], args[1:] or None
with zipfile.ZipFile(archive) as z:
    z.extractall(dest, members=members)
"""


def environment(world: Path, bin_dir: Path, server: str | None = None) -> dict[str, str]:
    """The environment the examples run in (one thread, the shims and the venv first on PATH, the
    fork server's socket when there is one)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "FOCUSNET_", "PL_", "LIGHTNING_"))
           and k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(
        PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")]),
        FOCUSNET_DATA=str(world / "shared" / "data"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONWARNINGS="ignore",
    )
    if server:
        from tests.docs.forkserver import ENV_VAR

        env[ENV_VAR] = server
    return env


# ---------------------------------------------------------------------------------- the world
def _sample(kind: str, size: int, seed: int):
    import numpy as np

    from focusnet.data.synthetic import make_sample

    return make_sample(kind, size, np.random.default_rng([seed, 7]))


def _save(array, path: Path, mode: str | None = None, **kwargs) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, **kwargs)


def _isic(root: Path, count: int, sizes: list[tuple[int, int]], offset: int = 0) -> None:
    """ISIC 2018 Task 1 layout: JPEG images, 0/255 ``_segmentation`` PNG masks (+ the zips' text files)."""
    import numpy as np
    from PIL import Image

    images, masks = root / "ISIC2018_Task1-2_Training_Input", root / "ISIC2018_Task1_Training_GroundTruth"
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        image, mask = _sample("lesions", 64, offset + i)
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST))
        sid = f"ISIC_{offset + i:07d}"
        _save(image, images / f"{sid}.jpg", quality=92)
        _save(mask, masks / f"{sid}_segmentation.png", mode="L")
    for folder in (images, masks):
        (folder / "LICENSE.txt").write_text("CC BY-NC 4.0 (stand-in for the official file)\n")
        (folder / "ATTRIBUTION.txt").write_text("synthetic stand-in\n")


def _dsb(stage: Path, count: int) -> None:
    """DSB 2018 stage-1 layout: RGBA images, one 0/255 mask per quadrant's nuclei."""
    import numpy as np

    for i in range(count):
        image, mask = _sample("nuclei", 64, 100 + i)
        cid = f"{i:04x}" + "ab" * 30
        rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
        _save(rgba, stage / cid / "images" / f"{cid}.png", mode="RGBA")
        k = 0
        for r in (slice(0, 32), slice(32, 64)):
            for c in (slice(0, 32), slice(32, 64)):
                part = np.zeros_like(mask)
                part[r, c] = mask[r, c]
                if part.any():
                    _save(part.astype(np.uint8) * 255, stage / cid / "masks" / f"{k:02d}{cid[:8]}.png", mode="L")
                    k += 1


def _zip_tree(folder: Path, archive: Path, arcroot: str = "") -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, f"{arcroot}{path.relative_to(folder).as_posix()}")


def _nnunet(raw: Path, preprocessed: Path, count: int) -> None:
    import numpy as np

    ids = []
    for i in range(count):
        image, mask = _sample("lesions", 48, 200 + i)
        case = f"isic_{i:03d}"
        _save(image, raw / "imagesTr" / f"{case}_0000.png", mode="RGB")
        _save(mask.astype(np.uint8), raw / "labelsTr" / f"{case}.png", mode="L")
        ids.append(case)
    meta = {"channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "lesion": 1},
            "numTraining": count, "file_ending": ".png", "name": "ISIC stand-in"}
    (raw / "dataset.json").write_text(json.dumps(meta, indent=2))
    folds = []
    for f in range(5):
        val = ids[f::5]
        folds.append({"train": [i for i in ids if i not in val], "val": val})
    preprocessed.mkdir(parents=True, exist_ok=True)
    (preprocessed / "splits_final.json").write_text(json.dumps(folds, indent=2))


def build_world(root: Path) -> Path:
    """The template sandbox (see the module docstring); returns ``root``."""
    import numpy as np

    clone, data = root / "clone", root / "shared" / "data"
    shutil.copytree(REPO / "configs", clone / "configs")
    _isic(data / "isic2018_task1", 8, [(72, 96), (60, 80), (64, 64)])
    _isic(data / "isic2018_task1_512crop", 10, [(64, 64)], offset=100)
    _dsb(data / "dsb2018" / "stage1_train", 10)
    (data / "dsb2018" / "SOURCE.md").write_text("synthetic stand-in\n")

    tmp = root / "_zips"
    _isic(tmp / "isic", 12, [(60, 80), (64, 64)], offset=1000)
    _zip_tree(tmp / "isic" / "ISIC2018_Task1-2_Training_Input", clone / "downloads" / "ISIC2018_Task1-2_Training_Input.zip",
              "ISIC2018_Task1-2_Training_Input/")
    _zip_tree(tmp / "isic" / "ISIC2018_Task1_Training_GroundTruth",
              clone / "downloads" / "ISIC2018_Task1_Training_GroundTruth.zip", "ISIC2018_Task1_Training_GroundTruth/")
    _isic(tmp / "isic-val", 4, [(70, 90)], offset=5000)
    for folder in ("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"):
        val = folder.replace("Training", "Validation")
        (tmp / "isic-val" / folder).rename(tmp / "isic-val" / val)
        _zip_tree(tmp / "isic-val" / val, clone / "downloads" / f"{val}.zip", f"{val}/")
    _dsb(tmp / "stage1_train", 10)
    _zip_tree(tmp / "stage1_train", clone / "downloads" / "stage1_train.zip")
    shutil.rmtree(tmp)

    for i in range(12):
        image, mask = _sample("lesions", 48, 300 + i)
        _save(image, clone / "my_data" / "images" / f"case{i:02d}.png", mode="RGB")
        _save(mask.astype(np.uint8) * 255, clone / "my_data" / "masks" / f"case{i:02d}_mask.png", mode="L")
    _nnunet(clone / "nnUNet_raw" / "Dataset501_ISIC", clone / "nnUNet_preprocessed" / "Dataset501_ISIC", 12)
    return root


def train_first_run(world: Path, bin_dir: Path, server: str | None = None) -> None:
    """``data/lesions`` and ``runs/first`` in ``world/clone``, made as the getting-started page makes them."""
    env = environment(world, bin_dir, server)
    clone = world / "clone"
    for command in (
        [str(bin_dir / "python"), "-c", "from focusnet.data.synthetic import generate; generate('lesions', 'data/lesions', count=60, size=64)"],
        [str(bin_dir / "focusnet"), "train", "configs/demo.yaml", "data.source=data/lesions", "--out", "runs/first"],
    ):
        subprocess.run(command, cwd=clone, env=env, check=True, capture_output=True, timeout=300)


# ------------------------------------------------------------------------------------ running
@dataclass
class Result:
    fence: Fence
    seconds: float
    returncode: int
    output: str


def run_fence(fence: Fence, cwd: Path, env: dict[str, str], timeout: float = 240) -> Result:
    """Run one fence; bash with ``-euo pipefail``, python as a script file."""
    start = time.perf_counter()
    if fence.lang == "bash":
        argv = ["bash", "-euo", "pipefail", "-c", fence.code]
    else:
        script = cwd / f".fence_{fence.line}.py"
        script.write_text(fence.code)
        argv = ["python", script.name]  # the shim, first on PATH
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    if fence.lang == "python":
        (cwd / f".fence_{fence.line}.py").unlink(missing_ok=True)
    return Result(fence, time.perf_counter() - start, proc.returncode, proc.stdout)


def sandbox(template: Path, dest: Path, with_run: bool = False) -> Path:
    """A fresh copy of the template world under ``dest``; returns its working folder."""
    shutil.copytree(template, dest, symlinks=True)
    clone = dest / "clone"
    if not with_run:
        shutil.rmtree(clone / "runs", ignore_errors=True)
        shutil.rmtree(clone / "data", ignore_errors=True)
        shutil.rmtree(clone / "prepared", ignore_errors=True)
    return clone


def run_page(page: str, clone: Path, env: dict[str, str]) -> list[Result]:
    """Run the runnable fences of ``page`` in order in ``clone``; stop at the first failure."""
    results: list[Result] = []
    for fence in fences(REPO / page):
        if fence.mark != "runnable":
            continue
        result = run_fence(fence, clone, env)
        results.append(result)
        if result.returncode != 0:
            break
    return results


def failure_report(result: Result) -> str:
    out = io.StringIO()
    out.write(f"{result.fence.where}: the {result.fence.lang} example failed with exit code {result.returncode}\n")
    out.write("--- example ---\n" + result.fence.code + "--- output (last 4000 characters) ---\n")
    out.write(result.output[-4000:])
    return out.getvalue()
