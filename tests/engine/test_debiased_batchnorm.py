"""BatchNorm running statistics debiased from their start values (config ``debias_bn_stats``): the
statistics are the normalised exponential average of the batch statistics, training is unchanged,
and evaluation works from the first epoch at the Keras momentum (issue 18's collapse)."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn as nn

from focusnet.engine.callbacks import DebiasedBatchNorm
from focusnet.engine.config import TrainConfig
from focusnet.engine.trainer import build_trainer
from focusnet.errors import FocusNetError


class _Net(L.LightningModule):
    """A conv, a BatchNorm applied once per step (momentum 0.01), one applied twice per step (0.3, as
    R2U-Net's recurrent blocks reuse theirs) and one without a counter; records the batch statistics
    of every application (four per step)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.once = nn.BatchNorm2d(3, momentum=0.01)
        self.twice = nn.BatchNorm2d(3, momentum=0.3)
        self.frozen = nn.BatchNorm2d(3, momentum=0.1)
        self.frozen.num_batches_tracked = None  # PyTorch then neither counts nor needs the counter
        self.stats: list[tuple[torch.Tensor, ...]] = []

    def _record(self, x: torch.Tensor) -> None:
        if self.training:
            z = x.detach().double()
            self.stats.append((z.mean((0, 2, 3)), z.var((0, 2, 3), unbiased=True)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        self._record(y)
        z = self.once(y) * 2 + 1
        self._record(z)
        w = torch.relu(self.twice(z)) * 0.5
        self._record(w)
        v = self.twice(w)
        self._record(v)
        return self.frozen(v)

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201 - Lightning's signature
        return self(batch[0]).square().mean()

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _fit(module: _Net, callbacks: list, tmp_path: Path, steps: int = 6) -> None:
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(4 * steps, 2, 6, 6) * 3 + 2)
    L.Trainer(max_epochs=1, callbacks=callbacks, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu").fit(
        module, torch.utils.data.DataLoader(data, batch_size=4))


def _normalised_average(values: list[torch.Tensor], momentum: float) -> torch.Tensor:
    """sum_i m (1 - m)^(n - i) x_i / (1 - (1 - m)^n), in float64."""
    beta, n = 1.0 - momentum, len(values)
    total = sum(momentum * beta ** (n - 1 - i) * v for i, v in enumerate(values))
    return total / (1.0 - beta ** n)


def test_running_statistics_are_the_normalised_average_of_the_batch_statistics(tmp_path: Path) -> None:
    torch.manual_seed(1)
    module = _Net()
    frozen = (module.frozen.running_mean.clone(), module.frozen.running_var.clone())
    callback = DebiasedBatchNorm()
    _fit(module, [callback], tmp_path)
    steps = [module.stats[4 * i:4 * i + 4] for i in range(6)]
    once, twice, frozen_in = [s[0] for s in steps], [x for s in steps for x in s[1:3]], [s[3] for s in steps]
    for layer, stats, momentum in ((module.once, once, 0.01), (module.twice, twice, 0.3)):
        assert int(layer.num_batches_tracked) == len(stats)
        for running, which in ((layer.running_mean, 0), (layer.running_var, 1)):
            expected = _normalised_average([s[which] for s in stats], momentum)
            # float32 statistics of order 10, corrected in float64: a few float32 ulps of the scale
            tol = 1e-5 * float(expected.abs().max())
            assert torch.allclose(running.double(), expected, rtol=0, atol=tol), (layer.momentum, which)
    # PyTorch's raw average at momentum 0.01 would keep 94% of the start value 1 after 6 steps
    raw_once = sum(0.01 * 0.99 ** (5 - i) * s[1] for i, s in enumerate(once)) + 0.99 ** 6
    assert float((module.once.running_var.double() - raw_once).abs().min()) > 0.1 * float(raw_once.max())
    # the layer without a counter keeps PyTorch's raw average from its start values
    beta = 0.9
    raw_mean = sum(0.1 * beta ** (5 - i) * s[0] for i, s in enumerate(frozen_in)) + beta ** 6 * frozen[0].double()
    raw_var = sum(0.1 * beta ** (5 - i) * s[1] for i, s in enumerate(frozen_in)) + beta ** 6 * frozen[1].double()
    for running, raw in ((module.frozen.running_mean, raw_mean), (module.frozen.running_var, raw_var)):
        assert torch.allclose(running.double(), raw, rtol=0, atol=1e-5 * float(raw.abs().max()))


def test_training_is_unchanged_and_the_correction_stops_when_negligible(tmp_path: Path) -> None:
    torch.manual_seed(2)
    plain, debiased = _Net(), _Net()
    debiased.load_state_dict(plain.state_dict())
    _fit(plain, [], tmp_path)
    callback = DebiasedBatchNorm()
    _fit(debiased, [callback], tmp_path)
    for (name, a), b in zip(plain.named_parameters(), debiased.parameters()):
        assert torch.equal(a, b), name  # training never reads the running statistics
    assert not torch.allclose(plain.once.running_var, debiased.once.running_var)
    # momentum 0.3 applied twice per step: 0.7^12 > 1e-7, still corrected; 0.01: far from negligible
    assert not callback.done
    callback.NEGLIGIBLE = 0.5  # every layer's start-value weight is below 0.5 after 6 steps of 0.3 x2, not 0.01
    _fit(debiased, [callback], tmp_path, steps=1)
    assert [t.layer for t in callback._layers] == [debiased.once]


def test_the_trainer_adds_it_unless_switched_off(tmp_path: Path) -> None:
    def has_it(config: TrainConfig) -> bool:
        trainer = build_trainer(config, tmp_path, distributed=False)
        return any(isinstance(cb, DebiasedBatchNorm) for cb in trainer.callbacks)

    assert has_it(TrainConfig(progress_bar=False))
    assert not has_it(TrainConfig(progress_bar=False, debias_bn_stats=False))
    with pytest.raises(FocusNetError, match="debias_bn_stats"):
        TrainConfig(debias_bn_stats="yes")
