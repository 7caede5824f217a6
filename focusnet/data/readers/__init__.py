"""Dataset readers: one module per on-disk layout, one common interface.

A reader lists a dataset folder and returns a :class:`Listing`: the :class:`Item` of every
image/mask pair (sorted by id), plus the reader's one-line warnings and the ids or files it left
out on purpose. ``item.load()`` reads one pair as ``(uint8 HxWxC image, bool HxW mask)``.

Formats (see each module for the exact layout and rules):

* ``isic2018``: ``ISIC2018_Task1-2_Training_Input/ISIC_<id>.jpg`` +
  ``ISIC2018_Task1_Training_GroundTruth/ISIC_<id>_segmentation.png``.
* ``dsb2018``: ``stage1_train/<id>/images/<id>.png`` + ``masks/*.png`` (union of nucleus masks);
  ``stage1_test`` cases too when they have masks.
* ``folder``: ``images/<id>.<ext>`` + ``masks/<id><suffix>.<ext>``.
* ``nnunet``: an nnU-Net v2 raw dataset (``dataset.json``, ``imagesTr/<case>_0000.png`` ...,
  ``labelsTr/<case>.png``).

Nothing here writes anywhere. Every problem is a :class:`~focusnet.errors.FocusNetError` that
names the file and the fix.

Example:
    >>> from focusnet.data.readers import get_reader
    >>> listing = get_reader("isic2018").list_items("data/isic2018_task1")  # doctest: +SKIP
    >>> image, mask = listing.items[0].load()  # doctest: +SKIP
    >>> image.dtype, image.shape[2], mask.dtype  # doctest: +SKIP
    (dtype('uint8'), 3, dtype('bool'))
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from focusnet.data.io import read_image, read_mask
from focusnet.errors import DOCS_FORMAT, DOCS_OWN_DATA, FocusNetError
from focusnet.vocab import FORMATS, MASK_RULES

# Conversion kinds recorded per item (``notes``). Those in WARN_KINDS also give a warning line in
# the prepare summary; the others (e.g. dropping an opaque alpha channel, the normal DSB case)
# are only counted.
NOTE_TEXT = {
    "16bit": "16-bit or float image(s) scaled to 8 bits by their maximum",
    "palette": "palette image(s) expanded to their palette colours",
    "cmyk": "CMYK image(s) converted to RGB",
    "grey_to_rgb": "greyscale image(s) replicated to 3 channels",
    "other_mode": "image(s) in an unusual colour mode (YCbCr, LAB, HSV, ...) converted",
    "alpha": "image(s) with an alpha channel: alpha dropped",
    "rgb_to_grey": "colour image(s) converted to grey (channels=1)",
    "empty_mask": "mask(s) with no foreground (kept as all-background)",
}
WARN_KINDS = ("16bit", "palette", "cmyk", "grey_to_rgb", "other_mode", "empty_mask")

_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


@dataclass(frozen=True)
class Item:
    """One image/mask pair of a dataset.

    Attributes:
        id: unique id (file stem, case name, ...).
        images: image source file(s); several for nnU-Net channel files.
        masks: mask source file(s); several for DSB 2018 (one per nucleus, merged by union).
        channels: 3 (RGB) or 1 (grey), the image channels ``load`` returns.
        mask_rule: how mask files are binarised (``binary``, ``nonzero``, ``half``), see
            :func:`focusnet.data.io.read_mask`.

    Example:
        >>> item = Item("a", (Path("images/a.png"),), (Path("masks/a.png"),))
        >>> item.sources
        (PosixPath('images/a.png'), PosixPath('masks/a.png'))
    """

    id: str
    images: tuple[Path, ...]
    masks: tuple[Path, ...]
    channels: int = 3
    mask_rule: str = "binary"

    @property
    def sources(self) -> tuple[Path, ...]:
        """Every file this item is read from."""
        return tuple(self.images) + tuple(self.masks)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Read the pair: ``(uint8 HxWxC image, bool HxW mask)``; sizes are checked to agree."""
        image, mask, _ = self.load_noted()
        return image, mask

    def load_noted(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Like :meth:`load`, plus the conversion kinds applied (keys of ``NOTE_TEXT``)."""
        notes: list[str] = []
        image = read_image_noted(self.images[0], self.channels, notes)
        mask = self._read_masks(image.shape[:2])
        if not mask.any():
            notes.append("empty_mask")
        return image, mask, notes

    def _read_masks(self, hw: tuple[int, int]) -> np.ndarray:
        mask = np.zeros(hw, dtype=bool)
        for path in self.masks:
            part = read_mask(path, rule=self.mask_rule)
            check_same_size(path, part.shape, self.images[0], hw, what="mask")
            mask |= part
        return mask


@dataclass
class Listing:
    """What a reader found: the items (sorted by id), warning lines, and what it left out.

    Attributes:
        items: the image/mask pairs.
        warnings: one line per kind of problem handled by a documented rule.
        skipped: ids (or file paths) deliberately left out, e.g. DSB ``stage1_test`` cases without masks.
        source: the dataset folder.
    """

    items: list[Item]
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]


@dataclass(frozen=True)
class Reader:
    """A registered format: ``list_items(source, channels=3, mask_rule="binary", **options) -> Listing``.

    Attributes:
        name: format name (``--format``).
        list_items: the listing function.
        default_split: split used when none is given (``bcdu``, ``paper`` or ``random``).
        layout: one line describing the expected folder layout, for error messages and help.
    """

    name: str
    list_items: Callable[..., Listing]
    default_split: str
    layout: str


def get_reader(fmt: str) -> Reader:
    """The reader of a format name (one of :data:`FORMATS`).

    Example:
        >>> get_reader("folder").default_split
        'random'
    """
    FORMATS.normalize(fmt, see=DOCS_OWN_DATA)
    module = importlib.import_module(f"{__name__}.{fmt}")
    return Reader(fmt, module.list_items, module.DEFAULT_SPLIT, module.LAYOUT)


# ----------------------------------------------------------------------------- shared helpers
def check_options(channels: int, mask_rule: str) -> None:
    """Refuse a channel count other than 1/3 or an unknown mask rule."""
    if channels not in (1, 3):
        raise FocusNetError(f"channels must be 1 (grey) or 3 (RGB), got {channels}", see=DOCS_OWN_DATA)
    MASK_RULES.normalize(mask_rule, see=DOCS_OWN_DATA)


# How a format is named in "pass the ... folder" (not "the folder folder").
_DATA_SET_NAMES = {"folder": "data set", "isic2018": "ISIC 2018", "dsb2018": "DSB 2018", "nnunet": "nnU-Net data set"}


def data_set_name(fmt: str) -> str:
    """How messages name a data set of format ``fmt`` ("pass the <name> folder").

    Example:
        >>> data_set_name("folder"), data_set_name("isic2018")
        ('data set', 'ISIC 2018')
    """
    return _DATA_SET_NAMES.get(fmt, fmt)


def check_source(source: str | Path, fmt: str, layout: str) -> Path:
    """The dataset folder as a Path; refuses a missing path or a file."""
    root = Path(source).expanduser()
    if not root.exists():
        raise FocusNetError(
            f"{root}: dataset folder not found; pass the {data_set_name(fmt)} folder ({layout})",
            see=DOCS_FORMAT.get(fmt),
        )
    if not root.is_dir():
        raise FocusNetError(
            f"{root}: is not a folder; pass the {data_set_name(fmt)} folder ({layout})", see=DOCS_FORMAT.get(fmt)
        )
    return root


def check_same_size(path: Path, shape: tuple[int, ...], image: Path, hw: tuple[int, ...], what: str = "mask") -> None:
    """Refuse a mask (or channel file) whose size differs from its image's."""
    if tuple(shape[:2]) != tuple(hw[:2]):
        raise FocusNetError(
            f"{path}: {what} is {shape[0]}x{shape[1]} but image {image} is {hw[0]}x{hw[1]}; "
            f"a {what} must have its image's size (re-export it at {hw[0]}x{hw[1]})",
            see=DOCS_OWN_DATA,
        )


def image_mode(path: Path) -> str:
    """The Pillow mode of an image file from its header (cheap; decoding errors surface later)."""
    try:
        with Image.open(path) as img:
            return img.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return ""  # read_image will raise the one clear error


def mode_notes(mode: str, channels: int) -> list[str]:
    """Conversion kinds that reading an image of ``mode`` as ``channels`` channels implies."""
    notes = []
    if mode in _HIGH_BIT_MODES:
        notes.append("16bit")
        base = "L"
    elif mode in ("P", "PA"):
        notes.append("palette")
        base = "RGB"
    elif mode == "CMYK":
        notes.append("cmyk")
        base = "RGB"
    elif mode in ("YCbCr", "LAB", "HSV"):
        notes.append("other_mode")
        base = "RGB"
    else:
        base = mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        notes.append("alpha")
    if channels == 3 and base in ("L", "LA", "1", "La"):
        notes.append("grey_to_rgb")
    if channels == 1 and base in ("RGB", "RGBA", "RGBX", "RGBa") and mode not in ("P", "PA"):
        notes.append("rgb_to_grey")
    return notes


def read_image_noted(path: Path, channels: int, notes: list[str]) -> np.ndarray:
    """:func:`focusnet.data.io.read_image`, appending the conversion kinds it applied to ``notes``."""
    mode = image_mode(path)
    image = read_image(path, channels=channels)
    notes.extend(mode_notes(mode, channels))
    return image


def summarise_notes(counts: dict[str, int], examples: dict[str, str]) -> list[str]:
    """One warning line per warned conversion kind: ``"<n> <text> (first: <file>)"``."""
    lines = []
    for kind in WARN_KINDS:
        if counts.get(kind):
            lines.append(f"{counts[kind]} {NOTE_TEXT[kind]} (first: {examples[kind]})")
    return lines


__all__ = [
    "FORMATS",
    "Item",
    "Listing",
    "MASK_RULES",
    "NOTE_TEXT",
    "Reader",
    "WARN_KINDS",
    "data_set_name",
    "get_reader",
]
