"""Progressive resizing (config ``warmup_size``): early training steps on smaller batches (issue 15)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from focusnet.engine.callbacks import ProgressiveResize, run_progress
from focusnet.engine.config import TrainConfig
from focusnet.engine.module import resize_batch
from focusnet.engine.trainer import build_trainer
from focusnet.errors import FocusNetError
from tests.helpers import FakeTimer, tiny_train_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_resize_batch_keeps_masks_binary_and_regions_in_place() -> None:
    images = torch.full((2, 3, 32, 32), 0.25)
    masks = torch.zeros(2, 1, 32, 32)
    masks[:, :, :, :16] = 1.0  # the left half
    x, y = resize_batch(images, masks, 24)
    assert x.shape == (2, 3, 24, 24) and y.shape == (2, 1, 24, 24)
    assert torch.allclose(x, torch.full_like(x, 0.25), atol=1e-6)  # a constant image stays constant
    assert set(y.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(y[..., :12], torch.ones_like(y[..., :12])) and torch.equal(y[..., 12:], torch.zeros_like(y[..., 12:]))
    same = resize_batch(images, masks, 32)
    assert same[0] is images and same[1] is masks  # already at that size: untouched


def test_the_warmup_size_holds_until_its_share_of_the_epochs_or_the_budget() -> None:
    by_epochs = ProgressiveResize(16, share=0.4, epochs=10)
    assert [by_epochs.size_at(e, 0, 4) for e in (0, 3, 4, 9)] == [16, 16, None, None]
    assert by_epochs.size_at(3, 3, 4) == 16 and run_progress(None, 10, 3, 3, 4) == pytest.approx(0.375)
    # the budget binds first: 60% of the time gone after one epoch of ten
    budget = ProgressiveResize(16, share=0.5, epochs=10, timer=FakeTimer(elapsed=60.0, remaining=40.0))  # type: ignore[arg-type]
    assert budget.size_at(1, 0, 4) is None
    early = ProgressiveResize(16, share=0.5, epochs=10, timer=FakeTimer(elapsed=10.0, remaining=90.0))  # type: ignore[arg-type]
    assert early.size_at(1, 0, 4) == 16


def test_config_checks_the_warmup_size() -> None:
    with pytest.raises(FocusNetError, match="warmup_size"):
        TrainConfig(size=64, warmup_size=64)
    with pytest.raises(FocusNetError, match="warmup_share"):
        TrainConfig(size=64, warmup_size=32, warmup_share=1.5)
    assert TrainConfig(size=64, warmup_size=32).warmup_share == 0.5


@pytest.mark.parametrize(("warmup_size", "expected"), [(16, True), (None, False)])
def test_the_trainer_adds_the_callback_only_when_asked(tmp_path: Path, warmup_size: int | None, expected: bool) -> None:
    config = TrainConfig(size=32, warmup_size=warmup_size, progress_bar=False)
    trainer = build_trainer(config, tmp_path, distributed=False)
    assert any(isinstance(cb, ProgressiveResize) for cb in trainer.callbacks) is expected


def test_training_runs_the_first_epoch_small_and_validates_at_full_size(lesions: Path, tmp_path: Path) -> None:
    """Two epochs, half of them at the warmup size: the model sees 16x16 batches in epoch 0 only, and
    32x32 for every validation batch."""
    from focusnet.engine import train as train_mod
    from focusnet.engine.module import SegmentationModule

    seen: list[tuple[bool, int]] = []
    real_step = SegmentationModule._run

    def recording(self, images: torch.Tensor) -> torch.Tensor:
        seen.append((self.training, int(images.shape[-1])))
        return real_step(self, images)

    cache = tmp_path / "cache"
    config = tiny_train_config(lesions, tmp_path / "run", cache, epochs=2, warmup_size=16, warmup_share=0.5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SegmentationModule, "_run", recording)
        train_mod.train(config)
    train_sizes = [size for training, size in seen if training]
    assert train_sizes[0] == 16 and train_sizes[-1] == 32
    assert train_sizes == sorted(train_sizes)  # small first, then full size, never back
    assert {size for training, size in seen if not training} == {32}


def test_a_warmup_size_the_model_cannot_take_is_refused_before_anything_is_written(lesions: Path, tmp_path: Path, capsys) -> None:
    from focusnet.cli import main

    run, cache = tmp_path / "run", tmp_path / "prepared"
    args = ["train", str(CONFIGS / "demo.yaml"), f"data.source={lesions}", f"data.cache_dir={cache}", "size=64",
            "warmup_size=40", "--out", str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "warmup_size: 40" in err and "warmup_size=32 or warmup_size=48" in err and err.count("\n") == 1
    assert not run.exists() and not cache.exists()
