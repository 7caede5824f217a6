"""End-to-end training on a tiny synthetic set: run folder contents, split hygiene, LR schedule, config errors."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from focusnet.engine.config import PAPER_STEP_BOUNDARIES, TrainConfig, lr_factor
from focusnet.errors import FocusNetError
from tests.helpers import TINY_FOCUSNETPP, tiny_train_config

SUMMARY_KEYS = {"per_image", "mean", "std", "median", "pooled", "thresholded_jaccard", "count", "protocol"}
METRICS = ("precision", "recall", "dice", "jaccard", "specificity", "accuracy")
TINY = TINY_FOCUSNETPP


def tiny_config(data_root: Path, out_dir: Path, **changes) -> TrainConfig:
    """The shared tiny config, for 2 cosine epochs, its cache next to ``data_root``."""
    cache_dir = Path(data_root).parent / f"{Path(data_root).name}-prepared"
    return tiny_train_config(data_root, out_dir, cache_dir, **{"epochs": 2, "lr_schedule": "cosine", **changes})


@pytest.fixture(scope="module")
def data_root(lesions) -> Path:
    return lesions


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    """One 2-epoch run, recording every load_split_tensors call (which splits, and whether fit had ended)."""
    from focusnet.engine import train as train_mod

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    calls: list[dict] = []
    real = train_mod.load_split_tensors

    def recording(config, split, parts=("train", "val")):
        parts = tuple(parts)
        calls.append({"parts": parts, "fit_done": (run_dir / "last.ckpt").is_file()})
        return real(config, split, parts)

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_mod, "load_split_tensors", recording)
        returned = train_mod.train(tiny_config(data_root, run_dir))
    assert torch.get_num_threads() == threads  # num_threads=1 applied during the run only
    return {"run": returned, "calls": calls, "data_root": data_root}


# -------------------------------------------------------------------------------- end to end
def test_train_writes_the_run_folder(trained):
    run = trained["run"]
    for name in ("config.json", "config.yaml", "environment.json", "split.json", "best.ckpt", "last.ckpt", "progress.json",
                 "logs/metrics.csv", "logs/train.log", "curves.png", "summary.json", "weights/best.safetensors",
                 "weights/best.json", "weights/last.safetensors", "weights/last.json"):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = json.loads((run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    split = json.loads((run / "split.json").read_text())
    assert summary["count"] == len(split["test"]) == len(summary["per_image"])
    assert sorted(row["id"] for row in summary["per_image"]) == sorted(split["test"])
    assert set(METRICS) <= set(summary["mean"])
    assert 0.0 <= summary["mean"]["dice"] <= 1.0
    protocol = summary["protocol"]
    assert protocol["split"] == "test"
    assert protocol["resolution"] == "32x32 (model input)"
    assert protocol["threshold"] == 0.5
    assert protocol["model"] == "focusnetpp" and protocol["preset"] == "lite"
    assert protocol["run"] == str(run)
    assert "aggregation" in protocol

    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert config.model_kwargs == TINY and config.size == 32 and config.out_dir == str(run)


def test_metrics_csv_has_every_epoch_and_the_scheduled_lr(trained):
    from focusnet.engine.plots import read_epoch_metrics

    metrics = read_epoch_metrics(trained["run"] / "logs" / "metrics.csv")
    for key in ("train_loss", "val_loss", "val_dice", "lr"):
        assert sorted(metrics[key]) == [0, 1], key
    assert all(0.0 <= v <= 1.0 for v in metrics["val_dice"].values())
    # cosine over 2 epochs, stepped once per epoch by Lightning: 1e-3, then 0.5e-3
    assert metrics["lr"][0] == pytest.approx(1e-3, rel=1e-6)
    assert metrics["lr"][1] == pytest.approx(0.5e-3, rel=1e-6)


def test_metrics_csv_is_as_read_metrics_md_describes_it(trained):
    """Two rows per epoch with blank cells, epochs numbered from 0: what docs/how-to/read-metrics.md says."""
    import csv

    with open(trained["run"] / "logs" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["epoch"] for r in rows) == ["0", "0", "1", "1"]
    assert all(bool(r["val_loss"]) != bool(r["train_loss"]) for r in rows)
    page = (Path(__file__).resolve().parents[2] / "docs" / "how-to" / "read-metrics.md").read_text()
    assert "two rows per epoch" in page and "numbered from 0 everywhere" in page


def test_best_checkpoint_loads_weights_only_and_reproduces_the_summary(trained):
    from focusnet.engine.evaluate import evaluate_checkpoint

    run = trained["run"]
    ckpt = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)
    monitors = [v.get("monitor") for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert monitors == ["val_loss"]
    again = evaluate_checkpoint(run, split="test")
    saved = json.loads((run / "summary.json").read_text())
    assert again["per_image"] == saved["per_image"]


def test_split_is_disjoint_and_test_is_not_seen_before_fit_ends(trained):
    split = json.loads((trained["run"] / "split.json").read_text())
    train, val, test = (set(split[k]) for k in ("train", "val", "test"))
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    all_ids = {p.stem for p in (trained["data_root"] / "images").iterdir()}
    assert train | val | test == all_ids

    calls = trained["calls"]
    during_fit = [c for c in calls if not c["fit_done"]]
    after_fit = [c for c in calls if c["fit_done"]]
    assert during_fit and all("test" not in c["parts"] for c in during_fit)
    assert [c["parts"] for c in after_fit] == [("test",)]


def test_refuses_to_overwrite_a_run_folder(trained):
    from focusnet.engine.train import train

    run = trained["run"]
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(FocusNetError, match=r"not empty.*--out"):
        train(tiny_config(trained["data_root"], run))
    assert sorted(p.name for p in run.iterdir()) == before


def test_refuses_a_non_empty_folder_that_is_not_a_run(data_root, tmp_path):
    from focusnet.engine.train import train

    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FocusNetError, match="notes.txt"):
        train(tiny_config(data_root, tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# ---------------------------------------------------------------------------------- schedule
def test_paper_step_schedule_gives_the_exact_lr_per_epoch():
    from focusnet.engine.module import SegmentationModule

    config = TrainConfig(lr=1e-4, lr_schedule="paper_step", epochs=50, size=32)
    module = SegmentationModule.from_config(torch.nn.Conv2d(3, 1, 1), config)
    opt_conf = module.configure_optimizers()
    optimizer, scheduler = opt_conf["optimizer"], opt_conf["lr_scheduler"]["scheduler"]
    assert opt_conf["lr_scheduler"]["interval"] == "epoch"
    assert optimizer.defaults["betas"] == (0.9, 0.999) and optimizer.defaults["eps"] == 1e-7
    seen = []
    for _epoch in range(50):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [1e-4] * 16 + [1e-5] * 10 + [1e-6] * 15 + [1e-7] * 9
    assert seen == pytest.approx(expected, rel=1e-12, abs=0)
    assert PAPER_STEP_BOUNDARIES == (16, 26, 41)
    assert [lr_factor("paper_step", e, 50) for e in (0, 15, 16, 25, 26, 40, 41, 60)] == [
        1.0, 1.0, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001,
    ]


def test_constant_and_cosine_schedules():
    assert [lr_factor("constant", e, 5) for e in range(5)] == [1.0] * 5
    cos = [lr_factor("cosine", e, 4) for e in range(4)]
    assert cos == pytest.approx([1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5, 0.5 - 0.5 * math.cos(math.pi / 4)])


def test_defaults_follow_the_spec():
    c = TrainConfig()
    assert (c.batch_size, c.epochs, c.optimizer, c.lr, c.betas, c.eps) == (8, 50, "adam", 1e-4, (0.9, 0.999), 1e-7)
    assert (c.lr_schedule, c.loss, c.threshold, c.normalization, c.model, c.preset) == (
        "paper_step", {"reduction": "batch"}, 0.5, "minmax", "focusnetpp", None,
    )


def test_preset_is_resolved_and_checked_against_the_model():
    from focusnet.engine.train import resolve_model

    assert resolve_model(TrainConfig()).preset == "paper"  # the model's default preset, saved resolved
    assert resolve_model(TrainConfig(preset="lite")).preset == "lite"
    assert resolve_model(TrainConfig(model="unet")).preset is None
    with pytest.raises(FocusNetError, match=r"^preset: model 'unet' has no presets"):
        resolve_model(TrainConfig(model="unet", preset="paper"))
    with pytest.raises(FocusNetError, match=r"^preset: unknown preset 'huge'.*paper"):
        resolve_model(TrainConfig(preset="huge"))
    with pytest.raises(FocusNetError, match=r"unknown model 'unet3'"):
        resolve_model(TrainConfig(model="unet3"))


# ---------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("lr_schedule", "step", "paper_step, constant, cosine"),
        ("normalization", "zscore", "minmax"),
        ("optimizer", "rmsprop", "adam, adamw, sgd"),
        ("precision", "fp8", "32-true, bf16-mixed, 16-mixed"),
        ("num_nodes", 0, ">= 1"),
        ("channels", 2, "1, 3"),
        ("batch_size", 0, ">= 1"),
        ("epochs", 1.5, ">= 1"),
        ("lr", -1.0, "(0"),
        ("threshold", 1.0, "(0, 1)"),
        ("betas", (0.9,), "two numbers"),
        ("loss", {"reduction": "pixel"}, "reduction"),
        ("loss", {"gama": 0.1}, "gama"),
        ("accelerator", "tpu-ish", "cpu"),
        ("deterministic", "maybe", "warn"),
        ("monitor", "val_jaccard", "val_loss, val_dice"),
    ],
)
def test_config_errors_name_the_key_and_the_allowed_values(key, value, allowed):
    with pytest.raises(FocusNetError) as info:
        TrainConfig(**{key: value})
    message = str(info.value)
    assert message.startswith(f"{key}:"), message
    assert allowed in message, message


def test_from_dict_rejects_unknown_keys_and_round_trips():
    with pytest.raises(FocusNetError, match=r"unknown config key 'lr_schedul'; did you mean 'lr_schedule'\?"):
        TrainConfig.from_dict({"lr_schedul": "cosine"})
    with pytest.raises(FocusNetError, match=r"unknown config key 'qqq'; known keys: accelerator, augment, "):
        TrainConfig.from_dict({"qqq": 1})  # nothing close: every key is listed
    with pytest.raises(FocusNetError, match=r"unknown config key 'augment.zzz'; known keys in augment: brightness, contrast, "):
        TrainConfig.from_dict({"augment": {"zzz": 1}})
    c = TrainConfig(size=64, model_kwargs={"widths": (8, 8, 8, 8, 8)}, betas=(0.8, 0.99), data={"source": "d"},
                    augment={"enabled": True, "rotate": 10.0})
    d = json.loads(json.dumps(c.to_dict()))
    assert TrainConfig.from_dict(d) == c
    with pytest.raises(FocusNetError, match=r"^size:"):
        TrainConfig.from_dict({**d, "size": "64"})


def test_config_files_round_trip_and_name_the_file(tmp_path):
    import yaml

    c = TrainConfig(size=64, epochs=3, model_kwargs={"widths": (8, 8, 8, 8, 8)})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(c.to_dict()))
    (tmp_path / "c.json").write_text(json.dumps(c.to_dict()))
    assert TrainConfig.from_file(tmp_path / "c.yaml") == c == TrainConfig.from_file(tmp_path / "c.json")
    (tmp_path / "bad.yaml").write_text("epochs: 3\nbatchsize: 4\n")
    with pytest.raises(FocusNetError, match=r"bad.yaml: unknown config key 'batchsize'"):
        TrainConfig.from_file(tmp_path / "bad.yaml")


def test_missing_data_source_is_a_one_line_error(tmp_path):
    from focusnet.engine.train import train

    with pytest.raises(FocusNetError, match=r"^data.source:"):
        train(TrainConfig(out_dir=str(tmp_path / "run")))
    with pytest.raises(FocusNetError, match=r"^data.source:"):
        train(TrainConfig(data={"source": str(tmp_path / "nowhere")}, out_dir=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_curves_from_a_lightning_style_csv(tmp_path):
    from focusnet.engine.plots import plot_training_curves, read_epoch_metrics

    path = tmp_path / "metrics.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "lr", "step", "train_loss", "val_dice", "val_loss"])
        w.writerow([0, "", 3, "", 0.5, 1.0])
        w.writerow([0, 0.001, 3, 1.2, "", ""])
        w.writerow([1, "", 7, "", 0.7, 0.8])
        w.writerow([1, 0.0005, 7, 0.9, "", ""])
    m = read_epoch_metrics(path)
    assert m["val_dice"] == {0: 0.5, 1: 0.7} and m["train_loss"] == {0: 1.2, 1: 0.9}
    out = plot_training_curves(path, tmp_path / "curves.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------- configs and the CLI
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["isic2018_focusnetpp.yaml", "dsb2018_focusnetpp_lite.yaml", "demo.yaml"])
def test_shipped_configs_are_valid(name):
    from focusnet.engine.config import load_config

    c = load_config(CONFIGS / name)
    assert c.model == "focusnetpp" and not c.augment.enabled
    if name != "demo.yaml":  # the paper's protocol
        assert (c.optimizer, c.lr, c.betas, c.eps, c.batch_size, c.epochs, c.lr_schedule) == (
            "adam", 1e-4, (0.9, 0.999), 1e-7, 8, 50, "paper_step",
        )
        assert c.size == 256 and c.normalization == "minmax"
    assert {"isic2018_focusnetpp.yaml": "paper", "dsb2018_focusnetpp_lite.yaml": "lite", "demo.yaml": "lite"}[name] == c.preset


@pytest.mark.parametrize(("name", "fmt", "preset"), [
    ("recommended.yaml", "folder", "paper"),
    ("isic2018_focusnetpp_recommended.yaml", "isic2018", "paper"),
    ("dsb2018_focusnetpp_recommended.yaml", "dsb2018", "lite"),
])
def test_recommended_configs_carry_the_measured_recipe(name, fmt, preset):
    from focusnet.engine.config import load_config

    c = load_config(CONFIGS / name)
    assert (c.model, c.preset, c.data.format) == ("focusnetpp", preset, fmt)
    assert (c.optimizer, c.lr, c.lr_schedule, c.monitor, c.threshold, c.precision) == (
        "adam", 1e-3, "cosine", "val_dice", 0.5, "32-true")
    assert c.model_kwargs == {"bn_momentum": 0.1} and c.augment.enabled and c.augment.hflip == c.augment.vflip == 0.5
    assert c.size == 256 and c.max_minutes is None  # the GPU run as shipped; a CPU budget is an override
    if fmt != "folder":
        assert "_all" in c.data.source  # the full shared data sets, not the small test subsets


def test_overrides_use_dotted_keys_and_refuse_unknown_keys():
    from focusnet.engine.config import load_config

    c = load_config(CONFIGS / "demo.yaml", ["epochs=3", "lr=2e-4", "data.source=/x", "model_kwargs.preset=official",
                                            "model_kwargs.widths=[8,8,8,8,8]", "augment.enabled=true", "loss.reduction=image"])
    assert (c.epochs, c.lr, c.data.source, c.preset, c.model_kwargs["widths"], c.augment.enabled, c.loss["reduction"]) == (
        3, 2e-4, "/x", "official", (8, 8, 8, 8, 8), True, "image",
    )
    assert c.model_kwargs["bn_momentum"] == 0.1  # the file's other model_kwargs are kept
    for item, message in [
        ("epoch=3", r"unknown config key 'epoch'.*epochs"),
        ("data.sorce=x", r"unknown config key 'data.sorce'.*source"),
        ("augment.flip=1", r"unknown config key 'augment.flip'.*hflip"),
        ("data.format=png", r"data.format: invalid value 'png'; choose one of: folder, isic2018, dsb2018, nnunet"),
        ("lr_schedule=poly", r"lr_schedule: invalid value 'poly'; choose one of: paper_step, constant, cosine"),
        ("epochs", r"expected KEY=VALUE"),
    ]:
        with pytest.raises(FocusNetError, match=message):
            load_config(CONFIGS / "demo.yaml", [item])


def test_cli_refuses_bad_config_before_training(tmp_path, capsys):
    from focusnet.cli import main

    run = tmp_path / "run"
    assert main(["train", str(CONFIGS / "demo.yaml"), "batch_size=0", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("focusnet: error:") and "batch_size: must be an integer >= 1" in err and err.count("\n") == 1
    assert main(["train", str(CONFIGS / "demo.yaml"), "optimizer=rmsprop", "--out", str(run)]) == 2
    assert "adam, adamw, sgd" in capsys.readouterr().err
    assert main(["train", str(CONFIGS / "demo.yaml"), "--out", str(run)]) == 2  # data.source not set
    assert "data.source" in capsys.readouterr().err
    assert not run.exists()


def test_a_size_the_model_cannot_take_is_refused_before_anything_is_written(data_root, tmp_path, capsys):
    """size=50 used to prepare a cache, make the run folder and start training before the model
    refused it (and a rerun with the same --out was then refused too)."""
    from focusnet.cli import main

    run, cache = tmp_path / "run", tmp_path / "prepared"
    args = ["train", str(CONFIGS / "demo.yaml"), f"data.source={data_root}", f"data.cache_dir={cache}", "size=50",
            "--out", str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "size: 50" in err and "multiple of 16" in err and "size=48 or size=64" in err and err.count("\n") == 1
    assert not run.exists() and not cache.exists()
    comparison = tmp_path / "compare"
    assert main(["compare", str(CONFIGS / "demo.yaml"), f"data.source={data_root}", "size=50", "--models", "unet",
                 "--out", str(comparison)]) == 2
    assert "size: 50" in capsys.readouterr().err and not comparison.exists()


def test_cli_trains_through_the_data_layer(data_root, tmp_path, capsys):
    from focusnet.cli import main

    run = tmp_path / "run"
    args = ["train", str(CONFIGS / "demo.yaml"), f"data.source={data_root}", "data.split=random:0.5,0.25,0.25",
            f"data.cache_dir={tmp_path / 'prepared'}", "size=32", "batch_size=4", "epochs=1", "progress_bar=false",
            *[f"model_kwargs.{k}={list(v) if isinstance(v, tuple) else v}".replace(" ", "") for k, v in TINY.items()],
            "--out", str(run), "--seed", "5", "--deterministic"]
    assert main(args) == 0
    assert "test Dice" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 5 and config["deterministic"] is True and config["epochs"] == 1
    assert config["data"]["format"] == "folder" and Path(config["data"]["cache_dir"]).is_absolute()
    assert (tmp_path / "prepared").is_dir()  # prepared once, then read from the cache
    env = json.loads((run / "environment.json").read_text())
    assert {"torch", "lightning", "python", "devices", "seed", "command"} <= set(env)


def test_weights_for_use_match_the_best_checkpoint(trained):
    from focusnet.engine.evaluate import load_checkpoint as load_ckpt
    from focusnet.weights import load_model

    run = trained["run"]
    model = load_model(run)  # <run>/weights/best.safetensors
    reference = load_ckpt(run, "best.ckpt")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    meta = json.loads((run / "weights" / "best.json").read_text())
    assert meta["preprocessing"] == {"size": 32, "channels": 3, "normalization": "minmax"}


def test_trained_weights_load_in_a_fresh_process(trained, tmp_path):
    """Issue 4 acceptance: weights saved by training load through focusnet.load_model in a new
    process and give the same probabilities (to 1e-6) as the best checkpoint in this one."""
    import subprocess
    import sys

    from focusnet.engine.evaluate import load_checkpoint as load_ckpt

    run = trained["run"]
    torch.manual_seed(3)
    x = torch.rand(2, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = torch.sigmoid(load_ckpt(run, "best.ckpt")(x))
    code = (
        "import sys, torch, focusnet; torch.set_num_threads(1)\n"
        "m = focusnet.load_model(sys.argv[1])\n"
        "x = torch.load(sys.argv[2], weights_only=True)\n"
        "with torch.no_grad(): torch.save(torch.sigmoid(m(x)), sys.argv[3])\n"
    )
    subprocess.run([sys.executable, "-c", code, str(run), str(tmp_path / "x.pt"), str(tmp_path / "p.pt")],
                   check=True, capture_output=True, timeout=120)
    got = torch.load(tmp_path / "p.pt", weights_only=True)
    assert (got - expected).abs().max().item() <= 1e-6


# ---------------------------------------------------------------------------- module behaviour
class _Heads(torch.nn.Module):
    """Two heads (one at half size) and a Keras-style L2 penalty."""

    deep_supervision = True

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 1, 1)
        self.b = torch.nn.Conv2d(3, 1, 1)

    def forward_all(self, x):
        return [self.a(x), self.b(x[..., ::2, ::2])]

    def forward(self, x):
        return self.a(x)

    def l2_penalty(self):
        return 0.5 * self.a.weight.square().sum()


def test_loss_adds_l2_penalty_and_averages_deep_supervision_heads():
    import torch.nn.functional as F

    from focusnet.engine.module import SegmentationModule

    model = _Heads()
    module = SegmentationModule.from_config(model, TrainConfig(size=16))
    module.log = lambda *a, **k: None
    x, y = torch.rand(2, 3, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float()
    loss = module.training_step((x, y), 0)
    fn = module.loss_fn
    up = F.interpolate(model.b(x[..., ::2, ::2]), size=(16, 16), mode="bilinear", align_corners=False)
    expected = (fn(model.a(x), y) + fn(up, y)) / 2 + model.l2_penalty()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_config_loss_name_picks_the_loss():
    from focusnet.engine.module import SegmentationModule
    from focusnet.losses import ALLHybridLoss, DiceCELoss

    model = torch.nn.Conv2d(3, 1, 1)
    assert type(SegmentationModule.from_config(model, TrainConfig(size=16)).loss_fn) is ALLHybridLoss
    dice_ce = TrainConfig(size=16, loss={"name": "dice_ce", "ce_weight": 0.5})
    fn = SegmentationModule.from_config(model, dice_ce).loss_fn
    assert type(fn) is DiceCELoss and fn.ce_weight == 0.5
    with pytest.raises(FocusNetError, match="loss.name: invalid value 'dice'; choose one of: all_hl, dice_ce"):
        TrainConfig(size=16, loss={"name": "dice"})
    with pytest.raises(FocusNetError, match="loss: .*pos_weight"):
        TrainConfig(size=16, loss={"name": "dice_ce", "pos_weight": 0.5})


def test_other_optimisers():
    from focusnet.engine.module import SegmentationModule

    for name, cls in (("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam)):
        module = SegmentationModule.from_config(torch.nn.Conv2d(3, 1, 1), TrainConfig(optimizer=name, size=32))
        assert type(module.configure_optimizers()["optimizer"]) is cls


def test_max_minutes_stops_training_after_the_epoch_that_exceeds_it(data_root, tmp_path):
    from focusnet.engine.train import train

    with pytest.raises(FocusNetError, match="max_minutes"):
        tiny_config(data_root, tmp_path / "bad", max_minutes=0)
    run = train(tiny_config(data_root, tmp_path / "budget", epochs=50, max_minutes=1e-4))
    rows = (run / "logs" / "metrics.csv").read_text().splitlines()[1:]
    epochs = {line.split(",")[0] for line in rows}
    assert len(epochs) == 1  # a 6 ms budget ends the run after its first epoch, not after 50
    assert (run / "weights" / "best.safetensors").is_file()


def test_monitor_val_dice_keeps_the_epoch_with_the_highest_val_dice(data_root, tmp_path):
    from focusnet.engine.train import train

    run = train(tiny_config(data_root, tmp_path / "dice", epochs=4, monitor="val_dice", lr=3e-3))
    val = {}
    with open(run / "logs" / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row.get("val_dice"):
                val[int(row["epoch"])] = float(row["val_dice"])
    assert len(val) == 4
    best_epoch = torch.load(run / "best.ckpt", map_location="cpu", weights_only=False)["epoch"]
    assert val[best_epoch] == max(val.values())
    summary = json.loads((run / "summary.json").read_text())
    assert "val_dice" in json.dumps(summary["protocol"])


@pytest.mark.parametrize(("fmt", "name"), [("folder", "data set"), ("isic2018", "ISIC 2018"), ("dsb2018", "DSB 2018")])
def test_missing_source_names_the_data_set_once_and_points_to_its_docs(tmp_path, fmt, name):
    """Issue 17, item 6: 'give the folder data set folder' named the format where the data set belongs."""
    from focusnet.engine.train import _resolve_data
    from focusnet.errors import FocusNetError

    for source in (None, str(tmp_path / "missing")):
        config = TrainConfig(data={"format": fmt, "source": source})
        with pytest.raises(FocusNetError) as exc:
            _resolve_data(config)
        text = str(exc.value)
        assert f"give the {name} folder" in text and "folder data set" not in text
        assert "docs/" in text, text
