"""The equal-budget head-to-head: FocusNet++ (budget config) against MONAI BasicUNet on ISIC 2018.

Protocol (issue 15), one command:

* data: ``$FOCUSNET_DATA/isic2018_task1_512crop_all``; train on the first 350 sorted ids of
  ``isic2018_task1_512crop``, validate on its last 50, test on 300 ids drawn with
  ``numpy.random.default_rng(0)`` from the other 1,944 ids of the ``_all`` set. The id lists are
  committed in ``benchmarks/splits/isic_head_to_head.json``; ``--check-split`` derives them again
  from the data and compares.
* both models see the same prepared cache (128x128, per-image min-max, binary masks), batch 8, random
  flips, Adam 1e-3, the same wall-time budget (``--minutes``, default 25) with the whole machine
  (``--threads``, default every core), one after the other (FocusNet++ first), and keep the weights
  of their best validation per-image mean Dice.
* FocusNet++ trains through ``focusnet train`` (:func:`focusnet.engine.train.train`) with
  ``configs/isic2018_focusnetpp_budget.yaml``; BasicUNet through
  ``benchmarks/bench_monai_basicunet.py``'s loop (DiceCE, constant learning rate).
* scoring: per-image Dice at probability > 0.5 on the 300 test images at 128x128, mean with a 95%
  percentile bootstrap CI, pooled Dice, ISIC thresholded Jaccard, epochs reached, training images
  per second (epochs x 350 / training wall time, validation and the final test scoring included), and the two-sided paired
  Wilcoxon signed-rank test of the per-image Dice (:func:`focusnet.compare.stats.paired_test`).

Prints a Markdown table; writes JSON (``--out``; default ``benchmarks/results/head-to-head-<date>.json``)
with every per-image Dice. Each side's result is also kept in ``--work`` as it finishes, so a rerun
with the same ``--work`` and ``--resume`` trains only what is missing.

Usage:
    python benchmarks/bench_head_to_head.py                    # the real run: 2 x 25 minutes
    python benchmarks/bench_head_to_head.py --set preset=paper # one change to FocusNet++'s config
    python benchmarks/bench_head_to_head.py --only focusnetpp --threads 1 --epochs 83 --minutes 0 \\
        --set model_kwargs.bottleneck_dropout=0 --work W  # one side, fixed epochs: pair it with head_to_head_seeds.py
    python benchmarks/bench_head_to_head.py --check-split      # the committed ids, derived again
    python benchmarks/bench_head_to_head.py --smoke            # 8/4/4 images of the small set, 32x32, 1 epoch
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _train_common import AREA_LABELS, dice_by_area, epochs_run, lesion_fractions, paired_dice  # noqa: E402
from focusnet.compare.stats import bootstrap_ci  # noqa: E402
from focusnet.data.paths import data_root  # noqa: E402
from focusnet.data.readers import get_reader  # noqa: E402
from focusnet.engine.config import TrainConfig, load_config  # noqa: E402
from focusnet.engine.train import load_split_tensors, prepare_data, train  # noqa: E402
from focusnet.metrics import metrics_from_counts, summarize  # noqa: E402
from focusnet.models import create_model  # noqa: E402
from focusnet.models.spec import ModelSpec  # noqa: E402
from focusnet.runtime import tune_cpu_allocator  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SPLIT_FILE = ROOT / "benchmarks" / "splits" / "isic_head_to_head.json"
CONFIG = ROOT / "configs" / "isic2018_focusnetpp_budget.yaml"
SMALL, FULL = "isic2018_task1_512crop", "isic2018_task1_512crop_all"
N_TRAIN, N_TEST, TEST_SEED = 350, 300, 0
SIDES = ("focusnetpp", "basicunet")


def derive_split(data: Path) -> dict[str, list[str]]:
    """The head-to-head split from the data: 350/50 of the small set's sorted ids, 300 seeded test ids of the rest.

    Example:
        >>> split = derive_split(data_root())  # doctest: +SKIP
        >>> [len(split[k]) for k in ("train", "val", "test")]  # doctest: +SKIP
        [350, 50, 300]
    """
    reader = get_reader("isic2018")
    small = sorted(reader.list_items(data / SMALL).ids)
    rest = sorted(set(reader.list_items(data / FULL).ids) - set(small))
    picked = np.random.default_rng(TEST_SEED).choice(len(rest), N_TEST, replace=False)
    return {"train": small[:N_TRAIN], "val": small[N_TRAIN:], "test": sorted(rest[i] for i in picked)}


def smoke_split(data: Path) -> dict[str, list[str]]:
    """A tiny split of the small set (8 / 4 / 4 sorted ids), for tests."""
    ids = sorted(get_reader("isic2018").list_items(data / SMALL).ids)
    return {"train": ids[:8], "val": ids[8:12], "test": ids[12:16]}


def run_focusnetpp(args: argparse.Namespace, source: Path, split_file: Path, work: Path) -> dict[str, Any]:
    """Train FocusNet++ through the engine with the budget config; per-image test Dice from its summary."""
    overrides = [*args.overrides, f"data.source={source}", f"data.split={split_file}",
                 f"data.cache_dir={work / 'prepared'}", f"size={args.size}", f"num_threads={args.threads}",
                 "progress_bar=false", "accelerator=cpu"]
    overrides += ["max_minutes=null"] if args.minutes is None else [f"max_minutes={args.minutes}"]
    if args.epochs is not None:
        overrides.append(f"epochs={args.epochs}")
    config = load_config(args.config, overrides).replace(out_dir=str(work / "focusnetpp-run"))
    prepare_data(config)  # the cache, before the clock starts (train finds it up to date)
    t0 = time.perf_counter()
    run = train(config)
    wall = time.perf_counter() - t0
    summary = json.loads((run / "summary.json").read_text())
    epochs = epochs_run(run)
    # the row label names a variant's model arguments (those --set changed), e.g. focusnetpp:lite[norm=instance]
    base_kwargs = load_config(args.config).model_kwargs
    variant = {k: v for k, v in config.model_kwargs.items() if base_kwargs.get(k, object()) != v}
    return {
        "model": ModelSpec(config.model, config.preset, variant).text, "config": str(args.config),
        "overrides": list(args.overrides),
        "run": str(run), "epochs": epochs,
        "train_wall_s": round(wall, 1), "summary": summary,
        "params": sum(p.numel() for p in create_model(config.model, **config.model_args()).parameters()),
    }


def run_basicunet(args: argparse.Namespace, source: Path, split: dict[str, list[str]], split_file: Path,
                  work: Path, seed: int = 0) -> dict[str, Any]:
    """MONAI BasicUNet with bench_monai_basicunet's loop on the same cache; per-image test Dice.
    ``seed`` sets its initial weights and epoch order (``bench_isic_scale.py`` calls it too)."""
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet

    from bench_monai_basicunet import counts_of, train_epoch
    from focusnet.engine.callbacks import EpochShuffleSampler

    config = TrainConfig(data={"format": "isic2018", "source": str(source), "split": str(split_file),
                               "cache_dir": str(work / "prepared")}, size=args.size)
    data = load_split_tensors(config, split, parts=("train", "val", "test"))
    device = torch.device("cpu")
    torch.manual_seed(seed)
    model = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1)
    loss_fn, opt = DiceCELoss(sigmoid=True), torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = EpochShuffleSampler(len(data["train"]), seed)
    best, best_epoch, best_state, history = -1.0, 0, None, []
    t0, epoch = time.perf_counter(), 0
    cap = args.epochs if args.epochs is not None else 1000
    while epoch < cap:
        sampler.set_epoch(epoch)
        loss = train_epoch(model, data["train"], list(sampler), 8, loss_fn, opt, device)
        val = float(metrics_from_counts(counts_of(model, data["val"], device), empty_score=1.0)["dice"].mean())
        epoch += 1
        history.append({"epoch": epoch, "train_loss": round(loss, 5), "val_dice": round(val, 5),
                        "wall_s": round(time.perf_counter() - t0, 1)})
        print(f"basicunet epoch {epoch}: loss {loss:.4f}, val Dice {val:.4f}, {time.perf_counter() - t0:.0f} s", flush=True)
        if val > best:
            best, best_epoch = val, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if args.minutes is not None and time.perf_counter() - t0 >= args.minutes * 60:
            break
    wall = time.perf_counter() - t0
    model.load_state_dict(best_state)
    summary = summarize(counts_of(model, data["test"], device), data["test"].ids, empty_score=1.0,
                        protocol={"split": "test", "resolution": f"{args.size}x{args.size} (model input)", "threshold": 0.5,
                                  "selection": "highest per-image mean val_dice on the val split"})
    return {"model": "monai.BasicUNet", "seed": seed, "epochs": epoch, "best_epoch": best_epoch, "train_wall_s": round(wall, 1),
            "summary": summary, "history": history, "params": sum(p.numel() for p in model.parameters())}


def _row(name: str, side: dict[str, Any], n_train: int) -> dict[str, Any]:
    s = side["summary"]
    dice = np.array([r["dice"] for r in s["per_image"]], dtype=float)
    lo, hi = bootstrap_ci(dice)
    return {"model": name, "params_M": side["params"] / 1e6, "epochs": side["epochs"], "train_wall_s": side["train_wall_s"],
            "img_per_s": side["epochs"] * n_train / side["train_wall_s"], "dice_mean": float(dice.mean()), "dice_ci95": [lo, hi],
            "pooled_dice": s["pooled"]["dice"], "thresholded_jaccard": s["thresholded_jaccard"], "jaccard_mean": s["mean"]["jaccard"],
            "precision_mean": s["mean"]["precision"], "recall_mean": s["mean"]["recall"]}


def compare(sides: dict[str, dict[str, Any]], n_train: int) -> dict[str, Any]:
    """Per-model rows and the paired test of FocusNet++ against BasicUNet on the same test ids."""
    fn, bu = sides["focusnetpp"]["summary"]["per_image"], sides["basicunet"]["summary"]["per_image"]
    if [r["id"] for r in fn] != [r["id"] for r in bu]:
        raise SystemExit("the two sides were scored on different test images")
    a = np.array([r["dice"] for r in bu], dtype=float)
    b = np.array([r["dice"] for r in fn], dtype=float)
    result = {
        "rows": [_row(sides["focusnetpp"]["model"], sides["focusnetpp"], n_train), _row("monai.BasicUNet", sides["basicunet"], n_train)],
        "paired": paired_dice(a, b),
    }
    fractions = lesion_fractions(fn)
    if fractions is not None:
        by_side = {name: dice_by_area(np.asarray(fractions), dice) for name, dice in (("focusnetpp", b), ("basicunet", a))}
        result["by_lesion_area"] = {"labels": list(AREA_LABELS), "images": by_side["focusnetpp"]["images"],
                                    "dice": {name: by["dice"] for name, by in by_side.items()}}
    result["ids"] = [r["id"] for r in fn]
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = ["| model | params (M) | epochs | train img/s | per-image Dice (95% CI) | pooled Dice | thresholded Jaccard | precision / recall |",
             "|---|---:|---:|---:|---|---:|---:|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['params_M']:.2f} | {r['epochs']} | {r['img_per_s']:.2f} | **{r['dice_mean']:.4f}** "
                     f"({r['dice_ci95'][0]:.4f}–{r['dice_ci95'][1]:.4f}) | {r['pooled_dice']:.4f} | {r['thresholded_jaccard']:.4f} | "
                     f"{r['precision_mean']:.3f} / {r['recall_mean']:.3f} |")
    p = result["paired"]
    w = p["wilcoxon"]
    lines.append("")
    lines.append(f"Paired (FocusNet++ - BasicUNet, {len(result['ids'])} test images): mean difference {p['difference_mean']:+.4f} "
                 f"(95% CI {p['difference_ci95'][0]:+.4f} to {p['difference_ci95'][1]:+.4f}); Wilcoxon p = {w['pvalue']:.3g}; "
                 f"FocusNet++ better on {p['focusnetpp_better']}, worse on {p['focusnetpp_worse']}, tied on {p['ties']}.")
    areas = result.get("by_lesion_area")
    if areas is not None:
        lines.append("")
        lines.append("Per-image Dice by the fraction of the image the lesion covers: " + "; ".join(
            f"{label} ({n}): " + " against ".join("–" if d[i] is None else f"{d[i]:.4f}" for d in areas["dice"].values())
            for i, (label, n) in enumerate(zip(areas["labels"], areas["images"]))) + " (FocusNet++ against BasicUNet).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=25.0, help="training budget per model, checked after each epoch (default 25; 0: none, --epochs decides)")
    p.add_argument("--epochs", type=int, default=None, help="epoch cap per model (default: the config's / the budget)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: every core)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--config", type=Path, default=CONFIG, help="FocusNet++'s config (default the budget config)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override of FocusNet++'s config, repeatable (an ablation: --set preset=paper)")
    p.add_argument("--basicunet-seed", type=int, default=0,
                   help="BasicUNet's seed: initial weights and epoch order (default 0; FocusNet++'s is --set seed=N)")
    p.add_argument("--data", type=Path, default=None, help="data root (default $FOCUSNET_DATA)")
    p.add_argument("--work", type=Path, default=None, help="folder for the cache, runs and each side's result")
    p.add_argument("--resume", action="store_true", help="reuse the sides already finished in --work")
    p.add_argument("--only", choices=SIDES, default=None,
                   help="train this side alone into --work and stop (no comparison; head_to_head_seeds.py pairs it)")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/head-to-head-<date>.json)")
    p.add_argument("--check-split", action="store_true", help="derive the split from the data and compare with the committed one")
    p.add_argument("--smoke", action="store_true", help="8/4/4 images of the small set, 32x32, 1 epoch, no budget")
    args = p.parse_args(argv)
    if args.minutes is not None and args.minutes <= 0:
        if args.epochs is None:
            p.error("--minutes 0 (no budget) needs --epochs")
        args.minutes = None
    data = (args.data or data_root()).resolve()
    committed = json.loads(SPLIT_FILE.read_text())
    if args.check_split:
        derived = derive_split(data)
        same = derived == committed
        print(f"{SPLIT_FILE.relative_to(ROOT)}: {'matches' if same else 'DIFFERS FROM'} the split derived from {data}")
        return 0 if same else 1
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = (args.work or RESULTS / f"head-to-head-{stamp}").resolve()
    if work.exists() and any(work.iterdir()) and not args.resume:
        raise SystemExit(f"{work} is not empty: pass --resume to reuse its finished sides, or another --work")
    work.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.size, args.epochs, args.minutes = 32, 1, None
        split, source = smoke_split(data), data / SMALL
        split_file = work / "split.json"
        split_file.write_text(json.dumps(split, indent=1) + "\n")
    else:
        split, source, split_file = committed, data / FULL, SPLIT_FILE
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    print(f"head-to-head: {source}, split {len(split['train'])}/{len(split['val'])}/{len(split['test'])}, {args.size}x{args.size}, "
          f"budget {'none (epochs decide)' if args.minutes is None else f'{args.minutes} min'} each, {args.threads} threads, one model after the other", flush=True)
    sides: dict[str, dict[str, Any]] = {}
    for name in SIDES if args.only is None else (args.only,):
        path = work / f"{name}.json"
        if path.is_file():
            sides[name] = json.loads(path.read_text())
            print(f"{name}: reusing {path}")
            continue
        load_before = os.getloadavg()
        if name == "focusnetpp":
            side = run_focusnetpp(args, source, split_file, work)
        else:
            side = run_basicunet(args, source, split, split_file, work, seed=args.basicunet_seed)
        side.update(threads=args.threads, minutes=args.minutes, size=args.size,
                    load_average={"before": load_before, "after": os.getloadavg()})
        path.write_text(json.dumps(side, indent=1) + "\n")
        sides[name] = side
    if args.only is not None:
        dice = [r["dice"] for r in sides[args.only]["summary"]["per_image"]]
        print(f"{args.only}: {sides[args.only].get('epochs')} epochs, per-image Dice {np.mean(dice):.4f} on {len(dice)} test images; "
              f"wrote {work / (args.only + '.json')}")
        return 0
    result = {"benchmark": "head-to-head", "date": stamp, "data": str(source), "split_file": str(split_file), "size": args.size,
              "minutes": args.minutes, "threads": args.threads, "torch": torch.__version__,
              "protocol": {"split": "test", "resolution": f"{args.size}x{args.size} (model input)", "threshold": 0.5,
                           "aggregation": "per-image mean (bootstrap 95% CI), pooled Dice from summed counts",
                           "test": "two-sided Wilcoxon signed-rank on per-image Dice, FocusNet++ - BasicUNet"},
              **compare(sides, len(split["train"]))}
    result["per_image_dice"] = {name: [r["dice"] for r in sides[name]["summary"]["per_image"]] for name in SIDES}
    out = args.out or RESULTS / f"head-to-head-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
