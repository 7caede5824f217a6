"""The LightningModule: a segmentation model trained with ALL-HL.

:class:`SegmentationModule` wraps any model that returns logits (B, 1, H, W). Per epoch it logs
``train_loss``, ``val_loss``, ``val_dice`` (per-image mean Dice at the probability threshold, with
an empty prediction of an empty mask scoring 1 as in ISIC) and ``lr``. The optimiser is Adam with a
per-epoch :class:`~torch.optim.lr_scheduler.LambdaLR` schedule (see
:func:`focusnet.engine.config.lr_factor`).

Example:
    >>> import torch.nn as nn
    >>> from focusnet.engine.config import TrainConfig
    >>> module = SegmentationModule.from_config(nn.Conv2d(3, 1, 3, padding=1), TrainConfig(size=32))
    >>> module.threshold_logit
    0.0
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import lightning as L
import torch
from torch import nn

from focusnet.engine.config import LRFactor, TrainConfig
from focusnet.losses import ALLHybridLoss
from focusnet.metrics import confusion_counts, metrics_from_counts

__all__ = ["SegmentationModule"]


class SegmentationModule(L.LightningModule):
    """Train a logits-returning segmentation model with ALL-HL and track validation Dice.

    Args:
        model: ``nn.Module`` mapping (B, C, H, W) images to (B, 1, H, W) logits.
        lr, betas, eps, weight_decay: Adam settings.
        lr_schedule: ``"paper_step"``, ``"constant"`` or ``"cosine"`` (per epoch).
        epochs: number of epochs (the cosine schedule's length).
        loss: keyword arguments of :class:`~focusnet.losses.ALLHybridLoss`.
        threshold: probability threshold of the predicted masks; applied to the logits as
            ``logits > log(t / (1 - t))`` (``logits > 0`` at 0.5), which equals ``sigmoid > t``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        lr: float = 1e-4,
        betas: Sequence[float] = (0.9, 0.999),
        eps: float = 1e-7,
        weight_decay: float = 0.0,
        lr_schedule: str = "paper_step",
        epochs: int = 50,
        loss: dict[str, Any] | None = None,
        threshold: float = 0.5,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.loss_fn = ALLHybridLoss(**(loss or {}))
        self.threshold_logit = float(math.log(threshold / (1.0 - threshold)))
        self._val_counts: list[torch.Tensor] = []

    @classmethod
    def from_config(cls, model: nn.Module, config: TrainConfig) -> "SegmentationModule":
        """The module for ``model`` with the optimiser, schedule, loss and threshold of ``config``."""
        return cls(
            model,
            lr=config.lr,
            betas=list(config.betas),
            eps=config.eps,
            weight_decay=config.weight_decay,
            lr_schedule=config.lr_schedule,
            epochs=config.epochs,
            loss=dict(config.loss),
            threshold=config.threshold,
        )

    # ----------------------------------------------------------------------------------- steps
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def predict_masks(self, images: torch.Tensor) -> torch.Tensor:
        """Boolean masks (B, 1, H, W) at the module's threshold."""
        return self.model(images) > self.threshold_logit

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, masks = batch[0], batch[1]
        loss = self.loss_fn(self.model(images), masks)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=images.shape[0])
        return loss

    def on_train_epoch_start(self) -> None:
        optimizer = self.optimizers()
        lr = optimizer.param_groups[0]["lr"] if not isinstance(optimizer, list) else optimizer[0].param_groups[0]["lr"]
        self.log("lr", lr, on_step=False, on_epoch=True)

    def on_validation_epoch_start(self) -> None:
        self._val_counts = []

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        images, masks = batch[0], batch[1]
        logits = self.model(images)
        loss = self.loss_fn(logits, masks)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=images.shape[0])
        self._val_counts.append(confusion_counts(logits > self.threshold_logit, masks > 0.5).cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_counts:
            return
        counts = torch.cat(self._val_counts)
        self._val_counts = []
        dice = metrics_from_counts(counts, empty_score=1.0)["dice"]
        self.log("val_dice", float(dice.mean()), prog_bar=True)

    # ------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = torch.optim.Adam(
            self.model.parameters(), lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps, weight_decay=hp.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LRFactor(hp.lr_schedule, hp.epochs))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1}}
