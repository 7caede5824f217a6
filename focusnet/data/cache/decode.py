"""Decoding for ``prepare``: read, check and resize every item in a thread pool, into the cache's arrays.

Example:
    >>> _progress(3, enabled=False).update(1)  # no bar when progress is off
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from focusnet.data.cache.layout import IMAGES, MASKS
from focusnet.data.preprocess import resize_image, resize_mask
from focusnet.data.readers import Item
from focusnet.errors import FocusNetError

__all__: list[str] = []


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
        if images is not None and masks is not None:  # both or neither
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
                        error = fut.exception()
                        if error is not None:
                            if not (skip_bad and isinstance(error, FocusNetError)):
                                raise error
                            failures.append((futures[fut], str(error)))
                        bar.update(1)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    finally:
        bar.close()
    if images is not None and masks is not None:
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
