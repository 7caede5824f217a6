"""The cosine schedule under a wall-time budget ends when the budget does (issue 15)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from focusnet.engine.callbacks import BudgetCosine, budget_progress
from focusnet.engine.config import TrainConfig
from focusnet.engine.trainer import build_trainer
from tests.helpers import FakeTimer


@pytest.mark.parametrize(
    ("epoch_fraction", "elapsed", "remaining", "expected"),
    [(0.0, 0.0, 100.0, 0.0), (0.5, 10.0, 90.0, 0.5), (0.1, 75.0, 25.0, 0.75), (0.2, 200.0, 0.0, 1.0), (1.5, 0.0, 9.0, 1.0)],
)
def test_budget_progress_is_the_larger_fraction(epoch_fraction: float, elapsed: float, remaining: float, expected: float) -> None:
    assert budget_progress(epoch_fraction, elapsed, remaining) == pytest.approx(expected)


def test_the_budget_binds_before_the_epochs() -> None:
    # 23 of 50 epochs done when the budget is spent: the epoch cosine would still be at 0.62x
    cb = BudgetCosine(FakeTimer(elapsed=1500.0, remaining=0.0), epochs=50)  # type: ignore[arg-type]
    assert cb.factor(epoch=23, batch_idx=0, batches=44) == pytest.approx(0.0, abs=1e-12)
    half = BudgetCosine(FakeTimer(elapsed=750.0, remaining=750.0), epochs=50)  # type: ignore[arg-type]
    assert half.factor(epoch=10, batch_idx=0, batches=44) == pytest.approx(0.5)


def test_the_epochs_bind_when_they_end_first() -> None:
    cb = BudgetCosine(FakeTimer(elapsed=1.0, remaining=1e6), epochs=4)  # type: ignore[arg-type]
    assert cb.factor(epoch=2, batch_idx=0, batches=10) == pytest.approx(0.5)
    assert cb.factor(epoch=2, batch_idx=5, batches=10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 2.5 / 4)))


def test_the_callback_sets_every_group_from_its_base_lr() -> None:
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.Adam([{"params": params[:1], "lr": 1e-3}, {"params": params[1:], "lr": 2e-3}])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)

    class _Cfg:
        scheduler = sched

    class _Trainer:
        lr_scheduler_configs = [_Cfg()]
        num_training_batches = 10
        current_epoch = 0

    cb = BudgetCosine(FakeTimer(elapsed=50.0, remaining=50.0), epochs=1000)  # type: ignore[arg-type]
    cb.on_train_batch_start(_Trainer(), None, None, 0)  # type: ignore[arg-type]
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5e-3, 1e-3])


@pytest.mark.parametrize(("schedule", "minutes", "expected"), [("cosine", 5.0, True), ("cosine", None, False), ("constant", 5.0, False)])
def test_the_trainer_uses_it_only_for_a_budgeted_cosine(tmp_path: Path, schedule: str, minutes: float | None, expected: bool) -> None:
    config = TrainConfig(lr_schedule=schedule, max_minutes=minutes, progress_bar=False)
    trainer = build_trainer(config, tmp_path, distributed=False)
    assert any(isinstance(cb, BudgetCosine) for cb in trainer.callbacks) is expected
