"""``create_model(..., ensemble=N)``: the mean-probability logit, independent members, training each
member on its own loss, and an ensemble through the whole toolkit (train, weights, predict, export)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from focusnet.errors import FocusNetError
from focusnet.models import create_model
from focusnet.models.ensemble import ProbabilityEnsemble, mean_probability_logit
from tests.helpers import TINY_FOCUSNETPP, tiny_train_config
from tests.helpers import TINY_FOCUSNETPP_LITE as TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def _reference_logit(logits: list[torch.Tensor]) -> torch.Tensor:
    p = torch.stack([torch.sigmoid(z.double()) for z in logits]).mean(0)
    return torch.log(p) - torch.log1p(-p)


def test_mean_probability_logit_is_the_logit_of_the_mean_probability():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(4, 1, 8, 8, generator=g) * 4 for _ in range(3)]
    got = mean_probability_logit(logits)
    # float32 log-space arithmetic against float64: a few ulps of values of magnitude up to ~12
    ref = _reference_logit(logits)
    assert torch.allclose(got.double(), ref, rtol=0, atol=1e-5 * (1 + ref.abs().max().item()))
    assert torch.equal(got > 0, ref > 0)


def test_mean_probability_logit_is_exact_where_probabilities_saturate():
    # sigmoid(+-60) is 1 or 0 in float32: a clipped logit of the mean would lose these values.
    z = [torch.tensor([60.0, 60.0, -60.0, 30.0]), torch.tensor([-60.0, 60.0, -60.0, 30.0])]
    got = mean_probability_logit(z)
    assert torch.isfinite(got).all()
    assert got[0].abs() < 1e-5  # mean probability 1/2
    assert got[1] == pytest.approx(60.0, abs=1e-4) and got[2] == pytest.approx(-60.0, abs=1e-4)
    assert got[3] == pytest.approx(30.0, abs=1e-4)


def test_create_model_builds_independent_members():
    torch.manual_seed(0)
    single = create_model("focusnetpp", **TINY)
    torch.manual_seed(0)
    pair = create_model("focusnetpp", ensemble=2, **TINY)
    assert isinstance(pair, ProbabilityEnsemble) and len(pair.members) == 2
    n = sum(p.numel() for p in single.parameters())
    assert sum(p.numel() for p in pair.parameters()) == 2 * n
    first, second = (dict(m.named_parameters()) for m in pair.members)
    # the first member is what a single model from the same seed is; the second is initialised anew
    assert all(torch.equal(first[k], v) for k, v in single.named_parameters())
    assert any(not torch.equal(first[k], second[k]) for k in first if first[k].dim() > 1)
    assert not isinstance(create_model("focusnetpp", ensemble=1, **TINY), ProbabilityEnsemble)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_a_bad_member_count_is_one_clear_error(value):
    with pytest.raises(FocusNetError, match=r"ensemble must be an integer >= 1"):
        create_model("focusnetpp", ensemble=value, **TINY)


def test_forward_is_the_logit_of_the_members_mean_probability():
    torch.manual_seed(1)
    pair = create_model("focusnetpp", ensemble=2, **TINY).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        got = pair(x)
        ref = _reference_logit([m(x) for m in pair.members])
    assert torch.allclose(got.double(), ref, rtol=0, atol=1e-5 * (1 + ref.abs().max().item()))


def test_members_with_deep_supervision_train_every_head_and_predict_their_fused_output():
    torch.manual_seed(3)
    pair = create_model("focusnetpp", ensemble=2, deep_supervision=True, **TINY).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        outputs = pair.forward_all(x)
        per_member = [m.forward_all(x) for m in pair.members]
        got, ref = pair(x), _reference_logit([m(x) for m in pair.members])
    assert len(outputs) == 10  # fused + 4 heads, per member, in member order
    for a, b in zip(outputs, per_member[0] + per_member[1]):
        assert torch.equal(a, b)
    # prediction averages the members' fused outputs only
    assert torch.allclose(got.double(), ref, rtol=0, atol=1e-5 * (1 + ref.abs().max().item()))


def test_each_member_is_trained_on_its_own_loss():
    from focusnet.engine.config import TrainConfig
    from focusnet.engine.module import SegmentationModule

    torch.manual_seed(2)
    pair = create_model("focusnetpp", ensemble=2, **TINY)
    for m in pair.modules():  # no random masks, so the two passes compute the same function
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    module = SegmentationModule.from_config(pair, TrainConfig(size=32, channels_last=False))
    module.log = lambda *a, **k: None
    x, y = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    module.training_step((x, y), 0).backward()
    joint = [[p.grad.clone() for p in m.parameters()] for m in pair.members]
    for i, member in enumerate(pair.members):
        pair.zero_grad()
        (module.loss_fn(member(x), y) / len(pair.members)).backward()
        for got, alone in zip(joint[i], (p.grad for p in member.parameters())):
            # the same float32 graph, summed in another order: a few ulps of the largest gradient
            assert torch.allclose(got, alone, rtol=1e-4, atol=1e-6 * (1 + alone.abs().max().item()))


def test_an_ensemble_trains_saves_loads_predicts_and_exports(lesions: Path, tmp_path: Path):
    import numpy as np
    from PIL import Image

    from focusnet.engine.predict import predict
    from focusnet.engine.train import train
    from focusnet.weights import load_model

    cache = tmp_path / "prepared"
    run = train(tiny_train_config(lesions, tmp_path / "run", cache, epochs=1,
                                  model_kwargs={**TINY_FOCUSNETPP, "ensemble": 2}))
    saved = json.loads((run / "weights" / "best.json").read_text())
    assert saved["kwargs"]["ensemble"] == 2
    model = load_model(run)
    assert isinstance(model, ProbabilityEnsemble) and len(model.members) == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["count"] > 0

    image = tmp_path / "new" / "a.png"
    image.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 37, 3), dtype=np.uint8)).save(image)
    rows = predict(run, [image], tmp_path / "masks", progress=False)
    assert len(rows) == 1 and Image.open(tmp_path / "masks" / "a_mask.png").size == (37, 45)


def test_ensemble_exports_to_torchscript(tmp_path: Path):
    from focusnet.engine.export import export

    torch.manual_seed(3)
    pair = create_model("focusnetpp", ensemble=2, **TINY).eval()
    result = export(pair, tmp_path / "pair.pt", format="torchscript", example_size=32)
    assert result.folded_batchnorms > 0  # the members' BatchNorms are folded as in a single model
    loaded = torch.jit.load(str(result.path))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = pair(x)
        assert torch.allclose(loaded(x), ref, rtol=0, atol=1e-5 * (1 + ref.abs().max().item()))
