"""The weight EMA (config ``ema_decay``): the average is exact, and validation, checkpoints and the
test score all use it (issue 15's budget recipe)."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from focusnet.engine.callbacks import WeightEMA, ema_decay_at
from focusnet.engine.config import TrainConfig
from focusnet.engine.trainer import build_trainer
from focusnet.errors import FocusNetError
from tests.helpers import tiny_train_config


class _Line(L.LightningModule):
    """y = w x + b trained with plain SGD; records the raw weights after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.raw: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201 - Lightning's signature
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.raw.append(torch.cat([p.detach().flatten() for p in self.layer.parameters()]).clone())

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_the_average_is_the_exponential_moving_average_of_the_steps(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(12, 3), torch.randn(12, 1))
    module = _Line()
    decay = 0.6
    trainer = L.Trainer(
        max_epochs=1, callbacks=[WeightEMA(decay)], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu",
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=3))
    assert len(module.raw) == 4
    expected = module.raw[0]  # the first update copies, each later one blends
    for count, raw in enumerate(module.raw[1:], start=1):
        d = ema_decay_at(decay, count)
        expected = d * expected + (1 - d) * raw
    final = torch.cat([p.detach().flatten() for p in module.layer.parameters()])
    assert not torch.allclose(final, module.raw[-1])  # the model ends with the average, not the last step
    # float32 blends of values of order 1: a few ulps per step
    assert torch.allclose(final, expected, rtol=0, atol=1e-6 * float(expected.abs().max()))


def test_the_decay_warms_up_to_the_configured_one() -> None:
    decays = [ema_decay_at(0.995, n) for n in range(3000)]
    assert decays[0] == 0.1 and decays[-1] == 0.995
    assert all(a <= b for a, b in zip(decays, decays[1:]))


def test_the_trainer_adds_it_only_when_asked(tmp_path: Path) -> None:
    def has_ema(config: TrainConfig) -> bool:
        return any(isinstance(cb, WeightEMA) for cb in build_trainer(config, tmp_path, distributed=False).callbacks)

    assert not has_ema(TrainConfig(progress_bar=False))
    assert has_ema(TrainConfig(progress_bar=False, ema_decay=0.99))
    for bad in (0.0, 1.0, 1.5, "0.9", True):
        with pytest.raises(FocusNetError, match="ema_decay"):
            TrainConfig(ema_decay=bad)


def test_checkpoints_weights_and_the_test_score_use_the_average(lesions: Path, tmp_path: Path) -> None:
    from focusnet.engine.evaluate import evaluate_checkpoint
    from focusnet.engine.train import train

    cache = lesions.parent / f"{lesions.name}-prepared"
    run = train(tiny_train_config(lesions, tmp_path / "ema", cache, epochs=2, ema_decay=0.5, lr=3e-3))
    ckpt = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)
    average, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert average.keys() == raw.keys()
    assert any(not torch.equal(average[k], raw[k]) for k in average if average[k].is_floating_point())
    saved = load_file(str(run / "weights" / "best.safetensors"))
    for name, tensor in saved.items():
        assert torch.equal(tensor, average[f"model.{name}"]), name  # the weights for use are the average
    # the test split was scored with the averaged weights that evaluate_checkpoint reads from best.ckpt
    written = json.loads((run / "summary.json").read_text())["per_image"]
    assert evaluate_checkpoint(run, split="test")["per_image"] == written


def test_a_resumed_run_continues_the_same_average(lesions: Path, tmp_path: Path) -> None:
    from focusnet.engine.train import resume, train

    cache = lesions.parent / f"{lesions.name}-prepared"
    whole = train(tiny_train_config(lesions, tmp_path / "whole", cache, epochs=2, ema_decay=0.7))
    part = train(tiny_train_config(lesions, tmp_path / "part", cache, epochs=1, ema_decay=0.7))
    resume(part, ["epochs=2"])
    for which in ("last", "best"):
        a, b = (load_file(str(run / "weights" / f"{which}.safetensors")) for run in (whole, part))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), which
