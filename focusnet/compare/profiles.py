"""Training profiles of ``focusnet compare``: the paper's protocol, or a quick one for a CPU.

A profile is a list of ``KEY=VALUE`` overrides applied to the compare's config before the
user's own overrides (which win). ``paper`` changes nothing: the config *is* the protocol
(``configs/isic2018_focusnetpp.yaml``: 256x256, 50 epochs, Adam 1e-4 with the authors' step
schedule, no augmentation). ``quick`` makes a three-model comparison on the shared ISIC subset
finish in well under 45 minutes on a 2-core CPU, and is the same for every model. The user's
overrides replace the profile's values: what ran is described by :func:`describe_run` and
:func:`describe_profile` (the header of ``focusnet compare`` and the report's protocol), never by
the notes below, which describe the profile as written.

Example:
    >>> profile_overrides("quick")[:2]
    ['size=128', 'epochs=8']
    >>> profile_overrides("paper")
    []
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from focusnet.errors import FocusNetError

__all__ = ["PROFILES", "PROFILE_NOTES", "describe_profile", "describe_run", "profile_overrides"]

#: Overrides of each profile, applied in order, before the user's.
PROFILES: dict[str, list[str]] = {
    "paper": [],
    "quick": [
        "size=128",
        "epochs=8",
        "max_minutes=12",  # per model: a guard only (checked after each epoch); 8 epochs take ~5-9 min here
        "lr=1.0e-3",
        "lr_schedule=cosine",
        "augment.enabled=true",
        "augment.hflip=0.5",
        "augment.vflip=0.5",
        "augment.rot90=0.0",
        "progress_bar=false",
        # PyTorch's BatchNorm momentum for the models that take it (FocusNet++): Keras' 0.01 leaves the
        # running statistics far behind the weights in a few hundred steps (benchmarks/RESULTS.md).
        "model_kwargs.bn_momentum=0.1",
    ],
}

#: One line per profile for ``--help``, the report's protocol and REPRODUCING.md.
PROFILE_NOTES: dict[str, str] = {
    "paper": "the config as written (the paper's protocol for the ISIC/DSB configs; meant for a GPU)",
    "quick": (
        "128x128, 8 epochs (max 12 min per model), Adam 1e-3 with cosine decay, random flips, BatchNorm "
        "momentum 0.1; "
        "same for every model; a CPU comparison of three models on the shared ISIC subset in < 45 min"
    ),
}


def profile_overrides(name: str) -> list[str]:
    """The ``KEY=VALUE`` overrides of profile ``name`` (a copy).

    Raises:
        FocusNetError: unknown profile.
    """
    if name not in PROFILES:
        raise FocusNetError(f"--profile: unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return list(PROFILES[name])


def _key(item: str) -> str:
    return item.partition("=")[0].strip()


def describe_profile(name: str, overrides: Sequence[str] = ()) -> str:
    """What profile ``name`` set over the config, and which of its values ``overrides`` replaced.

    Example:
        >>> describe_profile("quick", ["size=64", "epochs=2"])[:75]
        'quick: sets max_minutes=12, lr=1.0e-3, lr_schedule=cosine, augment.enabled='
        >>> describe_profile("quick", ["size=64", "epochs=2"]).split("; ")[-1]
        'its size=128, epochs=8 replaced by the overrides size=64, epochs=2'
        >>> describe_profile("paper")
        'paper: the config as written'
    """
    given = {_key(o): o for o in overrides}
    own = profile_overrides(name)
    kept = [o for o in own if _key(o) not in given]
    replaced = [o for o in own if _key(o) in given]
    text = f"{name}: " + (f"sets {', '.join(kept)} over the config" if kept else "the config as written")
    if replaced:
        text += f"; its {', '.join(replaced)} replaced by the overrides {', '.join(given[_key(o)] for o in replaced)}"
    return text


def describe_run(config: Any, models: Sequence[str]) -> str:
    """One line on what a comparison runs: the models and the settings of ``config`` as resolved.

    ``config`` is the comparison's :class:`~focusnet.engine.config.TrainConfig` after the profile and
    the user's overrides, so the line says what trains, whatever the profile's notes say.

    Example:
        >>> from focusnet.engine.config import TrainConfig
        >>> line = describe_run(TrainConfig(data={"source": "data/lesions"}, size=64, epochs=2), ["focusnetpp", "unet"])
        >>> for part in line.split("; "): print(part)
        2 models (focusnetpp, unet) at 64x64, 2 epochs, adam lr 0.0001 (paper_step schedule), no augmentation
        data data/lesions (folder format)
    """
    aug = config.augment
    names = ("hflip", "vflip", "rot90", "rotate", "scale", "brightness", "contrast", "saturation")
    parts = [f"{k} {getattr(aug, k):g}" for k in names if getattr(aug, k)] if aug.enabled else []
    budget = f" (at most {config.max_minutes:g} min per model)" if config.max_minutes else ""
    return (
        f"{len(models)} model{'s' if len(models) != 1 else ''} ({', '.join(models)}) at {config.size}x{config.size}, "
        f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}{budget}, {config.optimizer} lr {config.lr:g} "
        f"({config.lr_schedule} schedule), {'augmentation ' + ', '.join(parts) if parts else 'no augmentation'}; "
        f"data {config.data.source} ({config.data.format} format)"
    )
