"""Building a prepared cache: :func:`prepare` lists, decodes, checks, resizes and writes a dataset once.

Example:
    >>> _is_within(Path("/data/set/prepared"), Path("/data/set")), _is_within(Path("/tmp"), Path("/data"))
    (True, False)
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections import Counter
from pathlib import Path

from focusnet.data.cache.decode import _decode_all
from focusnet.data.cache.layout import (
    CACHE_VERSION,
    MANIFEST,
    _compact,
    _dir_bytes,
    _move_into_place,
    _up_to_date,
    cache_key,
)
from focusnet.data.cache.settings import _as_int, _default_workers, _final_split, _make_split, _split_setting
from focusnet.data.preprocess import NORMALIZATIONS
from focusnet.data.readers import MASK_RULES, NOTE_TEXT, Listing, get_reader, summarise_notes
from focusnet.data.splits import SPLIT_NAMES
from focusnet.diskspace import MARGIN_BYTES, ensure_free_space
from focusnet.errors import FocusNetError

__all__ = ["prepare"]


def prepare(
    format: str,
    source: str | Path,
    out: str | Path = "prepared",
    size: int = 256,
    channels: int = 3,
    normalization: str = "minmax",
    mask_rule: str = "binary",
    split: str | Path = "default",
    seed: int = 0,
    fold: int = 0,
    workers: int | None = None,
    check_only: bool = False,
    progress: bool = True,
    skip_bad: bool = False,
    **reader_options,
) -> dict:
    """Decode, check and resize a dataset once into a cache under ``out``; returns a summary dict.

    Args:
        format: one of :data:`focusnet.data.readers.FORMATS`.
        source: the dataset folder (only read).
        out: folder that holds caches; the cache is ``<out>/<format>-<size>-<hash>``. Must not be
            inside ``source``.
        size: side S of the square network input (the paper: 256).
        channels: 3 (RGB, the paper) or 1 (grey).
        normalization: applied when the cache is loaded: ``"minmax"`` (per image, over all pixels
            and channels, the authors' effective normalisation and the default) or ``"unit"`` (/255).
        mask_rule: ``"binary"`` (refuse masks that are not two-valued), ``"nonzero"`` or ``"half"``.
        split: ``"default"`` (the format's: ``bcdu`` for isic2018, ``paper`` for dsb2018,
            ``random`` otherwise), ``"bcdu"``, ``"paper"``, ``"paper-test"``, ``"random"``,
            ``"random:0.8,0.1,0.1"``, or a JSON split file (ours or nnU-Net's ``splits_final.json``).
        seed: seed of the ``paper``/``random`` splits.
        fold: fold of an nnU-Net ``splits_final.json``.
        workers: decoding threads (default: the CPUs, at most 8).
        check_only: only list, decode and validate; write nothing.
        progress: show a progress bar (stderr).
        skip_bad: leave out pairs that cannot be read (unreadable or truncated files, mask problems,
            missing masks) with a warning, instead of refusing the dataset.
        **reader_options: passed to the reader, e.g. ``mask_suffix="_mask"`` for ``folder``.

    Returns:
        ``count``, ``splits`` (name -> count), ``skipped`` (count), ``skipped_ids``, ``warnings``,
        ``conversions``, ``cache`` (folder, None when checking), ``noop``, ``seconds`` (this call),
        ``images_per_s`` (None for a no-op, whose ``prepared_seconds`` is the original time),
        ``cache_bytes`` and the settings.

    Raises:
        FocusNetError: bad settings or bad data, naming the file and the fix.
    """
    t0 = time.perf_counter()
    reader = get_reader(format)
    size, channels = _as_int("size", size, 1), _as_int("channels", channels, 1)
    seed, fold = _as_int("seed", seed, 0), _as_int("fold", fold, 0)
    if normalization not in NORMALIZATIONS:
        raise FocusNetError(f"unknown normalization {normalization!r}; choose one of: {', '.join(NORMALIZATIONS)}")
    if mask_rule not in MASK_RULES:
        raise FocusNetError(f"unknown mask rule {mask_rule!r}; choose one of: {', '.join(MASK_RULES)}")
    workers = _default_workers() if workers is None else _as_int("workers", workers, 1)
    src, src_resolved, out_dir = _source_and_out(source, out, check_only)
    split_setting = _split_setting(split, reader.default_split, fold)
    options = dict(reader_options)
    if skip_bad and format in ("isic2018", "folder"):
        options["skip_missing_masks"] = True
    settings = {
        "version": CACHE_VERSION,
        "format": format,
        "source": str(src_resolved),
        "size": size,
        "channels": channels,
        "normalization": normalization,
        "mask_rule": mask_rule,
        "split": split_setting,
        "seed": seed,
        "skip_bad": bool(skip_bad),
        "reader_options": options,
    }
    key = cache_key(settings)
    cache_dir = out_dir / key

    try:
        listing = reader.list_items(src, channels=channels, mask_rule=mask_rule, **options)
    except TypeError as exc:  # an option this reader does not take
        raise FocusNetError(f"format {format}: {exc}; see `focusnet prepare --help`") from None
    if not listing.items:
        raise FocusNetError(f"{src}: no image/mask pairs found; check --format {format} ({reader.layout})")
    files = _file_table(listing, src)

    if not check_only:
        cached = _up_to_date(cache_dir, settings, files)
        if cached is not None:
            summary = dict(cached["summary"])
            summary.update(
                noop=True,
                seconds=round(time.perf_counter() - t0, 3),
                prepared_seconds=cached["summary"]["seconds"],
                images_per_s=None,
                cache=str(cache_dir),
            )
            return summary

    ids = listing.ids
    if split_setting["kind"] == "file":  # refuse a bad split file before decoding anything
        _make_split(split_setting, ids, seed)

    tmp = None if check_only else _temporary_folder(out, out_dir, key, len(listing.items), size, channels)
    try:
        decoded = _decode_all(listing.items, size, channels, tmp, workers, progress, skip_bad)
        kept, sizes, notes, failures = decoded
        warnings = list(listing.warnings)
        skipped = list(listing.skipped)
        if failures:
            skipped += [listing.items[i].id for i, _ in failures]
            warnings.append(f"{len(failures)} pair(s) could not be read and were left out (first: {failures[0][1]})")
        if not kept:
            raise FocusNetError(f"{src}: no readable image/mask pairs left; fix the files named in the warnings")
        kept_ids = [listing.items[i].id for i in kept]
        try:
            splits = _final_split(split_setting, ids, kept_ids, seed, warnings)
        except FocusNetError as exc:
            if str(src) in str(exc):
                raise
            raise FocusNetError(f"{src}: {exc} (split setting: {split!r}, data.split in a config)") from None
        conversions = _conversions(listing, kept, notes, warnings)
        seconds = time.perf_counter() - t0
        summary = {
            "format": format,
            "source": str(src_resolved),
            "cache": None if check_only else str(cache_dir),
            "key": key,
            "count": len(kept),
            "splits": {name: len(splits[name]) for name in SPLIT_NAMES},
            "skipped": len(skipped),
            "skipped_ids": skipped[:50],
            "warnings": warnings,
            "conversions": conversions,
            "size": size,
            "channels": channels,
            "normalization": normalization,
            "mask_rule": mask_rule,
            "split": split_setting["kind"] if split_setting["kind"] != "file" else split_setting["path"],
            "seed": seed,
            "workers": workers,
            "check_only": bool(check_only),
            "noop": False,
            "seconds": round(seconds, 3),
            "images_per_s": round(len(listing.items) / seconds, 2) if seconds > 0 else None,
            "cache_bytes": 0,
        }
        if check_only or tmp is None:  # tmp is None exactly when checking only
            return summary
        if failures:
            _compact(tmp, kept)
        manifest = {
            "version": CACHE_VERSION,
            "key": key,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": settings,
            "count": len(kept),
            "ids": kept_ids,
            "orig_sizes": [list(sizes[i]) for i in kept],
            "items": _manifest_items(listing, kept, src),
            "files": files,
            "splits": splits,
            "skipped": skipped,
            "warnings": warnings,
            "conversions": conversions,
        }
        summary["cache_bytes"] = _dir_bytes(tmp) + len(json.dumps(manifest))
        manifest["summary"] = summary
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _move_into_place(tmp, cache_dir)
        tmp = None
        return summary
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _source_and_out(source: str | Path, out: str | Path, check_only: bool) -> tuple[Path, Path, Path]:
    """``(source as given, source resolved, out resolved)``; refuses an ``out`` inside the source."""
    src = Path(source).expanduser()
    try:
        src_resolved = src.resolve(strict=False)
    except (RuntimeError, OSError) as exc:  # a symlink loop, or a path that cannot be resolved
        raise FocusNetError(
            f"{src}: source path cannot be resolved ({exc}); pass the folder itself (not a link to it) as --source"
        ) from None
    out_dir = Path(out).expanduser().resolve()
    if not check_only and src.is_dir() and _is_within(out_dir, src_resolved):
        raise FocusNetError(
            f"{out}: output folder is inside the source folder {src}; the source is never written to, "
            "choose --out outside it"
        )
    return src, src_resolved, out_dir


def _temporary_folder(out: str | Path, out_dir: Path, key: str, n: int, size: int, channels: int) -> Path:
    """A fresh hidden folder in ``out_dir`` to write the cache into, after checking the free space."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FocusNetError(f"{out}: exists and is not a folder; choose another --out")
    needed = n * size * size * (channels + 1)  # uint8 images (N, S, S, C) + masks (N, S, S) + a margin
    ensure_free_space(
        out_dir, needed + max(MARGIN_BYTES, needed // 10), f"the prepared cache ({n} images at {size} x {size})"
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as exc:
        raise FocusNetError(f"{out}: cannot write the cache here ({exc.strerror}); choose another --out") from None
    return tmp


def _conversions(listing: Listing, kept: list[int], notes: list[list[str]], warnings: list[str]) -> dict[str, int]:
    """Count the conversion notes of the kept items: one warning per kind appended, counts by text returned."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for i in kept:
        for kind in dict.fromkeys(notes[i]):
            counts[kind] += 1
            examples.setdefault(kind, str(listing.items[i].images[0]))
    warnings += summarise_notes(counts, examples)
    return {NOTE_TEXT[k]: counts[k] for k in NOTE_TEXT if counts.get(k)}


def _manifest_items(listing: Listing, kept: list[int], src: Path) -> list[dict]:
    """The manifest's ``items``: id and source files (relative to ``src``) of each kept item."""
    return [
        {
            "id": listing.items[i].id,
            "images": [os.path.relpath(p, src) for p in listing.items[i].images],
            "masks": [os.path.relpath(p, src) for p in listing.items[i].masks],
        }
        for i in kept
    ]


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


def _file_table(listing: Listing, root: Path) -> dict[str, list[int]]:
    table = {}
    for item in listing.items:
        for p in item.sources:
            st = os.stat(p)
            table[os.path.relpath(p, root)] = [st.st_size, st.st_mtime_ns]
    return table



