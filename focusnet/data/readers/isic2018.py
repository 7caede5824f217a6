"""``isic2018`` format: the official ISIC 2018 Task 1 folders.

Layout (as in the challenge zips)::

    <root>/ISIC2018_Task1-2_Training_Input/ISIC_<id>.jpg
    <root>/ISIC2018_Task1_Training_GroundTruth/ISIC_<id>_segmentation.png

``subset="Validation"`` or ``"Test"`` reads ``ISIC2018_Task1-2_<subset>_Input`` +
``ISIC2018_Task1_<subset>_GroundTruth`` instead. Non-image files of the zips (``LICENSE.txt``,
``ATTRIBUTION.txt``) are ignored. Ids are the image stems (``ISIC_0000000``), sorted; the default
split is ``bcdu`` (sorted ids, positional 1815/259/520). Pairing and its errors are those of
:func:`focusnet.data.folder.list_pairs` with ``mask_suffix="_segmentation"``.
"""
from __future__ import annotations

from pathlib import Path

from focusnet.data.folder import list_pairs
from focusnet.data.readers import Item, Listing, check_options, check_source
from focusnet.errors import DOCS_FORMAT, FocusNetError

DEFAULT_SPLIT = "bcdu"
LAYOUT = (
    "ISIC2018_Task1-2_Training_Input/ISIC_<id>.jpg + ISIC2018_Task1_Training_GroundTruth/ISIC_<id>_segmentation.png"
)
MASK_SUFFIX = "_segmentation"


def _error(message: str) -> FocusNetError:
    """An error in an isic2018 folder; the message ends with a pointer to the page on that format."""
    return FocusNetError(message, see=DOCS_FORMAT["isic2018"])


def folders(subset: str = "Training") -> tuple[str, str]:
    """Image and mask folder names of an ISIC 2018 Task 1 subset."""
    return f"ISIC2018_Task1-2_{subset}_Input", f"ISIC2018_Task1_{subset}_GroundTruth"


def list_items(
    source: str | Path,
    channels: int = 3,
    mask_rule: str = "binary",
    subset: str = "Training",
    skip_missing_masks: bool = False,
) -> Listing:
    """List the ISIC 2018 Task 1 pairs under ``source``, sorted by id.

    Example:
        >>> len(list_items("../shared/data/isic2018_task1_512crop"))  # doctest: +SKIP
        400
    """
    check_options(channels, mask_rule)
    root = check_source(source, "isic2018", LAYOUT)
    image_dir, mask_dir = folders(subset)
    if not (root / image_dir).is_dir():
        raise _error(
            f"{root}: no {image_dir}/ folder, so this is not an ISIC 2018 Task 1 folder; pass the folder "
            f"that holds {image_dir}/ and {mask_dir}/ (or use --format folder for images/ + masks/)"
        )
    pairs = list_pairs(
        root, image_dir, mask_dir, MASK_SUFFIX, require_masks=not skip_missing_masks,
        see=DOCS_FORMAT["isic2018"], suffix_option=None,
    )
    items, skipped = [], []
    for pair in pairs:
        if pair.mask is None:
            skipped.append(pair.id)
            continue
        items.append(Item(pair.id, (pair.image,), (pair.mask,), channels, mask_rule))
    warnings = []
    if skipped:
        warnings.append(f"{len(skipped)} image(s) without a mask left out (first: {root / image_dir / skipped[0]}.jpg)")
    return Listing(items, warnings, skipped, root)
