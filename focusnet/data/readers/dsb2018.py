"""``dsb2018`` format: the 2018 Data Science Bowl (BBBC038) Kaggle layout.

Layout::

    <root>/stage1_train/<id>/images/<id>.png     RGBA (or RGB / grey) PNG
    <root>/stage1_train/<id>/masks/<mask>.png    one binary mask per nucleus
    <root>/stage1_test/<id>/...                  same; used only for cases that have masks/

``<root>`` may also be a stage folder itself (``.../stage1_train``). Rules:

* The image's alpha channel is dropped (RGBA and RGB images are both read as RGB).
* The nucleus masks of a case are merged by union (logical OR of each mask binarised with the
  mask rule; default ``binary``: 0/255 masks). Every nucleus mask must have the image's size.
* ``stage1_test`` cases without a ``masks/`` folder (Kaggle never released them as PNGs) are left
  out and counted in ``skipped``; a ``stage1_train`` case without masks is refused.
* Files next to the stage folders (``stage1_train_labels.csv``, ``SOURCE.md``) and hidden files
  are ignored. The same id in ``stage1_train`` and ``stage1_test`` is refused.

The default split is ``paper`` (seeded 540/130 train/val, proportional for other sizes).
"""
from __future__ import annotations

from pathlib import Path

from focusnet.data.io import IMAGE_EXTENSIONS
from focusnet.data.readers import Item, Listing, check_options, check_source
from focusnet.errors import DOCS_FORMAT, FocusNetError

DEFAULT_SPLIT = "paper"
LAYOUT = "stage1_train/<id>/images/<id>.png + stage1_train/<id>/masks/*.png"
STAGES = ("stage1_train", "stage1_test")


def _error(message: str) -> FocusNetError:
    """An error in a dsb2018 folder; the message ends with a pointer to the page on that format."""
    return FocusNetError(message, see=DOCS_FORMAT["dsb2018"])


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )


def _case(case: Path, require_masks: bool, channels: int, mask_rule: str) -> Item | None:
    cid = case.name
    image_dir = case / "images"
    images = _image_files(image_dir)
    if not images:
        raise _error(
            f"{case}: case has no image (expected {image_dir}/{cid}.png); add it or remove the case folder"
        )
    if len(images) > 1:
        raise _error(
            f"{images[1]}: case '{cid}' has {len(images)} images ({images[0].name}, {images[1].name}); "
            "keep one image per case in images/"
        )
    if images[0].stem != cid:
        raise _error(
            f"{images[0]}: image name does not match its case folder '{cid}'; rename it to images/{cid}.png"
        )
    masks = _image_files(case / "masks")
    if not masks:
        if require_masks:
            raise _error(
                f"{case}: case '{cid}' has no masks (expected {case}/masks/*.png); "
                "add the nucleus masks or remove the case"
            )
        return None
    return Item(cid, (images[0],), tuple(masks), channels, mask_rule)


def _cases(stage: Path) -> list[Path]:
    return sorted(p for p in stage.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_items(source: str | Path, channels: int = 3, mask_rule: str = "binary") -> Listing:
    """List the DSB 2018 cases under ``source`` (sorted by id), one item per image.

    Example:
        >>> listing = list_items("../shared/data/dsb2018")  # doctest: +SKIP
        >>> len(listing), len(listing.items[0].masks)  # doctest: +SKIP
        (200, 27)
    """
    check_options(channels, mask_rule)
    root = check_source(source, "dsb2018", LAYOUT)
    stages = [root / s for s in STAGES if (root / s).is_dir()]
    if not stages:
        if any((c / "images").is_dir() for c in _cases(root)):
            stages = [root]  # the stage folder itself
        else:
            raise _error(
                f"{root}: no stage1_train/ (or stage1_test/) folder and no <id>/images/ case folders, so this is "
                f"not a DSB 2018 folder; pass the folder that holds stage1_train/ ({LAYOUT})"
            )
    items: dict[str, Item] = {}
    skipped: list[str] = []
    for stage in stages:
        require = not stage.name.startswith(("stage1_test", "stage2_test"))
        cases = [c for c in _cases(stage) if (c / "images").is_dir() or (c / "masks").is_dir()]
        for case in cases:
            item = _case(case, require, channels, mask_rule)
            if item is None:
                skipped.append(case.name)
                continue
            if item.id in items:
                raise _error(
                    f"{case}: duplicate id '{item.id}' (also {items[item.id].images[0].parent.parent}); "
                    "keep each case in one stage folder"
                )
            items[item.id] = item
    warnings = []
    if skipped:
        warnings.append(
            f"{len(skipped)} stage1_test case(s) without masks left out (first: {skipped[0]})"
        )
    return Listing([items[k] for k in sorted(items)], warnings, skipped, root)
