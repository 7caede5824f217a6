"""Reading a prepared cache: :func:`open_cache`, :class:`PreparedDataset` and its torch ``Dataset``.

Example:
    >>> x = normalize_batch(np.full((1, 2, 2, 3), 7, dtype=np.uint8))
    >>> x.shape, float(x.max())  # a constant image becomes zeros
    (torch.Size([1, 3, 2, 2]), 0.0)
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from focusnet.data.cache.layout import CACHE_VERSION, IMAGES, MANIFEST, MASKS
from focusnet.data.preprocess import NORMALIZATIONS
from focusnet.errors import FocusNetError

__all__ = ["CacheDataset", "PreparedDataset", "normalize_batch", "open_cache"]


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

    def batch(
        self, rows: Sequence[int] | np.ndarray, normalization: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
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

    def tensors(
        self, split: str | Sequence[str] | None = None, normalization: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
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

    def dataset(self, split: str | Sequence[str] | None = None, normalization: str | None = None) -> CacheDataset:
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
        self, split: str | Sequence[str] | None = None, batch_size: int = 8, shuffle: bool = True, seed: int = 0,
        drop_last: bool = False,
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

    ``dataset[i]`` is a dict: ``image`` float32 (C, S, S), ``mask`` float32 (1, S, S), ``id``,
    ``orig_size`` int64 ``[h, w]``.
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
