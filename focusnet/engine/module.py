"""The LightningModule: a segmentation model trained with ALL-HL.

:class:`SegmentationModule` wraps any model that returns logits (B, 1, H, W). Per epoch it logs
``train_loss``, ``val_loss``, ``val_dice`` (per-image mean Dice at the probability threshold, with
an empty prediction of an empty mask scoring 1 as in ISIC) and ``lr``.

* The loss is computed in float32 even under mixed precision (autocast is switched off around it).
* A model with an ``l2_penalty()`` method (Keras-style L2 on its kernels) has it added to the loss.
* A model with ``deep_supervision=True`` and a ``forward_all`` method is trained on every head:
  the loss is the mean of the heads' losses (heads of another size are resized to the mask).
* Optional batch augmentation (flips, 90-degree and free rotations, colour jitter) in torch, on the
  device, per image (:func:`augment_batch`); off by default, as in the paper. Optional progressive
  resizing (config ``warmup_size``: :func:`resize_batch` at :attr:`SegmentationModule.train_size`).
* On a CUDA device the model runs through :class:`~focusnet.engine.cuda_graphs.GraphedModel`
  (forward and backward replayed as CUDA graphs; ``cuda_graphs="auto"``, the default, graphs
  single-device ``32-true`` and ``bf16-mixed`` runs; ``"off"`` runs eagerly). The loss, the
  optimiser step and the augmentation stay eager; the state_dict is the model's own.
* Validation and test metrics come from per-image TP/FP/FN/TN gathered from every process (and
  de-duplicated by item index, since DDP pads the last shard), never from one process's shard.

Example:
    >>> import torch.nn as nn
    >>> from focusnet.engine.config import TrainConfig
    >>> module = SegmentationModule.from_config(nn.Conv2d(3, 1, 3, padding=1), TrainConfig(size=32))
    >>> module.threshold_logit
    0.0
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, cast

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import nn

from focusnet.engine.config import AugmentConfig, LRFactor, TrainConfig
from focusnet.engine.cuda_graphs import GraphedModel, graph_mode_applies
from focusnet.losses import create_loss
from focusnet.metrics import confusion_counts, metrics_from_counts

__all__ = ["EPOCH_ROW_KEY", "SegmentationModule", "augment_batch", "gather_counts", "resize_batch"]

EPOCH_ROW_KEY = "focusnet_epoch_train_row"
"""Checkpoint key of the saving epoch's ``{"epoch", "train_loss", "lr"}`` (see ``on_save_checkpoint``)."""


