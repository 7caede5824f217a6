"""The splits of a prepared cache in memory, as training and its test evaluation read them.

:func:`load_split_tensors` is the one place data is loaded for training: within a command that set
:data:`COMMAND_CACHE` (``focusnet train`` does), the cache it opened is read, so it is prepared and
opened once per command.

Example:
    >>> data = load_split_tensors(config, split, parts=("val",))  # doctest: +SKIP
    >>> len(data["val"]), data["val"].images.shape  # doctest: +SKIP
    (259, torch.Size([259, 3, 256, 256]))
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from focusnet.data.cache import PreparedDataset, open_cache
from focusnet.engine.config import TrainConfig
from focusnet.engine.rundir import prepare_data
from focusnet.errors import FocusNetError

__all__ = ["COMMAND_CACHE", "SplitTensors", "load_split_tensors"]


@dataclass
class SplitTensors:
    """One split in memory: images (N, C, S, S) float32, masks (N, 1, S, S) 0/1, ids, orig sizes (N, 2)."""

    images: torch.Tensor
    masks: torch.Tensor
    ids: list[str]
    orig_sizes: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)

    def dataset(self, with_index: bool = False) -> torch.utils.data.TensorDataset:
        if with_index:
            return torch.utils.data.TensorDataset(self.images, self.masks, torch.arange(len(self.ids)))
        return torch.utils.data.TensorDataset(self.images, self.masks)


# The cache the running command opened (set by focusnet.engine.train), so that it is prepared and
# opened once per command.
COMMAND_CACHE: contextvars.ContextVar[PreparedDataset | None] = contextvars.ContextVar(
    "focusnet_command_cache", default=None
)


def load_split_tensors(
    config: TrainConfig, split: dict[str, list[str]], parts: Iterable[str] = ("train", "val")
) -> dict[str, SplitTensors]:
    """The images and masks of the requested splits, in memory, from the prepared cache.

    This is the one place data is loaded for training and evaluation: it prepares the cache of
    ``config.data`` (a no-op when up to date) and reads the ids of ``split[part]`` from it.

    Returns:
        ``{part: SplitTensors}`` with the items in the order of ``split[part]``.
    """
    cache = COMMAND_CACHE.get() or open_cache(prepare_data(config)["cache"])
    out: dict[str, SplitTensors] = {}
    for part in parts:
        if part not in split:
            raise FocusNetError(f"split: no {part!r} split; the splits are {', '.join(split)}")
        if not split[part]:
            raise FocusNetError(f"split: the {part} split is empty; add images or change data.split")
        images, masks, ids = cache.tensors(split[part])
        out[part] = SplitTensors(images, masks, list(ids), cache.orig_size_tensor(split[part]))
    return out
