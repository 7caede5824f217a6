"""Training profiles of ``focusnet compare``: the paper's protocol, or a quick one for a CPU.

A profile is a list of ``KEY=VALUE`` overrides applied to the compare's config before the
user's own overrides (which win). ``paper`` changes nothing: the config *is* the protocol
(``configs/isic2018_focusnetpp.yaml``: 256x256, 50 epochs, Adam 1e-4 with the authors' step
schedule, no augmentation). ``quick`` makes a three-model comparison on the shared ISIC subset
finish in well under 45 minutes on a 2-core CPU, and is the same for every model.

Example:
    >>> profile_overrides("quick")[:2]
    ['size=128', 'epochs=8']
    >>> profile_overrides("paper")
    []
"""
from __future__ import annotations

from focusnet.errors import FocusNetError

__all__ = ["PROFILES", "PROFILE_NOTES", "profile_overrides"]

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
