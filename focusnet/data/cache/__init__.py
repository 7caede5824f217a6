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
:class:`PreparedDataset` that returns normalised float tensors, bit-identical to reading, resizing
(:mod:`focusnet.data.preprocess`) and normalising each file directly.

Example:
    >>> summary = prepare("isic2018", "../shared/data/isic2018_task1_512crop", "prepared")  # doctest: +SKIP
    >>> ds = open_cache(summary["cache"])  # doctest: +SKIP
    >>> images, masks, ids = ds.tensors("train")  # doctest: +SKIP
"""
from __future__ import annotations

from focusnet.data.cache.build import prepare
from focusnet.data.cache.dataset import CacheDataset, PreparedDataset, normalize_batch, open_cache
from focusnet.data.cache.layout import CACHE_VERSION, cache_key

# the file names, read by evaluate and the tests; the split vocabulary (re-exported, not in __all__)
from focusnet.data.cache.layout import IMAGES as IMAGES
from focusnet.data.cache.layout import MANIFEST as MANIFEST
from focusnet.data.cache.layout import MASKS as MASKS
from focusnet.data.cache.settings import DEFAULT_RATIOS as DEFAULT_RATIOS
from focusnet.data.cache.settings import SPLIT_KINDS as SPLIT_KINDS
from focusnet.data.readers import FORMATS

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
