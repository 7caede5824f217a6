"""``folder`` format: ``<root>/images/<id>.<ext>`` + ``<root>/masks/<id><suffix>.<ext>``.

Images and masks are matched by file stem (after removing ``mask_suffix`` from mask stems) by
:func:`focusnet.data.folder.list_pairs`; extensions PNG, JPEG, BMP, TIFF (any case). Masks are
read with the mask rule: ``binary`` (default: exactly two values {0, v}, e.g. 0/1 or 0/255; anything
else is refused), ``nonzero`` (every value > 0 is foreground) or ``half`` (>= half of the dtype's
maximum). Hidden files and files with other extensions are ignored.

Refused: a missing folder, an image without a mask, a mask without an image, two files with the
same id, no images at all. With ``skip_missing_masks=True`` images without a mask are left out
(listed in ``skipped``) instead.
"""
from __future__ import annotations

from pathlib import Path

from focusnet.data.folder import list_pairs
from focusnet.data.readers import Item, Listing, check_options, check_source

DEFAULT_SPLIT = "random"
LAYOUT = "images/<id>.png|jpg|bmp|tif + masks/<id><suffix>.png"


def list_items(
    source: str | Path,
    channels: int = 3,
    mask_rule: str = "binary",
    image_dir: str = "images",
    mask_dir: str = "masks",
    mask_suffix: str = "",
    skip_missing_masks: bool = False,
) -> Listing:
    """List the pairs of a folder dataset, sorted by id.

    Example:
        >>> listing = list_items("data/lesions", mask_suffix="_mask")  # doctest: +SKIP
    """
    check_options(channels, mask_rule)
    root = check_source(source, "folder", LAYOUT)
    pairs = list_pairs(root, image_dir, mask_dir, mask_suffix, require_masks=not skip_missing_masks)
    items, skipped = [], []
    for pair in pairs:
        if pair.mask is None:
            skipped.append(pair.id)
            continue
        items.append(Item(pair.id, (pair.image,), (pair.mask,), channels, mask_rule))
    warnings = []
    if skipped:
        warnings.append(
            f"{len(skipped)} image(s) without a mask left out (first: {root / image_dir / skipped[0]}.*)"
        )
    return Listing(items, warnings, skipped, root)
