"""The prepared cache: decode and resize a dataset once, then train from memory-mapped arrays.

:func:`prepare` reads any supported format (see :mod:`focusnet.data.readers`), resizes every pair
to ``size`` x ``size`` as the paper does (Pillow bilinear, anti-aliased, for images; the same resize
then ``>= 0.5`` for masks; see :mod:`focusnet.data.preprocess`), in parallel, and writes::

    <out>/<format>-<size>-<hash>/
        images.npy      uint8 (N, S, S, C), the resized images, not yet normalised
        masks.npy       uint8 (N, S, S), 0/1
        manifest.json   ids, original sizes, source files (relative path, size, mtime), settings,
                        splits, warnings, conversion counts, summary, version

``<hash>`` is a short hash of the format, the resolved source folder, the size, channels,
normalisation, mask rule, split settings (and split-file contents), reader options and the cache
version, so changed settings go to a different folder. Preparing again with the same settings and
unchanged source files (same sizes and modification times) does nothing. The folder is written
under a temporary name and renamed into place, so a cache is either complete or absent; the
source folder is never written to (``out`` inside it is refused).

Images are stored as resized ``uint8``: normalising at load time (per-image min-max, the default,
or /255) is cheap and keeps the cache 4x smaller than float32. :func:`open_cache` gives a
:class:`PreparedDataset` that returns normalised float tensors, bit-identical to
:class:`focusnet.data.folder.SegmentationDataset`.

Example:
    >>> summary = prepare("isic2018", "../shared/data/isic2018_task1_512crop", "prepared")  # doctest: +SKIP
    >>> ds = open_cache(summary["cache"])  # doctest: +SKIP
    >>> images, masks, ids = ds.tensors("train")  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from focusnet.data.preprocess import NORMALIZATIONS, resize_image, resize_mask
from focusnet.data.readers import FORMATS, MASK_RULES, NOTE_TEXT, Item, Listing, get_reader, summarise_notes
from focusnet.data.splits import (
    SPLIT_NAMES,
    bcdu_split,
    dsb_paper_split,
    load_split_file,
    random_split_ids,
    unassigned_ids,
    validate_split,
)
from focusnet.diskspace import MARGIN_BYTES, ensure_free_space
from focusnet.errors import FocusNetError

CACHE_VERSION = 1
MANIFEST = "manifest.json"
IMAGES = "images.npy"
MASKS = "masks.npy"
SPLIT_KINDS = ("default", "bcdu", "paper", "paper-test", "random", "random:TRAIN,VAL,TEST", "FILE.json")
DEFAULT_RATIOS = (0.7, 0.15, 0.15)


# ------------------------------------------------------------------------------------ settings
def _split_setting(split: str | Path, default: str, fold: int) -> dict:
    """The split spec as a JSON-able dict (part of the cache key)."""
    spec = str(split)
    if spec == "default":
        spec = default
    if spec in ("bcdu", "paper", "paper-test"):
        return {"kind": spec}
    if spec == "random" or spec.startswith("random:"):
        ratios = DEFAULT_RATIOS
        if spec.startswith("random:"):
            try:
                ratios = tuple(float(v) for v in spec[len("random:") :].split(","))
            except ValueError:
                raise FocusNetError(
                    f"split {spec!r}: ratios must be numbers, e.g. random:0.7,0.15,0.15"
                ) from None
        return {"kind": "random", "ratios": list(ratios)}
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".json" or path.exists():
        if not path.is_file():
            raise FocusNetError(f"{path}: split file not found; pass a JSON split file or one of: {', '.join(SPLIT_KINDS[:5])}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return {"kind": "file", "path": str(path.resolve()), "sha256": digest, "fold": int(fold)}
    raise FocusNetError(f"unknown split {spec!r}; choose one of: {', '.join(SPLIT_KINDS)}")


def _make_split(setting: dict, ids: list[str], seed: int) -> dict[str, list[str]]:
    kind = setting["kind"]
    if kind == "bcdu":
        return bcdu_split(ids)
    if kind in ("paper", "paper-test"):
        return dsb_paper_split(ids, seed=seed, with_test=kind == "paper-test")
    if kind == "random":
        return random_split_ids(ids, setting["ratios"], seed=seed)
    return load_split_file(setting["path"], ids, fold=setting["fold"])


def cache_key(settings: dict) -> str:
    """``<format>-<size>-<12 hex>``: the cache folder name of a settings dict."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"{settings['format']}-{settings['size']}-{digest}"