# ------------------------------------------------------------------------------- augmentation
def _pick(n: int, p: float, device: torch.device) -> torch.Tensor:
    return torch.rand(n, device=device) < p if p > 0 else torch.zeros(n, dtype=torch.bool, device=device)


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, cfg: AugmentConfig | dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, rotations, zoom and colour jitter, drawn per image from torch's global RNG.

    Geometric transforms are applied to the masks too (nearest for free rotations and zoom); colour jitter to
    the images only, which stay in [0, 1].

    Example:
        >>> x, y = torch.rand(4, 3, 8, 8), (torch.rand(4, 1, 8, 8) > 0.5).float()
        >>> a, b = augment_batch(x, y, {"enabled": True, "hflip": 1.0, "vflip": 0.0, "rot90": 0.0})
        >>> torch.equal(a, x.flip(-1)) and torch.equal(b, y.flip(-1))
        True
    """
    if isinstance(cfg, dict):
        cfg = AugmentConfig(**cfg)
    if not cfg.enabled:
        return images, masks
    x, y = images.clone(), masks.clone()
    n, dev = x.shape[0], x.device
    for p, dim in ((cfg.hflip, -1), (cfg.vflip, -2)):
        sel = _pick(n, p, dev)
        if sel.any():
            x[sel], y[sel] = x[sel].flip(dim), y[sel].flip(dim)
    if cfg.rot90 > 0 and x.shape[-1] == x.shape[-2]:
        sel = _pick(n, cfg.rot90, dev)
        k = torch.randint(1, 4, (n,), device=dev)
        for turns in (1, 2, 3):
            s = sel & (k == turns)
            if s.any():
                x[s], y[s] = torch.rot90(x[s], turns, (-2, -1)), torch.rot90(y[s], turns, (-2, -1))
    if cfg.rotate > 0 or cfg.scale > 0 or cfg.zoom_in > 0:
        angle = (torch.rand(n, device=dev) * 2 - 1) * math.radians(cfg.rotate)
        # the grid maps output to input coordinates, so a zoom by z samples the input at 1 / z
        shrink = 1 / (1 + (torch.rand(n, device=dev) * 2 - 1) * cfg.scale) if cfg.scale > 0 else torch.ones_like(angle)
        if cfg.zoom_in > 0:
            zoom = 1 + torch.rand(n, device=dev) * cfg.zoom_in
            if cfg.zoom_in_p < 1:  # drawn only then, so that zoom_in alone keeps its random stream
                zoom = torch.where(_pick(n, cfg.zoom_in_p, dev), zoom, torch.ones_like(zoom))
            if cfg.zoom_in_min_area > 0:  # the foreground share of each (untransformed) mask
                large = (y > 0).flatten(1).float().mean(dim=1) >= cfg.zoom_in_min_area
                zoom = torch.where(large, zoom, torch.ones_like(zoom))
            shrink = shrink / zoom
        cos, sin = torch.cos(angle) * shrink, torch.sin(angle) * shrink
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        y = F.grid_sample(y, grid.to(y.dtype), mode="nearest", padding_mode="reflection", align_corners=False)
    view = (n, 1, 1, 1)
    if cfg.brightness > 0:
        x = x * (1 + (torch.rand(view, device=dev) * 2 - 1) * cfg.brightness)
    if cfg.contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (1 + (torch.rand(view, device=dev) * 2 - 1) * cfg.contrast) + mean
    if cfg.saturation > 0 and x.shape[1] == 3:
        grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        x = (x - grey) * (1 + (torch.rand(view, device=dev) * 2 - 1) * cfg.saturation) + grey
    if cfg.brightness > 0 or cfg.contrast > 0 or cfg.saturation > 0:
        x = x.clamp(0.0, 1.0)
    return x, y


def resize_batch(images: torch.Tensor, masks: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch at ``size x size``: images bilinear (antialiased when shrinking), masks by the share
    of foreground each output pixel covers (area), thresholded at one half, so they stay binary.

    Example:
        >>> x, y = torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8)
        >>> a, b = resize_batch(x, y, 4)
        >>> tuple(a.shape), bool((b == 1).all())
        ((2, 3, 4, 4), True)
    """
    if tuple(images.shape[-2:]) == (size, size):
        return images, masks
    x = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    y = (F.interpolate(masks.float(), size=(size, size), mode="area") >= 0.5).to(masks.dtype)
    return x, y


