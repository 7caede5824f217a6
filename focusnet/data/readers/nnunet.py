"""``nnunet`` format: an nnU-Net v2 raw dataset of 2D natural images.

Layout (``nnUNet_raw/DatasetXXX_Name``)::

    dataset.json                       channel_names, labels, numTraining, file_ending (".png", ...)
    imagesTr/<case>_0000.png           one file per channel: _0000, _0001, _0002 (R, G, B) ...
    labelsTr/<case>.png                integer label map (0 = background)

Rules:

* Channels: either one file per channel as ``dataset.json``'s ``channel_names`` declares (three
  grey files are stacked as R, G, B; one grey file is a grey image), or a single RGB ``_0000``
  file with three declared channels (nnU-Net's natural-image reader splits it itself). Other
  channel counts are refused (focusnet takes grey or RGB inputs).
* Labels: every value must be one of the labels ``dataset.json`` declares; all labels other than
  ``background`` (and ``ignore``) are merged into one foreground, with a warning when there are
  several. The mask rule does not apply (labels are categorical). Region-based labels (lists of
  values) are merged the same way.
* ``imagesTs`` is not read (no labels). ``numTraining`` different from the cases found gives a
  warning. ``file_ending`` must be a 2D image type (PNG, JPEG, BMP, TIFF); NIfTI is refused.

The default split is ``random`` (seeded 0.7/0.15/0.15); nnU-Net's ``splits_final.json`` is accepted
as a split file (fold 0 unless another fold is chosen).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from focusnet.data.io import IMAGE_EXTENSIONS, _open, read_image
from focusnet.data.readers import (
    Item,
    Listing,
    check_options,
    check_same_size,
    check_source,
    image_mode,
    read_image_noted,
)
from focusnet.errors import DOCS_FORMAT, FocusNetError

DEFAULT_SPLIT = "random"
LAYOUT = "dataset.json + imagesTr/<case>_0000.png + labelsTr/<case>.png"
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})$")


def _error(message: str) -> FocusNetError:
    """An error in an nnunet folder; the message ends with a pointer to the page on that format."""
    return FocusNetError(message, see=DOCS_FORMAT["nnunet"])


@dataclass(frozen=True)
class NnunetItem(Item):
    """An nnU-Net case: channel files in ``images`` (``_0000`` first) and one label map in ``masks``."""

    label_values: tuple[int, ...] = (0, 1)
    foreground: tuple[int, ...] = (1,)

    def load_noted(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        notes: list[str] = []
        if len(self.images) == 1:
            image = read_image_noted(self.images[0], self.channels, notes)
        else:
            planes: list[np.ndarray] = []
            for path in self.images:
                if image_mode(path) in ("RGB", "RGBA", "P", "CMYK"):
                    raise _error(
                        f"{path}: channel file is a colour image; nnU-Net channel files hold one channel each "
                        "(save R, G, B as separate greyscale _0000/_0001/_0002 files, or one RGB _0000 file)"
                    )
                plane = read_image(path, channels=1)[:, :, 0]
                if planes:
                    check_same_size(path, plane.shape, self.images[0], planes[0].shape, what="channel file")
                planes.append(plane)
            image = np.stack(planes, axis=2)
            if self.channels == 1:
                image = np.asarray(Image.fromarray(image, mode="RGB").convert("L"))[:, :, None]
                notes.append("rgb_to_grey")
        label = self._read_label(image.shape[:2])
        mask = np.isin(label, self.foreground)
        if not mask.any():
            notes.append("empty_mask")
        return image, mask, notes

    def _read_label(self, hw: tuple[int, int]) -> np.ndarray:
        path = self.masks[0]
        img = _open(path)
        arr = np.asarray(img)
        if arr.ndim != 2:
            raise _error(
                f"{path}: label map has {arr.shape[2]} channels; nnU-Net labels are single-channel integer images "
                "(save it as a greyscale PNG with values 0, 1, ...)"
            )
        check_same_size(path, arr.shape, self.images[0], hw, what="label map")
        values = np.unique(arr)
        bad = [int(v) for v in values if int(v) not in self.label_values]
        if bad:
            shown = ", ".join(str(v) for v in bad[:6]) + (", ..." if len(bad) > 6 else "")
            raise _error(
                f"{path}: label values {shown} are not declared in dataset.json (labels: "
                f"{', '.join(str(v) for v in self.label_values)}); save labels as 0 (background), 1, ... "
                "or declare them in dataset.json"
            )
        return arr


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise _error(
            f"{path}: not found, so this is not an nnU-Net raw dataset; pass the DatasetXXX_Name folder ({LAYOUT})"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _error(f"{path}: not valid JSON ({exc}); fix or regenerate dataset.json") from None
    if not isinstance(data, dict):
        raise _error(f"{path}: expected a JSON object with channel_names, labels and file_ending")
    return data


def _labels(path: Path, data: dict) -> tuple[tuple[int, ...], tuple[int, ...], list[str]]:
    """(declared values, foreground values, warning lines) from ``dataset.json``'s ``labels``."""
    labels = data.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise _error(f'{path}: no "labels" object; add e.g. "labels": {{"background": 0, "lesion": 1}}')
    declared: set[int] = set()
    foreground: set[int] = set()
    names = []
    for name, value in labels.items():
        vals = value if isinstance(value, (list, tuple)) else [value]
        try:
            vals = [int(v) for v in vals]
        except (TypeError, ValueError):
            raise _error(f'{path}: label "{name}" has value {value!r}; label values must be integers') from None
        declared.update(vals)
        if name not in ("background", "ignore"):
            foreground.update(v for v in vals if v != 0)
            names.append(name)
    if "ignore" in labels:
        declared.add(int(labels["ignore"]))
    if not foreground:
        raise _error(f'{path}: "labels" declares no foreground label; add e.g. "lesion": 1')
    warnings = []
    if len(names) > 1:
        warnings.append(
            f"dataset.json declares {len(names)} foreground labels ({', '.join(names)}); merged into one foreground"
        )
    if "ignore" in labels:
        warnings.append('dataset.json declares an "ignore" label; its pixels are read as background')
    return tuple(sorted(declared | {0})), tuple(sorted(foreground)), warnings


