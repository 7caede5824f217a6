"""Folder datasets: ``<root>/images/<id>.<ext>`` paired with ``<root>/masks/<id><suffix>.<ext>``.

:func:`list_pairs` finds and checks the pairs (one clear :class:`~focusnet.errors.FocusNetError`
per problem, naming the file and the fix); :class:`SegmentationDataset` reads, resizes and
normalises them, one at a time or all at once into memory with :meth:`SegmentationDataset.preload`.
"""
from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from focusnet.data.io import IMAGE_EXTENSIONS, read_image, read_mask
from focusnet.data.preprocess import NORMALIZATIONS, normalize_image, resize_image, resize_mask
from focusnet.errors import DOCS_OWN_DATA, FocusNetError


@dataclass(frozen=True)
class Pair:
    """One dataset item: an id, its image file and its mask file (``None`` when unlabelled).

    Example:
        >>> Pair("a", Path("images/a.png"), Path("masks/a.png")).id
        'a'
    """

    id: str
    image: Path
    mask: Path | None


def _scan(folder: Path, see: str | None = DOCS_OWN_DATA) -> dict[str, Path]:
    """Image files of ``folder`` by stem; hidden files, sub-folders and other extensions are ignored."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.is_symlink() and not path.exists():
            raise FocusNetError(
                f"{path}: link that does not resolve (broken or a symlink loop); replace it with the file it should point to, or remove it",
                see=see,
            )
        if not path.is_file():
            continue
        if path.stem in found:
            raise FocusNetError(
                f"{path}: duplicate id '{path.stem}' (also {found[path.stem].name}); keep one file per id", see=see
            )
        found[path.stem] = path
    return found


def shared_mask_suffix(mask_stems: Sequence[str], image_ids: Collection[str]) -> str | None:
    """The one suffix whose removal turns every mask stem into an image id, or ``None``.

    Masks named ``<id>_mask`` read without ``--mask-suffix`` match no image; this finds the
    ``_mask`` to suggest. When several suffixes would do, the shortest (longest image id) wins.

    Example:
        >>> shared_mask_suffix(["a_mask", "b_mask"], {"a", "b"})
        '_mask'
        >>> shared_mask_suffix(["a_mask", "b_seg"], {"a", "b"}) is None
        True
    """
    common: set[str] | None = None
    for stem in mask_stems:
        options = {stem[k:] for k in range(1, len(stem)) if stem[:k] in image_ids}
        common = options if common is None else common & options
        if not common:
            return None
    return min(common, key=len) if common else None


def list_pairs(
    root: str | Path,
    image_dir: str = "images",
    mask_dir: str = "masks",
    mask_suffix: str = "",
    require_masks: bool = True,
    see: str | None = DOCS_OWN_DATA,
    suffix_option: str | None = "--mask-suffix",
) -> list[Pair]:
    """List the image/mask pairs of a folder dataset, sorted by id.

    Images are matched to masks by file stem: the mask of ``images/<id>.<ext>`` is
    ``masks/<id><mask_suffix>.<ext2>`` (any of ``IMAGE_EXTENSIONS``, case-insensitive). Hidden files
    and files with other extensions are ignored.

    Args:
        root: dataset folder.
        image_dir: sub-folder with the images.
        mask_dir: sub-folder with the masks.
        mask_suffix: text after the id in mask names, e.g. ``"_segmentation"`` for ISIC.
        require_masks: if false (prediction), the mask folder may be missing and images without a
            mask get ``mask=None``; masks without an image are still an error.
        see: documentation page appended to every error (``None``: none).
        suffix_option: how the user sets the mask suffix, suggested when every mask without an
            image is ``<image id><one shared suffix>`` (``None``: the suffix is fixed, no suggestion).

    Raises:
        FocusNetError: missing folder, image without mask, mask without image, two files with the
            same id, or no images at all.

    Example:
        >>> pairs = list_pairs("data/isic", mask_suffix="_segmentation")  # doctest: +SKIP
        >>> pairs[0]  # doctest: +SKIP
        Pair(id='ISIC_0000000', image=PosixPath('data/isic/images/ISIC_0000000.jpg'), mask=...)
    """
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "dataset folder not found"
        raise FocusNetError(f"{root}: {what}; pass the folder that holds {image_dir}/ and {mask_dir}/", see=see)
    img_root, mask_root = root / image_dir, root / mask_dir
    if not img_root.is_dir():
        raise FocusNetError(f"{img_root}: image folder not found; put the images in {image_dir}/ under {root}", see=see)
    images = _scan(img_root, see)
    if not images:
        raise FocusNetError(
            f"{img_root}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)}); add image/mask pairs", see=see
        )
    if not mask_root.is_dir():
        if require_masks:
            raise FocusNetError(f"{mask_root}: mask folder not found; put the masks in {mask_dir}/ under {root}", see=see)
        return [Pair(i, images[i], None) for i in sorted(images)]
    masks: dict[str, Path] = {}
    for stem, path in _scan(mask_root, see).items():
        if mask_suffix and not stem.endswith(mask_suffix):
            raise FocusNetError(
                f"{path}: mask name does not end with '{mask_suffix}'; "
                f"rename it to <id>{mask_suffix}{path.suffix} or remove it",
                see=see,
            )
        sid = stem[: len(stem) - len(mask_suffix)] if mask_suffix else stem
        masks[sid] = path
    orphans = [sid for sid in sorted(masks) if sid not in images]
    if orphans:
        first = masks[orphans[0]]
        suffix = shared_mask_suffix(orphans, images) if suffix_option else None
        if suffix is not None:
            full = suffix + mask_suffix
            raise FocusNetError(
                f"{first}: mask has no image '{orphans[0]}' in {img_root}; the masks are named <id>{full}"
                f"{first.suffix} (this one belongs to image '{orphans[0][: len(orphans[0]) - len(suffix)]}'), so pass "
                f"{suffix_option} {full} (data.mask_suffix={full} in a config)",
                see=see,
            )
        raise FocusNetError(
            f"{first}: mask has no image '{orphans[0]}' in {img_root}; add the image or remove the mask", see=see
        )
    pairs = []
    for sid in sorted(images):
        mask = masks.get(sid)
        if mask is None and require_masks:
            raise FocusNetError(
                f"{images[sid]}: no mask for image '{sid}' (expected {mask_root}/{sid}{mask_suffix}.png); "
                "add the mask or remove the image",
                see=see,
            )
        pairs.append(Pair(sid, images[sid], mask))
    return pairs


class SegmentationDataset(Dataset):
    """Images and masks of a list of :class:`Pair`, resized to ``size`` x ``size`` and normalised.

    ``dataset[i]`` is a dict: ``image`` float32 (C, S, S) in [0, 1]; ``mask`` float32 (1, S, S) of
    0/1 (left out when the pair has no mask); ``id`` str; ``orig_size`` int64 tensor ``[h, w]``.

    Args:
        pairs: items, e.g. from :func:`list_pairs`.
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
