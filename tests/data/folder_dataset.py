"""Test helper: the reference folder loader that the prepared cache is checked against.

:class:`SegmentationDataset` reads the :class:`~focusnet.data.folder.Pair` files of a folder
dataset, resizes and normalises them one at a time (or all at once with
:meth:`SegmentationDataset.preload`) with the same functions ``prepare`` uses, so a cache item must
equal its item bit for bit. The package itself trains from the prepared cache only.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset

from focusnet.data.folder import Pair
from focusnet.data.io import read_image, read_mask
from focusnet.data.preprocess import NORMALIZATIONS, normalize_image, resize_image, resize_mask
from focusnet.errors import DOCS_OWN_DATA, FocusNetError


class SegmentationDataset(Dataset):
    """Images and masks of a list of :class:`Pair`, resized to ``size`` x ``size`` and normalised.

    ``dataset[i]`` is a dict: ``image`` float32 (C, S, S) in [0, 1]; ``mask`` float32 (1, S, S) of
    0/1 (left out when the pair has no mask); ``id`` str; ``orig_size`` int64 tensor ``[h, w]``.

    Args:
        pairs: items, e.g. from :func:`~focusnet.data.folder.list_pairs`.
        size: side S of the square network input.
        channels: 3 (RGB) or 1 (grey).
        normalization: ``"minmax"`` (per image, the paper's) or ``"unit"`` (/255).
        mask_rule: how mask files are binarised, see :func:`~focusnet.data.io.read_mask`.

    Example:
        >>> ds = SegmentationDataset(list_pairs("data/demo"), size=128)  # doctest: +SKIP
        >>> ds[0]["image"].shape, ds[0]["mask"].shape  # doctest: +SKIP
        (torch.Size([3, 128, 128]), torch.Size([1, 128, 128]))
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        size: int = 256,
        channels: int = 3,
        normalization: str = "minmax",
        mask_rule: str = "binary",
    ) -> None:
        if normalization not in NORMALIZATIONS:
            raise FocusNetError(f"unknown normalization {normalization!r}; choose one of: {', '.join(NORMALIZATIONS)}")
        if channels not in (1, 3):
            raise FocusNetError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
        if int(size) < 1:
            raise FocusNetError(f"image size must be positive (got {size}); use e.g. 256")
        if mask_rule not in ("binary", "nonzero", "half"):
            raise FocusNetError(f"unknown mask rule {mask_rule!r}; choose one of: binary, nonzero, half")
        self.pairs = list(pairs)
        self.size = int(size)
        self.channels = channels
        self.normalization = normalization
        self.mask_rule = mask_rule

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
        """Read and preprocess one item as numpy: image (C, S, S) float32, mask (S, S) bool or None, (h, w).

        Example:
            >>> img, mask, (h, w) = ds.load(0)  # doctest: +SKIP
        """
        pair = self.pairs[index]
        img = read_image(pair.image, channels=self.channels)
        h, w = img.shape[:2]
        mask = None
        if pair.mask is not None:
            mask = read_mask(pair.mask, rule=self.mask_rule)
            if mask.shape != (h, w):
                raise FocusNetError(
                    f"{pair.mask}: mask is {mask.shape[0]}x{mask.shape[1]} but image {pair.image} is {h}x{w}; "
                    "masks must have their image's size",
                    see=DOCS_OWN_DATA,
                )
            mask = resize_mask(mask, self.size)
        x = normalize_image(resize_image(img, self.size), self.normalization)
        return x, mask, (h, w)

    def __getitem__(self, index: int) -> dict:
        x, mask, (h, w) = self.load(index)
        item = {
            "image": torch.from_numpy(x),
            "id": self.pairs[index].id,
            "orig_size": torch.tensor([h, w], dtype=torch.int64),
        }
        if mask is not None:
            item["mask"] = torch.from_numpy(mask.astype(np.float32))[None]
        return item

    def preload(self, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor]:
        """Load every item into memory (a small thread pool reads and resizes in parallel).

        Memory: N x C x S x S float32, e.g. 2594 x 3 x 256 x 256 is about 2 GB.

        Args:
            workers: threads; default ``min(4, cpu_count)``.

        Returns:
            ``(images (N, C, S, S) float32, masks (N, 1, S, S) float32 0/1, ids, orig_sizes (N, 2) int64)``.

        Raises:
            FocusNetError: a pair has no mask (preloading is for training/evaluation).

        Example:
            >>> images, masks, ids, sizes = ds.preload()  # doctest: +SKIP
        """
        for pair in self.pairs:
            if pair.mask is None:
                raise FocusNetError(
                    f"{pair.image}: no mask for image '{pair.id}'; preload needs a mask for every image"
                )
        n, s = len(self.pairs), self.size
        images = torch.empty((n, self.channels, s, s), dtype=torch.float32)
        masks = torch.empty((n, 1, s, s), dtype=torch.float32)
        sizes = torch.empty((n, 2), dtype=torch.int64)

        def fill(i: int) -> None:
            x, m, (h, w) = self.load(i)
            images[i] = torch.from_numpy(x)
            masks[i, 0] = torch.from_numpy(m.astype(np.float32))
            sizes[i, 0], sizes[i, 1] = h, w

        workers = workers or min(4, os.cpu_count() or 1)
        if workers <= 1 or n <= 1:
            for i in range(n):
                fill(i)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                # list() re-raises the first error (a FocusNetError naming the file) here.
                list(pool.map(fill, range(n)))
        return images, masks, [p.id for p in self.pairs], sizes