def list_items(source: str | Path, channels: int = 3, mask_rule: str = "binary") -> Listing:
    """List the training cases of an nnU-Net v2 raw dataset, sorted by case id.

    Example:
        >>> listing = list_items("nnUNet_raw/Dataset501_ISIC")  # doctest: +SKIP
    """
    check_options(channels, mask_rule)
    root = check_source(source, "nnunet", LAYOUT)
    meta_path = root / "dataset.json"
    meta = _load_json(meta_path)
    ending = str(meta.get("file_ending", ".png"))
    if ending.lower() not in IMAGE_EXTENSIONS:
        raise _error(
            f"{meta_path}: file_ending {ending!r} is not a 2D image type; focusnet reads "
            f"{', '.join(IMAGE_EXTENSIONS)} (convert the images or use nnU-Net itself for 3D data)"
        )
    declared = meta.get("channel_names", meta.get("modality"))
    if not isinstance(declared, dict) or not declared:
        raise _error(
            f'{meta_path}: no "channel_names" object; add e.g. "channel_names": {{"0": "R", "1": "G", "2": "B"}}'
        )
    n_declared = len(declared)
    values, foreground, warnings = _labels(meta_path, meta)

    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise _error(f"{folder}: folder not found; an nnU-Net raw dataset needs imagesTr/ and labelsTr/ ({LAYOUT})")

    cases: dict[str, dict[int, Path]] = {}
    for path in sorted(images_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if not path.name.endswith(ending):
            if path.suffix.lower() in IMAGE_EXTENSIONS or path.name.endswith((".nii.gz", ".nii")):
                raise _error(
                    f"{path}: file ending differs from dataset.json's file_ending {ending!r}; "
                    f"convert it to {ending} or remove it"
                )
            continue
        match = _CHANNEL_FILE.match(path.name[: -len(ending)])
        if not match:
            raise _error(
                f"{path}: image name must be <case>_XXXX{ending} (channel index with 4 digits, e.g. _0000); rename it"
            )
        cases.setdefault(match["case"], {})[int(match["ch"])] = path
    if not cases:
        raise _error(f"{images_dir}: no images <case>_0000{ending} found; add the training images")

    labels: dict[str, Path] = {}
    for path in sorted(labels_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file() or not path.name.endswith(ending):
            continue
        labels[path.name[: -len(ending)]] = path
    for case in sorted(labels):
        if case not in cases:
            raise _error(
                f"{labels[case]}: label map has no image {images_dir}/{case}_0000{ending}; "
                "add the image or remove the label"
            )

    items: list[Item] = []
    for case in sorted(cases):
        files = cases[case]
        present = sorted(files)
        if present != list(range(len(present))):
            missing = min(set(range(max(present) + 1)) - set(present))
            raise _error(
                f"{images_dir}/{case}_{missing:04d}{ending}: channel file missing for case '{case}' "
                f"(found {', '.join(f'_{c:04d}' for c in present)}); add it or remove the case's files"
            )
        k = len(present)
        if k != n_declared and not (k == 1 and n_declared == 3):
            raise _error(
                f"{files[present[0]]}: case '{case}' has {k} channel file(s) but dataset.json declares "
                f"{n_declared} channel(s); add the missing channel files or fix channel_names"
            )
        if k not in (1, 3):
            raise _error(
                f"{files[0]}: case '{case}' has {k} channels; focusnet takes grey (1) or RGB (3) images"
            )
        if case not in labels:
            raise _error(
                f"{files[0]}: no label map for case '{case}' (expected {labels_dir}/{case}{ending}); "
                "add it or remove the case's images"
            )
        items.append(
            NnunetItem(case, tuple(files[c] for c in present), (labels[case],), channels, mask_rule, values, foreground)
        )
    n_training = meta.get("numTraining")
    if isinstance(n_training, int) and n_training != len(items):
        warnings.append(
            f"dataset.json says numTraining {n_training} but {len(items)} cases were found; using the cases found"
        )
    return Listing(items, warnings, [], root)
