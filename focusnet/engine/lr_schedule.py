"""Learning-rate schedules, as multiples of the base rate per 0-based epoch: the authors' step
schedule (``paper_step``), ``constant`` and ``cosine``.

Example:
    >>> [lr_factor("paper_step", e, 50) for e in (0, 16, 26, 41)]
    [1.0, 0.1, 0.01, 0.001]
"""
from __future__ import annotations

import math

from focusnet.engine.config_fields import config_error
from focusnet.vocab import Vocabulary

__all__ = ["LR_SCHEDULES", "PAPER_STEP_BOUNDARIES", "PAPER_STEP_FACTORS", "LRFactor", "lr_factor"]

LR_SCHEDULES = Vocabulary("schedule", ("paper_step", "constant", "cosine"))

# The authors' Keras scheduler (spec section 2.2 row 20), 0-based epochs:
# 1e-4 for epochs 0-15, 1e-5 for 16-25, 1e-6 for 26-40, 1e-7 from 41 on.
# Expressed as multiples of the base learning rate (default 1e-4).
PAPER_STEP_BOUNDARIES = (16, 26, 41)
PAPER_STEP_FACTORS = (1.0, 0.1, 0.01, 0.001)


def lr_factor(schedule: str, epoch: float, epochs: int) -> float:
    """Multiple of the base learning rate used during 0-based ``epoch`` (fractional for the cosine of
    :class:`~focusnet.engine.callbacks.BudgetCosine`).

    * ``paper_step``: 1 for epochs 0-15, 0.1 for 16-25, 0.01 for 26-40, 0.001 from 41 on
      (independent of ``epochs``).
    * ``constant``: always 1.
    * ``cosine``: ``0.5 * (1 + cos(pi * epoch / epochs))``, from 1 at epoch 0 towards 0 at the end.

    Example:
        >>> [lr_factor("paper_step", e, 50) for e in (15, 16, 25, 26, 40, 41, 49)]
        [1.0, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
        >>> lr_factor("cosine", 5, 10)
        0.5
    """
    if schedule == "paper_step":
        index = sum(epoch >= b for b in PAPER_STEP_BOUNDARIES)
        return PAPER_STEP_FACTORS[index]
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(max(epoch, 0), epochs) / max(epochs, 1)
        return float(0.5 * (1.0 + math.cos(math.pi * progress)))
    raise config_error(f"lr_schedule: unknown schedule {schedule!r}; choose one of: {', '.join(LR_SCHEDULES)}")


class LRFactor:
    """Picklable ``epoch -> factor`` callable for :class:`torch.optim.lr_scheduler.LambdaLR`.

    A class rather than a lambda so the scheduler's state dict holds only plain values
    (checkpoints stay loadable with ``torch.load(weights_only=True)``).

    Example:
        >>> LRFactor("paper_step", 50)(16)
        0.1
    """

    def __init__(self, schedule: str, epochs: int) -> None:
        self.schedule = schedule
        self.epochs = int(epochs)

    def __call__(self, epoch: int) -> float:
        return lr_factor(self.schedule, epoch, self.epochs)