# ------------------------------------------------------------------------------------ metrics
def gather_counts(
    module: L.LightningModule, counts: list[torch.Tensor], index: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image counts (N, 4) and item indices (N,) from every process, de-duplicated, sorted by index.

    DDP's sampler pads the shards to equal length by repeating items; an item seen twice is kept once.
    """
    device = module.device
    local_counts = torch.cat(counts).to(device) if counts else torch.zeros((0, 4), dtype=torch.int64, device=device)
    local_index = torch.cat(index).to(device) if index else torch.zeros((0,), dtype=torch.int64, device=device)
    if module.trainer is not None and module.trainer.world_size > 1:
        # all_gather returns the container it is given: here a tensor
        all_counts = cast(torch.Tensor, module.all_gather(local_counts)).reshape(-1, 4)
        all_index = cast(torch.Tensor, module.all_gather(local_index)).reshape(-1)
    else:
        all_counts, all_index = local_counts, local_index
    all_counts, all_index = all_counts.cpu(), all_index.cpu()
    order = torch.argsort(all_index, stable=True)
    all_index, all_counts = all_index[order], all_counts[order]
    keep = torch.ones_like(all_index, dtype=torch.bool)
    keep[1:] = all_index[1:] != all_index[:-1]
    return all_counts[keep], all_index[keep]


class SegmentationModule(L.LightningModule):
    """Train a logits-returning segmentation model with ALL-HL and track validation Dice.

    Args:
        model: ``nn.Module`` mapping (B, C, H, W) images to (B, 1, H, W) logits.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        lr, betas, eps, weight_decay, momentum, nesterov: optimiser settings.
        lr_schedule: ``"paper_step"``, ``"constant"`` or ``"cosine"`` (per epoch).
        epochs: number of epochs (the cosine schedule's length).
        loss: the loss's ``name`` and keyword arguments (:func:`~focusnet.losses.create_loss`; ALL-HL by default).
        threshold: probability threshold of the predicted masks; applied to the logits as
            ``logits > log(t / (1 - t))`` (``logits > 0`` at 0.5), which equals ``sigmoid > t``.
        augment: :class:`~focusnet.engine.config.AugmentConfig` settings (a dict).
        channels_last: feed the model ``channels_last`` tensors.
        cuda_graphs: ``auto``, ``on`` or ``off`` (see :func:`~focusnet.engine.cuda_graphs.graph_mode_applies`).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: str = "adam",
        lr: float = 1e-4,
        betas: Sequence[float] = (0.9, 0.999),
        eps: float = 1e-7,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        nesterov: bool = False,
        lr_schedule: str = "paper_step",
        epochs: int = 50,
        loss: dict[str, Any] | None = None,
        threshold: float = 0.5,
        augment: dict[str, Any] | None = None,
        channels_last: bool = False,
        cuda_graphs: str = "auto",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        # torch's stubs omit Module.to's memory_format keyword
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model  # type: ignore[call-overload]
        self.loss_fn = create_loss(loss)
        self.threshold_logit = float(math.log(threshold / (1.0 - threshold)))
        self.augment = AugmentConfig(**(augment or {}))
        self.train_size: int | None = None
        """Square size training batches are resized to (set by
        :class:`~focusnet.engine.callbacks.ProgressiveResize`); None: the batch as loaded."""
        self._counts: list[torch.Tensor] = []
        self._index: list[torch.Tensor] = []
        self.test_counts: torch.Tensor | None = None
        self.test_index: torch.Tensor | None = None
        # this epoch's training row, for the checkpoint (on_save_checkpoint)
        self._epoch_loss_sum: torch.Tensor | float = 0.0
        self._epoch_loss_count = 0
        self._epoch_lr: float | None = None
        self._epoch_started: float | None = None
        self._train_seconds: float | None = None
        # not a submodule (the state_dict stays the model's): set up in on_fit_start where it applies
        self.__dict__["_graphed"] = None
        self.graph_reason = "not set up"

    @classmethod
    def from_config(cls, model: nn.Module, config: TrainConfig) -> SegmentationModule:
        """The module for ``model`` with the optimiser, schedule, loss and threshold of ``config``."""
        return cls(
            model,
            optimizer=config.optimizer,
            lr=config.lr,
            betas=list(config.betas),
            eps=config.eps,
            weight_decay=config.weight_decay,
            momentum=config.momentum,
            nesterov=config.nesterov,
            lr_schedule=config.lr_schedule,
            epochs=config.epochs,
            loss=dict(config.loss),
            threshold=config.threshold,
            augment=config.to_dict()["augment"],
            channels_last=config.channels_last,
            cuda_graphs=config.cuda_graphs,
        )

    # ----------------------------------------------------------------------------------- steps
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def on_fit_start(self) -> None:
        trainer = self.trainer
        applies, self.graph_reason = graph_mode_applies(
            self.hparams.get("cuda_graphs", "auto"), str(self.device), str(trainer.precision), trainer.world_size
        )
        self.__dict__["_graphed"] = GraphedModel(self.model) if applies else None

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        """The model's logits, through its CUDA graphs where they apply."""
        graphed = self.__dict__.get("_graphed")
        return graphed(images) if graphed is not None else self.model(images)

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self._hp.channels_last else images

    @property
    def _hp(self) -> Any:
        """The saved constructor arguments (Lightning's ``AttributeDict``), read by attribute."""
        return self.hparams

    def predict_masks(self, images: torch.Tensor) -> torch.Tensor:
        """Boolean masks (B, 1, H, W) at the module's threshold."""
        return self.model(self._inputs(images)) > self.threshold_logit

    def _loss(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """The loss in float32 (autocast off), resizing a head of another size to the mask."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.float()
            if logits.shape[-2:] != masks.shape[-2:]:
                logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
            return self.loss_fn(logits, masks.float())

    def _penalty(self) -> torch.Tensor | float:
        fn = getattr(self.model, "l2_penalty", None)
        return fn().float() if callable(fn) else 0.0

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, masks = batch[0], batch[1]
        images, masks = augment_batch(images, masks, self.augment)
        if self.train_size is not None:
            images, masks = resize_batch(images, masks, self.train_size)
        images = self._inputs(images)
        forward_all = getattr(self.model, "forward_all", None)
        if getattr(self.model, "deep_supervision", False) and callable(forward_all):
            heads = forward_all(images)
            loss = torch.stack([self._loss(h, masks) for h in heads]).mean()
        else:
            loss = self._loss(self._run(images), masks)
        loss = loss + self._penalty()
        n = images.shape[0]
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        self._epoch_loss_sum = self._epoch_loss_sum + loss.detach().float() * n  # float64 is not on every device
        self._epoch_loss_count += images.shape[0]
        return loss

    def on_train_epoch_start(self) -> None:
        optimizer = self.optimizers()
        opt = optimizer[0] if isinstance(optimizer, list) else optimizer
        self._epoch_lr = float(opt.param_groups[0]["lr"])
        self._epoch_loss_sum, self._epoch_loss_count = 0.0, 0
        self.log("lr", self._epoch_lr, on_step=False, on_epoch=True, sync_dist=True)
        self._epoch_started, self._train_seconds = time.perf_counter(), None

    def _training_done(self) -> None:
        """Clock the epoch's training batches (validation excluded), once, after the device finished."""
        if self._train_seconds is None and self._epoch_started is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self._train_seconds = time.perf_counter() - self._epoch_started

    def on_train_epoch_end(self) -> None:
        self._training_done()
        if self._train_seconds is not None:  # metrics.csv: seconds of this epoch's training batches
            self.log("train_seconds", self._train_seconds, on_step=False, on_epoch=True, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store this epoch's training row (``train_loss``, ``lr``) in the checkpoint.

        Lightning saves the epoch's checkpoints at the end of validation but logs the epoch's
        training metrics after that; a run stopped in between would resume without that row in
        ``metrics.csv``. :func:`focusnet.engine.train.resume` restores it from here (the loss is
        this process's batch-size-weighted mean, which with several GPUs is rank 0's share).
        """
        if self._epoch_loss_count:
            checkpoint[EPOCH_ROW_KEY] = {
                "epoch": int(self.current_epoch),
                "train_loss": float(self._epoch_loss_sum / self._epoch_loss_count),
                # as the logger wrote it: self.log keeps a float32 tensor
                "lr": None if self._epoch_lr is None else float(torch.tensor(self._epoch_lr, dtype=torch.float32)),
            }

    def _eval_step(self, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        images, masks = batch[0], batch[1]
        logits = self._run(self._inputs(images))
        self._counts.append(confusion_counts(logits > self.threshold_logit, masks > 0.5).cpu())
        self._index.append(batch[2].cpu() if len(batch) > 2 else torch.arange(len(images)))
        return logits

    def on_validation_epoch_start(self) -> None:
        self._training_done()  # validation runs inside the training epoch, before on_train_epoch_end
        self._counts, self._index = [], []

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        logits = self._eval_step(batch)
        loss = self._loss(logits, batch[1]) + self._penalty()
        n = batch[0].shape[0]
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        counts, _ = gather_counts(self, self._counts, self._index)
        self._counts, self._index = [], []
        if len(counts):
            dice = metrics_from_counts(counts, empty_score=1.0)["dice"]
            # the same value on every process (computed from the gathered counts): no further sync
            self.log("val_dice", float(dice.mean()), prog_bar=True, sync_dist=False, rank_zero_only=False)

    def on_test_epoch_start(self) -> None:
        self._counts, self._index = [], []

    def test_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self.test_counts, self.test_index = gather_counts(self, self._counts, self._index)
        self._counts, self._index = [], []

    def on_train_start(self) -> None:
        # A resumed run restores the schedule's settings from its checkpoint; a changed `epochs`
        # (resume with epochs=N) must reshape the schedule, so set them again from this run's config.
        for cfg in self.trainer.lr_scheduler_configs:
            sched = cfg.scheduler
            fns = getattr(sched, "lr_lambdas", [])
            changed = False
            for fn in fns:
                hp = self._hp
                if isinstance(fn, LRFactor) and (fn.epochs, fn.schedule) != (hp.epochs, hp.lr_schedule):
                    fn.epochs, fn.schedule, changed = int(hp.epochs), hp.lr_schedule, True
            if changed:
                for group, base, fn in zip(sched.optimizer.param_groups, sched.base_lrs, fns):
                    group["lr"] = base * fn(sched.last_epoch)
                sched._last_lr = [g["lr"] for g in sched.optimizer.param_groups]

    # ------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        hp = self._hp
        params = self.model.parameters()
        optimizer: torch.optim.Optimizer
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                params, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay
            )
        else:
            cls = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
            optimizer = cls(params, lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps, weight_decay=hp.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LRFactor(hp.lr_schedule, hp.epochs))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1}}