def _default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


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


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


# ------------------------------------------------------------------------------------- prepare
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
    size, channels, seed, fold = _as_int("size", size, 1), _as_int("channels", channels, 1), _as_int("seed", seed, 0), _as_int("fold", fold, 0)
    if normalization not in NORMALIZATIONS:
        raise FocusNetError(f"unknown normalization {normalization!r}; choose one of: {', '.join(NORMALIZATIONS)}")
    if mask_rule not in MASK_RULES:
        raise FocusNetError(f"unknown mask rule {mask_rule!r}; choose one of: {', '.join(MASK_RULES)}")
    workers = _default_workers() if workers is None else _as_int("workers", workers, 1)
    src = Path(source).expanduser()
    try:
        src_resolved = src.resolve(strict=False)
    except (RuntimeError, OSError) as exc:  # a symlink loop, or a path that cannot be resolved
        raise FocusNetError(f"{src}: source path cannot be resolved ({exc}); pass the folder itself (not a link to it) as --source") from None
    out_dir = Path(out).expanduser().resolve()
    if not check_only and src.is_dir() and _is_within(out_dir, src_resolved):
        raise FocusNetError(
            f"{out}: output folder is inside the source folder {src}; the source is never written to, "
            "choose --out outside it"
        )
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

    tmp = None
    if not check_only:
        if out_dir.exists() and not out_dir.is_dir():
            raise FocusNetError(f"{out}: exists and is not a folder; choose another --out")
        n = len(listing.items)  # uint8 images (N, S, S, C) + masks (N, S, S) + a margin
        needed = n * size * size * (channels + 1)
        ensure_free_space(out_dir, needed + max(MARGIN_BYTES, needed // 10), f"the prepared cache ({n} images at {size} x {size})")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            tmp = out_dir / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
        except OSError as exc:
            raise FocusNetError(f"{out}: cannot write the cache here ({exc.strerror}); choose another --out") from None
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
        counts, examples = Counter(), {}
        for i in kept:
            for kind in dict.fromkeys(notes[i]):
                counts[kind] += 1
                examples.setdefault(kind, str(listing.items[i].images[0]))
        warnings += summarise_notes(counts, examples)
        conversions = {NOTE_TEXT[k]: counts[k] for k in NOTE_TEXT if counts.get(k)}
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
        if check_only:
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
            "items": [
                {
                    "id": listing.items[i].id,
                    "images": [os.path.relpath(p, src) for p in listing.items[i].images],
                    "masks": [os.path.relpath(p, src) for p in listing.items[i].masks],
                }
                for i in kept
            ],
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


def _as_int(name: str, value, minimum: int) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise FocusNetError(f"{name} must be an integer, got {value!r}") from None
    if v != value and not isinstance(value, str):
        raise FocusNetError(f"{name} must be an integer, got {value!r}")
    if v < minimum:
        raise FocusNetError(f"{name} must be >= {minimum}, got {v}")
    return v


def _up_to_date(cache_dir: Path, settings: dict, files: dict) -> dict | None:
    """The manifest of a complete cache with these settings and unchanged sources, else None."""
    path = cache_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("settings") != settings or manifest.get("files") != files:
        return None
    try:
        n, s = manifest["count"], settings["size"]
        if np.load(cache_dir / IMAGES, mmap_mode="r").shape != (n, s, s, settings["channels"]):
            return None
        if np.load(cache_dir / MASKS, mmap_mode="r").shape != (n, s, s):
            return None
    except (OSError, ValueError, KeyError):
        return None
    return manifest


def _decode_all(
    items: Sequence[Item], size: int, channels: int, tmp: Path | None, workers: int, progress: bool, skip_bad: bool
) -> tuple[list[int], list[tuple[int, int]], list[list[str]], list[tuple[int, str]]]:
    """Load, check and resize every item (into ``tmp``'s arrays unless checking only).

    Returns (indices read, original (h, w) per index, conversion notes per index, failures
    ``(index, message)`` when ``skip_bad``).
    """
    n = len(items)
    images = masks = None
    if tmp is not None:
        images = np.lib.format.open_memmap(tmp / IMAGES, mode="w+", dtype=np.uint8, shape=(n, size, size, channels))
        masks = np.lib.format.open_memmap(tmp / MASKS, mode="w+", dtype=np.uint8, shape=(n, size, size))
    sizes: list[tuple[int, int]] = [(0, 0)] * n
    notes: list[list[str]] = [[] for _ in range(n)]
    failures: list[tuple[int, str]] = []

    def work(i: int) -> None:
        item = items[i]
        try:
            image, mask, item_notes = item.load_noted()
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise FocusNetError(f"{item.images[0]}: could not be read ({exc}); re-export or remove this file") from None
        small = resize_image(image, size)
        small_mask = resize_mask(mask, size)
        if images is not None:
            images[i] = small
            masks[i] = small_mask
        sizes[i] = (int(image.shape[0]), int(image.shape[1]))
        notes[i] = item_notes

    bar = _progress(n, progress)
    try:
        if workers <= 1 or n == 1:
            for i in range(n):
                try:
                    work(i)
                except FocusNetError as exc:
                    if not skip_bad:
                        raise
                    failures.append((i, str(exc)))
                bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(work, i): i for i in range(n)}
                try:
                    for fut in as_completed(futures):
                        exc = fut.exception()
                        if exc is not None:
                            if not (skip_bad and isinstance(exc, FocusNetError)):
                                raise exc
                            failures.append((futures[fut], str(exc)))
                        bar.update(1)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    finally:
        bar.close()
    if images is not None:
        images.flush()
        masks.flush()
        del images, masks
    failures.sort()
    bad = {i for i, _ in failures}
    kept = [i for i in range(n) if i not in bad]
    return kept, sizes, notes, failures


class _NoBar:
    def update(self, k: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with lightning
        return _NoBar()
    return tqdm(total=total, unit="img", desc="prepare", leave=False, dynamic_ncols=True)


def _final_split(setting: dict, listed: list[str], kept: list[str], seed: int, warnings: list[str]) -> dict[str, list[str]]:
    if setting["kind"] != "file":
        return _make_split(setting, kept, seed)
    split = _make_split(setting, listed, seed)
    if len(kept) != len(listed):
        keep = set(kept)
        dropped = sum(1 for members in split.values() for i in members if i not in keep)
        split = {k: [i for i in v if i in keep] for k, v in split.items()}
        if dropped:
            warnings.append(f"{dropped} id(s) of the split file were left out as unreadable")
        split = validate_split(split, kept, setting["path"])
    rest = unassigned_ids(split, kept)
    if rest:
        warnings.append(f"{len(rest)} id(s) are in no split of the split file and are not used (first: {rest[0]})")
    return split


def _compact(tmp: Path, kept: list[int]) -> None:
    """Rewrite the arrays of ``tmp`` with only the rows in ``kept``."""
    for name in (IMAGES, MASKS):
        old = np.load(tmp / name, mmap_mode="r")
        new = np.lib.format.open_memmap(tmp / f"{name}.new", mode="w+", dtype=old.dtype, shape=(len(kept),) + old.shape[1:])
        for j, i in enumerate(kept):
            new[j] = old[i]
        new.flush()
        del new, old
        os.replace(tmp / f"{name}.new", tmp / name)


def _move_into_place(tmp: Path, cache_dir: Path) -> None:
    """Rename the finished ``tmp`` folder to ``cache_dir``, replacing a stale cache there."""
    old = None
    if cache_dir.exists():
        old = cache_dir.with_name(f".old-{cache_dir.name}-{uuid.uuid4().hex[:8]}")
        os.rename(cache_dir, old)
    try:
        os.rename(tmp, cache_dir)
    except OSError:
        if (cache_dir / MANIFEST).is_file():  # another prepare finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------- reading
def normalize_batch(images: np.ndarray | torch.Tensor, mode: str = "minmax") -> torch.Tensor:
    """``uint8`` (B, S, S, C) images to ``float32`` (B, C, S, S) in [0, 1].

    ``"minmax"``: per image, ``(x - min) / (max - min)`` over all pixels and channels (a constant
    image gives zeros); ``"unit"``: ``x / 255``. Bit-identical to
    :func:`focusnet.data.preprocess.normalize_image` applied image by image. Computed with numpy
    (single-threaded, about 1 ms for 8 x 256 x 256 x 3), so it does not compete with the training
    step for torch's intra-op threads.

    Example:
        >>> x = normalize_batch(np.array([[[[10, 20, 30]]]], dtype=np.uint8))
        >>> x.shape, x.flatten().tolist()
        (torch.Size([1, 3, 1, 1]), [0.0, 0.5, 1.0])
    """
    if mode not in NORMALIZATIONS:
        raise FocusNetError(f"unknown normalization {mode!r}; choose one of: {', '.join(NORMALIZATIONS)}")
    arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    x = np.ascontiguousarray(arr.transpose(0, 3, 1, 2)).astype(np.float32)
    if mode == "unit":
        x /= np.float32(255.0)
        return torch.from_numpy(x)
    flat = arr.reshape(len(arr), -1)
    shape = (len(arr), 1, 1, 1)
    lo = flat.min(axis=1).astype(np.float32).reshape(shape)
    span = flat.max(axis=1).astype(np.float32).reshape(shape) - lo
    x -= lo  # a constant image becomes zeros here and stays zero below
    x /= np.where(span > 0, span, np.float32(1.0))
    return torch.from_numpy(x)


class PreparedDataset:
    """A prepared cache, memory-mapped (see :func:`open_cache`).

    Attributes:
        path: the cache folder.
        manifest: the parsed ``manifest.json``.
        ids: item ids in row order (sorted).
        splits: ``{"train": [...], "val": [...], "test": [...]}`` ids.
        orig_sizes: ``{id: (h, w)}`` original image sizes, to map predictions back.
        size, channels, normalization: the preprocessing settings.
        images: ``uint8`` (N, S, S, C) memmap; masks: ``uint8`` (N, S, S) memmap of 0/1.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        mpath = self.path / MANIFEST
        try:
            self.manifest = json.loads(mpath.read_text())
        except FileNotFoundError:
            raise FocusNetError(f"{mpath}: not found; is {self.path} a cache made by `focusnet prepare`?") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise FocusNetError(f"{mpath}: unreadable ({exc}); prepare the cache again") from None
        if self.manifest.get("version") != CACHE_VERSION:
            raise FocusNetError(
                f"{mpath}: cache version {self.manifest.get('version')} is not {CACHE_VERSION}; prepare the cache again"
            )
        settings = self.manifest["settings"]
        self.size = int(settings["size"])
        self.channels = int(settings["channels"])
        self.normalization = settings["normalization"]
        self.ids: list[str] = list(self.manifest["ids"])
        self.splits: dict[str, list[str]] = {k: list(v) for k, v in self.manifest["splits"].items()}
        self.orig_sizes: dict[str, tuple[int, int]] = {
            i: (int(h), int(w)) for i, (h, w) in zip(self.ids, self.manifest["orig_sizes"])
        }
        self._row = {i: r for r, i in enumerate(self.ids)}
        try:
            self.images = np.load(self.path / IMAGES, mmap_mode="r")
            self.masks = np.load(self.path / MASKS, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise FocusNetError(f"{self.path}: cache arrays unreadable ({exc}); prepare the cache again") from None
        n, s = len(self.ids), self.size
        if self.images.shape != (n, s, s, self.channels) or self.masks.shape != (n, s, s):
            raise FocusNetError(f"{self.path}: cache arrays do not match the manifest; prepare the cache again")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        parts = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        return f"PreparedDataset({str(self.path)!r}, {len(self)} items at {self.size}x{self.size}, {parts})"

    def split_ids(self, split: str | Sequence[str] | None = None) -> list[str]:
        """Ids of a split: a split name, ``None`` (every item) or an explicit list of ids.

        Every method that takes ``split`` accepts the same, so a training run's own ``split.json``
        lists can be read from the cache too.
        """
        if split is None:
            return list(self.ids)
        if not isinstance(split, str):
            ids = [str(i) for i in split]
            unknown = [i for i in ids if i not in self._row]
            if unknown:
                raise FocusNetError(
                    f"{self.path}: {len(unknown)} id(s) are not in this cache (first: {unknown[0]!r}); "
                    "prepare the cache from the data the split was made for"
                )
            return ids
        if split not in self.splits:
            raise FocusNetError(f"{self.path}: no split {split!r}; the splits are {', '.join(self.splits)}")
        return list(self.splits[split])

    def rows(self, split: str | Sequence[str] | None = None) -> np.ndarray:
        """Row indices (into ``images``/``masks``) of a split, in the split's id order."""
        return np.array([self._row[i] for i in self.split_ids(split)], dtype=np.int64)

    def batch(self, rows: Sequence[int] | np.ndarray, normalization: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``float32`` (B, C, S, S) normalised and masks ``float32`` (B, 1, S, S) of some rows."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")  # read the memory map in file order
        sorted_rows = rows[order]
        img = self.images[sorted_rows]
        msk = self.masks[sorted_rows]
        if not np.array_equal(sorted_rows, rows):
            inverse = np.argsort(order, kind="stable")
            img, msk = img[inverse], msk[inverse]
        x = normalize_batch(img, normalization or self.normalization)
        y = torch.from_numpy(msk.astype(np.float32)[:, None])
        return x, y

    def tensors(self, split: str | Sequence[str] | None = None, normalization: str | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """A whole split in memory: ``(images float32 (N, C, S, S) normalised, masks float32 (N, 1, S, S), ids)``.

        Memory: N x C x S x S x 4 bytes, e.g. 1815 x 3 x 256 x 256 is 1.4 GB; use :meth:`dataset`
        to stream larger data from the memory map instead.
        """
        ids = self.split_ids(split)
        rows = self.rows(split)
        n, s = len(rows), self.size
        images = torch.empty((n, self.channels, s, s), dtype=torch.float32)
        masks = torch.empty((n, 1, s, s), dtype=torch.float32)
        for start in range(0, n, 256):
            x, y = self.batch(rows[start : start + 256], normalization)
            images[start : start + len(x)] = x
            masks[start : start + len(y)] = y
        return images, masks, ids

    def orig_size_tensor(self, split: str | Sequence[str] | None = None) -> torch.Tensor:
        """Original ``(h, w)`` of a split's items, ``int64`` (N, 2)."""
        return torch.tensor([self.orig_sizes[i] for i in self.split_ids(split)], dtype=torch.int64).reshape(-1, 2)

    def dataset(self, split: str | Sequence[str] | None = None, normalization: str | None = None) -> "CacheDataset":
        """A torch ``Dataset`` over a split that reads the memory map item by item."""
        return CacheDataset(self.path, self.split_ids(split), normalization or self.normalization)

    def loader(
        self,
        split: str | Sequence[str] | None = None,
        batch_size: int = 8,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
        drop_last: bool = False,
        normalization: str | None = None,
    ) -> DataLoader:
        """A ``DataLoader`` that reads whole batches from the memory map (one read per batch).

        Yields dicts with ``image`` (B, C, S, S), ``mask`` (B, 1, S, S), ``id`` (list) and
        ``orig_size`` (B, 2). Batches are assembled with numpy, not by stacking single items, so
        loading does not compete with the training step for torch's threads.
        """
        view = self.dataset(split, normalization)
        generator = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(view, generator=generator) if shuffle else SequentialSampler(view)
        return DataLoader(
            view,
            batch_size=None,
            sampler=BatchSampler(sampler, batch_size, drop_last),
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
        )

    def batches(
        self, split: str | Sequence[str] | None = None, batch_size: int = 8, shuffle: bool = True, seed: int = 0, drop_last: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Iterate ``(images, masks)`` batches of a split straight from the memory map (no workers needed)."""
        rows = self.rows(split)
        if shuffle:
            rows = rows[np.random.default_rng(seed).permutation(len(rows))]
        stop = len(rows) - (len(rows) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            yield self.batch(rows[start : start + batch_size])


class CacheDataset(Dataset):
    """Items of a prepared cache, read from its memory map on demand (safe with DataLoader workers).

    ``dataset[i]`` is a dict like :class:`focusnet.data.folder.SegmentationDataset`'s: ``image``
    float32 (C, S, S), ``mask`` float32 (1, S, S), ``id``, ``orig_size`` int64 ``[h, w]``.
    """

    def __init__(self, path: str | Path, ids: Sequence[str], normalization: str = "minmax") -> None:
        if normalization not in NORMALIZATIONS:
            raise FocusNetError(f"unknown normalization {normalization!r}; choose one of: {', '.join(NORMALIZATIONS)}")
        self.path = Path(path)
        self.ids = list(ids)
        self.normalization = normalization
        self._cache: PreparedDataset | None = None  # opened lazily in each worker process

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    @property
    def cache(self) -> PreparedDataset:
        if self._cache is None:
            self._cache = PreparedDataset(self.path)
        return self._cache

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int | Sequence[int]) -> dict:
        """One item, or a whole batch when ``index`` is a list of indices (see :meth:`PreparedDataset.loader`)."""
        cache = self.cache
        if isinstance(index, (int, np.integer)):
            cid = self.ids[index]
            x, y = cache.batch([cache._row[cid]], self.normalization)
            return {
                "image": x[0],
                "mask": y[0],
                "id": cid,
                "orig_size": torch.tensor(cache.orig_sizes[cid], dtype=torch.int64),
            }
        ids = [self.ids[i] for i in index]
        x, y = cache.batch([cache._row[i] for i in ids], self.normalization)
        return {
            "image": x,
            "mask": y,
            "id": ids,
            "orig_size": torch.tensor([cache.orig_sizes[i] for i in ids], dtype=torch.int64).reshape(-1, 2),
        }


def open_cache(path: str | Path) -> PreparedDataset:
    """Open a prepared cache: its folder, or an ``--out`` folder that holds exactly one cache.

    Example:
        >>> ds = open_cache("prepared/isic2018-256-0123456789ab")  # doctest: +SKIP
        >>> images, masks, ids = ds.tensors("val")  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if (path / MANIFEST).is_file():
        return PreparedDataset(path)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file())
        if len(found) == 1:
            return PreparedDataset(found[0])
        if found:
            raise FocusNetError(
                f"{path}: holds {len(found)} caches ({', '.join(p.name for p in found[:4])}); pass one of them"
            )
    raise FocusNetError(f"{path}: no prepared cache here; run `focusnet prepare` first")


__all__ = [
    "CACHE_VERSION",
    "CacheDataset",
    "FORMATS",
    "PreparedDataset",
    "cache_key",
    "normalize_batch",
    "open_cache",
    "prepare",
]
