"""Folder datasets: ``<root>/images/<id>.<ext>`` paired with ``<root>/masks/<id><suffix>.<ext>``.

:func:`list_pairs` finds and checks the pairs (one clear :class:`~focusnet.errors.FocusNetError`
per problem, naming the file and the fix); the ``folder`` and ``isic2018`` readers
(:mod:`focusnet.data.readers`) read them into a prepared cache.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from focusnet.data.io import IMAGE_EXTENSIONS
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
                f"{path}: link that does not resolve (broken or a symlink loop); "
                "replace it with the file it should point to, or remove it",
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
            raise FocusNetError(
                f"{mask_root}: mask folder not found; put the masks in {mask_dir}/ under {root}", see=see
            )
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
