"""Model colours of ``focusnet compare``: one colour per model in every figure and in the report.

A colour-blind-friendly palette without green (:data:`PALETTE`); the ground truth is always drawn
in bluish green (:data:`TRUTH_COLOR`).

Example:
    >>> model_colors(["unet", "my-model"])["unet"], TRUTH_COLOR
    ('#D55E00', '#00C28A')
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable

__all__ = ["PALETTE", "PREDICTION_FALLBACK_COLOR", "TRUTH_COLOR", "model_colors"]

# Okabe-Ito and Paul Tol colours (colour-blind friendly), greens left out: green is the ground truth.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#882255",  # wine
    "#F0E442",  # yellow
    "#332288",  # indigo
    "#999999",  # grey
    "#AA4499",  # purple
    "#DDCC77",  # sand
    "#000000",  # black
)
TRUTH_COLOR = "#00C28A"  # a bright bluish green, told apart from red/orange by deuteranopes
PREDICTION_FALLBACK_COLOR = "#E41A1C"  # red, when no model colour is given

# Preferred palette slot of each registered model, so a model's colour does not depend on which
# other models are compared.
_KNOWN = {
    "focusnetpp": 0,
    "unet": 1,
    "focusnet": 2,
    "attention_unet": 3,
    "unetpp": 4,
    "bcdunet": 5,
    "r2unet": 6,
    "wide_unet": 7,
    "fcn": 8,
}


def model_colors(names: Iterable[str]) -> dict[str, str]:
    """A fixed colour (hex string) per model name.

    A registered model's exact name always gets its own slot (``focusnetpp`` is blue, ``unet``
    vermillion, ...); other names ("model-preset", custom) start at a slot derived from a CRC of
    the name and take the next free one. Pass the same list (e.g. every model of the comparison)
    to every figure and the colours agree.

    Example:
        >>> model_colors(["focusnetpp", "unet"])
        {'focusnetpp': '#0072B2', 'unet': '#D55E00'}
    """
    names = list(dict.fromkeys(str(n) for n in names))
    out: dict[str, str] = {}
    used: set[int] = set()
    for name in names:
        if name in _KNOWN:
            out[name] = PALETTE[_KNOWN[name]]
            used.add(_KNOWN[name])
    for name in names:
        if name in out:
            continue
        base = name.split("-", 1)[0]
        start = _KNOWN.get(base, zlib.crc32(name.encode("utf-8")) % len(PALETTE))
        slot = start
        for step in range(len(PALETTE)):
            candidate = (start + step) % len(PALETTE)
            if candidate not in used:
                slot = candidate
                break
        used.add(slot)
        out[name] = PALETTE[slot]
    return {name: out[name] for name in names}
