"""The ``augment`` section of a training config (:class:`AugmentConfig`), re-exported by :mod:`focusnet.engine.config`.

:func:`focusnet.engine.module.augment_batch` applies it.

Example:
    >>> AugmentConfig(enabled=True, rot90=0.0).hflip
    0.5
"""
from __future__ import annotations

from dataclasses import dataclass

from focusnet.engine.config_fields import BOOL, Rule, documented, setting, validate_fields

__all__ = ["AugmentConfig"]

_PROBABILITY = Rule.number_in(0.0, 1.0)
_JITTER = (
    "strength of the colour jitter (factor drawn from ``[1 - s, 1 + s]``; 0: off), applied after the model's input "
    "normalisation."
)


@documented
@dataclass
class AugmentConfig:
    """The ``augment`` section: random batch augmentation in torch, off by default (the paper has none).

    Each image of a training batch gets its own draw (the mask gets the same geometric transform).
    """

    enabled: bool = setting(False, rule=BOOL, help="master switch.")
    hflip: float = setting(0.5, rule=_PROBABILITY, help="probability of a horizontal flip.")
    vflip: float = setting(0.5, rule=_PROBABILITY, help="probability of a vertical flip.")
    rot90: float = setting(0.5, rule=_PROBABILITY, help="probability of a rotation by a random multiple of 90 degrees.")
    rotate: float = setting(
        0.0, rule=Rule.number_in(0.0, 180.0),
        help="maximum angle (degrees) of a random free rotation (bilinear image, nearest mask; 0: off).",
    )
    scale: float = setting(
        0.0, rule=Rule.number_in(0.0, 0.9),
        help="maximum relative zoom: factor drawn from ``[1 - s, 1 + s]``, above 1 enlarging the content (bilinear "
        "image, nearest mask, reflected borders; 0: off).",
    )
    zoom_in: float = setting(
        0.0, rule=Rule.number_in(0.0, 1.0),
        help="maximum zoom into the image centre: factor drawn from ``[1, 1 + z]`` (after ``scale``'s, if both; "
        "bilinear image, nearest mask; 0: off). Unlike ``scale`` it never shrinks the content, so no reflected "
        "copy enters at the border; it makes lesions that fill the crop, as the larger ones of a dermoscopy crop do.",
    )
    zoom_in_p: float = setting(
        1.0, rule=_PROBABILITY, help="probability that an image is zoomed by ``zoom_in`` (the others keep their size).",
    )
    zoom_in_min_area: float = setting(
        0.0, rule=_PROBABILITY,
        help="``zoom_in`` applies only to images whose mask foreground covers at least this share of the image "
        "(0: every image): it makes more crop-filling lesions without enlarging the small ones.",
    )
    brightness: float = setting(0.0, rule=_PROBABILITY, help=f"brightness {_JITTER}")
    contrast: float = setting(0.0, rule=_PROBABILITY, help=f"contrast {_JITTER}")
    saturation: float = setting(0.0, rule=_PROBABILITY, help=f"saturation {_JITTER}")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> AugmentConfig:
        """Check every field (:func:`settings`); raise :class:`FocusNetError` naming the first bad key."""
        validate_fields(self, "augment.")
        return self
