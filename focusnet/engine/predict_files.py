"""Which images ``focusnet predict`` reads and which files it writes for them.

:func:`collect_inputs` turns files, folders and glob patterns into the list of images (and the
folders they come from); :func:`plan_outputs` names every output file before anything is written,
refusing outputs inside an input folder, outputs that would replace an input or each other, and
(without ``overwrite``) existing files.

Example:
    >>> collect_inputs("no/such/folder")
    Traceback (most recent call last):
    ...
    focusnet.errors.FocusNetError: no/such/folder: no such file or folder; pass an image file, a folder of images or a glob
"""  # noqa: E501 - a doctest's expected output is one line
from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from focusnet.data.io import IMAGE_EXTENSIONS
from focusnet.errors import FocusNetError

__all__ = ["OVERLAY_SUFFIX", "PROB_SUFFIX", "collect_inputs", "plan_one_file", "plan_outputs"]

PROB_SUFFIX = "_prob"
OVERLAY_SUFFIX = "_overlay"


def _is_glob(text: str) -> bool:
    return glob.has_magic(text)


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )


def collect_inputs(inputs: str | Path | Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """The image files named by ``inputs`` and the folders they were listed from.

    Each entry is a file (taken as it is), a folder (its images, not recursive, sorted by name,
    hidden files skipped) or a glob pattern (``*``, ``?``, ``[...]``, ``**`` for sub-folders; only
    files with an image extension, sorted). Duplicates are dropped, keeping the first.

    Returns:
        ``(files, folders)``: ``folders`` are the input folders, the folders the glob matches lie
        in and, for ``**`` patterns, the pattern's fixed root (outputs must not be written there).

    Raises:
        FocusNetError: an entry that is neither an existing file, a folder nor a glob, or nothing
            matches at all.
    """
    entries = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not entries:
        raise FocusNetError("no INPUT given; pass an image file, a folder of images or a glob such as 'images/*.jpg'")
    files: list[Path] = []
    folders: list[Path] = []
    for entry in entries:
        text = os.path.expanduser(str(entry))
        path = Path(text)
        if path.is_dir():
            folders.append(path)
            found = _image_files(path)
            if not found:
                raise FocusNetError(
                    f"{path}: no images in this folder (looked for {', '.join(IMAGE_EXTENSIONS)}, not in sub-folders); "
                    "pass a folder of images or a glob such as 'images/**/*.jpg'"
                )
            files += found
        elif path.is_file():
            files.append(path)
        elif _is_glob(text):
            matched = sorted(
                Path(p) for p in glob.glob(text, recursive=True)
                if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_EXTENSIONS
            )
            if not matched:
                raise FocusNetError(
                    f"{text}: no image files match this pattern; check the pattern (quote it in the shell)"
                )
            files += matched
            folders += sorted({p.parent for p in matched})
            if "**" in text:
                root = Path(text.split("**", 1)[0] or ".")
                folders.append(root)
        else:
            raise FocusNetError(f"{text}: no such file or folder; pass an image file, a folder of images or a glob")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, folders


def plan_outputs(files: list[Path], folders: list[Path], out: Path, suffix: str, probs: bool, overlays: bool,
                 overwrite: bool) -> list[tuple[Path, dict[str, Path]]]:
    """``[(image, {kind: output file})]`` for the images ``files`` predicted into the folder ``out``.

    ``kind`` is ``mask`` (``<stem><suffix>.png``), ``probabilities`` and ``overlay``. Nothing is
    planned that would write into an input folder, replace an input, give two images the same
    outputs, or (without ``overwrite``) replace an existing file.

    Raises:
        FocusNetError: naming the first such conflict.

    Example:
        >>> plan_outputs([Path("a.jpg")], [], Path("masks"), "_mask", False, False, True)
        [(PosixPath('a.jpg'), {'mask': PosixPath('masks/a_mask.png')})]
    """
    if any(sep in suffix for sep in ("/", "\\")) or suffix in (".", ".."):
        raise FocusNetError(f"--suffix {suffix!r}: must be plain text without a folder separator, e.g. _mask")
    kinds = [("mask", suffix)] + [("probabilities", PROB_SUFFIX)] * probs + [("overlay", OVERLAY_SUFFIX)] * overlays
    names = [s for _, s in kinds]
    if len(set(names)) != len(names):
        raise FocusNetError(
            f"--suffix {suffix!r} clashes with the {PROB_SUFFIX}/{OVERLAY_SUFFIX} outputs; choose another suffix"
        )
    out_r = out.resolve()
    for folder in folders:
        f = folder.resolve()
        if out_r == f or f in out_r.parents:
            raise FocusNetError(
                f"{out}: the output folder is inside the input folder {folder}; the masks would be read as inputs "
                "next time: choose an output folder outside it"
            )
    by_stem: dict[str, Path] = {}
    inputs = {f.resolve() for f in files}
    plan = []
    for f in files:
        if f.stem in by_stem:
            raise FocusNetError(
                f"{f}: same name as {by_stem[f.stem]}; their outputs would overwrite each other: predict them into "
                "different folders"
            )
        by_stem[f.stem] = f
        targets = {kind: out / f"{f.stem}{s}.png" for kind, s in kinds}
        for target in targets.values():
            if target.resolve() in inputs:
                raise FocusNetError(
                    f"{target}: this output would replace an input image; choose another --suffix or folder"
                )
        plan.append((f, targets))
    if not overwrite:
        existing = [t for _, targets in plan for t in targets.values() if t.exists()]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise FocusNetError(
                f"{existing[0]}{more}: output already exists; pass --overwrite to replace, or choose another folder"
            )
    return plan


def plan_one_file(files: list[Path], target: Path, extras: bool, overwrite: bool) -> list[tuple[Path, dict[str, Path]]]:
    """The plan of ``predict MODEL IMAGE OUT.png``: the one image's mask written to ``OUT.png``.

    Example:
        >>> plan_one_file([Path("a.jpg")], Path("out/a.png"), False, True)
        [(PosixPath('a.jpg'), {'mask': PosixPath('out/a.png')})]
    """
    if len(files) != 1:
        raise FocusNetError(
            f"{target}: a .png OUTPUT takes exactly one input image (got {len(files)}); give an output folder instead"
        )
    if extras:
        raise FocusNetError(
            f"{target}: --probabilities and --overlays need an output folder; give one instead of a .png file"
        )
    if target.resolve() == files[0].resolve():
        raise FocusNetError(f"{target}: this output would replace the input image; choose another file name")
    if target.exists() and not overwrite:
        raise FocusNetError(f"{target}: output already exists; pass --overwrite to replace it, or choose another name")
    return [(files[0], {"mask": target})]
