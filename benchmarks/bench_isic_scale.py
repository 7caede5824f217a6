"""ISIC 2018 at the paper's scale on the CPU (issue 18, item 2): FocusNet++ against three baselines.

Protocol:

* data: ``$FOCUSNET_DATA/isic2018_task1_512crop_all`` (2,344 pairs), the ``bcdu`` split (sorted ids,
  positional, scaled from 1815/259/520 to 1640/234/470; :func:`focusnet.data.splits.bcdu_split`),
  one prepared cache at 128x128 (per-image min-max, binary masks) shared by every side;
* each side trains under the same wall-clock budget (``--minutes``, default 60, checked after each
  epoch) with ``--threads`` torch threads (default 1), so two sides can run side by side, one core
  each; every side keeps the weights of its best validation per-image mean Dice;
* ``focusnetpp``, ``unet`` and ``attention_unet`` train through ``focusnet train`` with one recipe,
  ``configs/isic2018_focusnetpp_budget.yaml`` with the model swapped (batch 8, flips, Adam 1e-3 with a
  cosine that ends with the budget, ALL-HL 0.5/0.5/0.5, BatchNorm momentum 0.1 where the model has
  BatchNorm); ``basicunet`` is MONAI's BasicUNet in ``bench_monai_basicunet.py``'s loop (DiceCE,
  constant learning rate), as in the head-to-head;
* scoring: per-image Dice at probability > 0.5 on the 470 test images at 128x128, mean with a 95%
  bootstrap CI, Jaccard, ISIC thresholded Jaccard, pooled Dice, precision, recall, epochs reached, and
  the two-sided paired Wilcoxon signed-rank test of each side against FocusNet++.

Usage (from the repository root)::

    python benchmarks/bench_isic_scale.py prepare --work W             # split + cache, once
    python benchmarks/bench_isic_scale.py side focusnetpp --work W &   # one process per side
    python benchmarks/bench_isic_scale.py side basicunet --work W &
    python benchmarks/bench_isic_scale.py report --work W              # table + JSON of the finished sides
    python benchmarks/bench_isic_scale.py smoke --work W                # 8/4/4 images, 32x32, 1 epoch, all sides
    python benchmarks/bench_isic_scale.py side focusnetpp_lite_instance --work W --set loss.fn_weight=0.6 --tag fn06

Each side writes ``W/<side>.json`` and refuses to overwrite it; ``report`` writes
``W/isic-scale.json`` (``"benchmark": "isic-scale"``) and prints a Markdown table. A variant (an ablation:
``--set KEY=VALUE`` on top of the side's recipe, named by ``--tag``) writes ``W/<side>-<tag>.json``, with
its overrides; ``report`` leaves it out, ``head_to_head_seeds.py`` pairs it.
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

from _train_common import epochs_run, paired_dice  # noqa: E402
from bench_head_to_head import _row as head_to_head_row  # noqa: E402
from bench_head_to_head import run_basicunet  # noqa: E402
from focusnet.data.paths import data_root  # noqa: E402
from focusnet.data.readers import get_reader  # noqa: E402
from focusnet.data.splits import bcdu_split  # noqa: E402
from focusnet.engine.config import load_config  # noqa: E402
from focusnet.engine.train import prepare_data, train  # noqa: E402
from focusnet.models import create_model  # noqa: E402
from focusnet.runtime import tune_cpu_allocator  # noqa: E402

CONFIG = ROOT / "configs" / "isic2018_focusnetpp_budget.yaml"
FULL, SMALL = "isic2018_task1_512crop_all", "isic2018_task1_512crop"
#: side -> overrides of the FocusNet++ recipe (None: MONAI BasicUNet's own loop).
SIDES: dict[str, list[str] | None] = {
    "focusnetpp": ["preset=paper"],  # the budget config ships `lite` since session 8; this table is `paper`
    "focusnetpp_lite_instance": ["preset=lite", "model_kwargs.norm=instance"],  # the head-to-head's best recipe
    "focusnetpp_instance": ["preset=paper", "model_kwargs.norm=instance"],  # `paper` with that normalisation
    "unet": ["model=unet", "preset=null", "model_kwargs={}"],
    "attention_unet": ["model=attention_unet", "preset=null", "model_kwargs.bn_momentum=0.1"],
    "basicunet": None,
}
REFERENCE = "focusnetpp"


def _split_file(work: Path) -> Path:
    return work / "split.json"


def _base_overrides(args: argparse.Namespace, work: Path, source: Path) -> list[str]:
    return [f"data.source={source}", f"data.split={_split_file(work)}", f"data.cache_dir={work / 'prepared'}",
            f"size={args.size}", f"num_threads={args.threads}", "progress_bar=false", "accelerator=cpu",
            f"max_minutes={args.minutes}" if args.minutes is not None else "max_minutes=null", f"seed={args.seed}",
            *([f"epochs={args.epochs}"] if args.epochs is not None else [])]


def cmd_prepare(args: argparse.Namespace, work: Path, source: Path) -> None:
    """Write the bcdu split of ``source`` and prepare the shared cache, before any clock starts."""
    ids = get_reader("isic2018").list_items(source).ids
    split = bcdu_split(ids)
    if args.smoke:
        split = {k: v[:n] for (k, v), n in zip(split.items(), (8, 4, 4))}
    work.mkdir(parents=True, exist_ok=True)
    path = _split_file(work)
    if path.is_file() and json.loads(path.read_text()) != split:
        raise SystemExit(f"{path} holds another split; use another --work")
    path.write_text(json.dumps(split, indent=1) + "\n")
    prepare_data(load_config(CONFIG, _base_overrides(args, work, source)))
    print(f"prepared {source.name}: split {'/'.join(str(len(v)) for v in split.values())} in {work}", flush=True)


def _side_file(name: str, args: argparse.Namespace) -> str:
    """The side's file stem in the work folder: its name, with ``-TAG`` for a variant (``--set``)."""
    return f"{name}-{args.tag}" if args.tag else name


def run_engine_side(name: str, args: argparse.Namespace, work: Path, source: Path) -> dict[str, Any]:
    """Train one ``focusnet train`` side with the shared recipe (and ``--set`` overrides); its summary and epochs."""
    config = load_config(CONFIG, _base_overrides(args, work, source) + list(SIDES[name] or []) + list(args.set))
    config = config.replace(out_dir=str(work / f"{_side_file(name, args)}-run"))
    t0 = time.perf_counter()
    run = train(config)
    wall = time.perf_counter() - t0
    model = create_model(config.model, **({"preset": config.preset} if config.preset else {}), **config.model_kwargs)
    return {"model": f"{config.model}:{config.preset}" if config.preset else config.model, "run": str(run),
            "epochs": epochs_run(run), "train_wall_s": round(wall, 1),
            "summary": json.loads((run / "summary.json").read_text()),
            "params": sum(p.numel() for p in model.parameters()), "overrides": list(args.set)}


def cmd_side(name: str, args: argparse.Namespace, work: Path, source: Path) -> None:
    """Train and score one side; ``W/<name>.json`` (``W/<name>-<tag>.json`` for a variant)."""
    out = work / f"{_side_file(name, args)}.json"
    if out.exists():
        raise SystemExit(f"{out} exists: that side is finished (delete it to train it again)")
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    load_before = os.getloadavg()
    if SIDES[name] is None:
        split = json.loads(_split_file(work).read_text())
        side = run_basicunet(args, source, split, _split_file(work), work, seed=args.seed)
    else:
        side = run_engine_side(name, args, work, source)
    side.update(threads=args.threads, minutes=args.minutes, size=args.size, seed=args.seed,
                load_average={"before": load_before, "after": os.getloadavg()})
    out.write_text(json.dumps(side, indent=1) + "\n")
    s = side["summary"]
    print(f"{name}: {side['epochs']} epochs, {side['train_wall_s']} s, test per-image Dice {s['mean']['dice']:.4f} "
          f"({s['count']} images); wrote {out}", flush=True)


def _row(name: str, side: dict[str, Any], n_train: int) -> dict[str, Any]:
    """The head-to-head's row of one side, with the side's name and its number of test images."""
    return {"side": name, **head_to_head_row(side["model"], side, n_train), "n": side["summary"]["count"]}


def report(work: Path) -> dict[str, Any]:
    """Rows of the finished sides and the paired test of each against FocusNet++."""
    split = json.loads(_split_file(work).read_text())
    sides = {n: json.loads((work / f"{n}.json").read_text()) for n in SIDES if (work / f"{n}.json").is_file()}
    if REFERENCE not in sides:
        raise SystemExit(f"{work / (REFERENCE + '.json')} is missing: train that side first")
    ref = sides[REFERENCE]["summary"]["per_image"]
    b = np.array([r["dice"] for r in ref], dtype=float)
    paired = {}
    for name, side in sides.items():
        if name == REFERENCE:
            continue
        other = side["summary"]["per_image"]
        if [r["id"] for r in other] != [r["id"] for r in ref]:
            raise SystemExit(f"{name} was scored on other test images than {REFERENCE}")
        paired[name] = paired_dice(np.array([r["dice"] for r in other], dtype=float), b)
    first = next(iter(sides.values()))
    return {
        "benchmark": "isic-scale", "date": time.strftime("%Y%m%d-%H%M%S"), "work": str(work), "data": FULL,
        "counts": {k: len(v) for k, v in split.items()}, "size": first["size"], "minutes": first["minutes"],
        "threads": first["threads"], "torch": torch.__version__,
        "protocol": {"split": "test (bcdu, scaled)", "resolution": f"{first['size']}x{first['size']} (model input)",
                     "threshold": 0.5, "aggregation": "per-image mean (bootstrap 95% CI); pooled Dice from summed counts",
                     "test": "two-sided Wilcoxon signed-rank on per-image Dice, FocusNet++ - other"},
        "rows": [_row(n, s, len(split["train"])) for n, s in sides.items()], "paired": paired,
        "sides": {n: {k: v for k, v in s.items() if k != "summary"} for n, s in sides.items()},
        "per_image_dice": {n: [r["dice"] for r in s["summary"]["per_image"]] for n, s in sides.items()},
        "ids": [r["id"] for r in ref],
    }


def markdown(result: dict[str, Any]) -> str:
    lines = ["| model | params (M) | epochs | per-image Dice (95% CI) | Jaccard | thresholded Jaccard | pooled Dice | "
             "precision / recall | FocusNet++ − it (Wilcoxon p) |", "|---|---:|---:|---|---:|---:|---:|---|---|"]
    for r in result["rows"]:
        p = result["paired"].get(r["side"])
        vs = f"{p['difference_mean']:+.4f} (p = {p['wilcoxon']['pvalue']:.2g})" if p else "–"
        lines.append(f"| {r['model']} | {r['params_M']:.2f} | {r['epochs']} | **{r['dice_mean']:.4f}** "
                     f"({r['dice_ci95'][0]:.4f}–{r['dice_ci95'][1]:.4f}) | {r['jaccard_mean']:.4f} | "
                     f"{r['thresholded_jaccard']:.4f} | {r['pooled_dice']:.4f} | {r['precision_mean']:.3f} / "
                     f"{r['recall_mean']:.3f} | {vs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["prepare", "side", "report", "smoke"])
    p.add_argument("side", nargs="?", choices=list(SIDES), help="the side to train (command `side`)")
    p.add_argument("--work", type=Path, required=True, help="folder for the split, cache, runs and results")
    p.add_argument("--minutes", type=float, default=60.0,
                   help="training budget per side (default 60; 0: none, --epochs decides, immune to the host's speed)")
    p.add_argument("--epochs", type=int, default=None, help="epoch cap per side (default: the budget decides)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per side (default 1)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0,
                   help="training seed of every side: initial weights and epoch order (default 0; the split is fixed)")
    p.add_argument("--data", type=Path, default=None, help="data root (default $FOCUSNET_DATA)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override on top of the side's recipe (an ablation; repeatable; needs --tag)")
    p.add_argument("--tag", default=None, help="names a variant side: W/<side>-<tag>.json (`report` ignores it)")
    args = p.parse_args(argv)
    if (args.set or args.tag) and args.command != "side":
        p.error("--set and --tag name a variant of one side: use them with the command `side`")
    if args.set and not args.tag:
        p.error("--set changes the side's recipe: name the variant with --tag")
    if args.set and args.side == "basicunet":
        p.error("--set overrides a focusnet config, not basicunet (its loop reads none)")
    args.smoke = args.command == "smoke"
    if args.minutes == 0:
        if args.epochs is None:
            p.error("--minutes 0 needs --epochs (without a budget the epoch count decides)")
        args.minutes = None
    work = args.work.resolve()
    source = (args.data or data_root()).resolve() / (SMALL if args.smoke else FULL)
    if args.smoke:
        args.size, args.epochs, args.minutes = 32, 1, None
        cmd_prepare(args, work, source)
        for name in SIDES:
            cmd_side(name, args, work, source)
    elif args.command == "prepare":
        cmd_prepare(args, work, source)
    elif args.command == "side":
        if args.side is None:
            p.error("side: name the side to train")
        cmd_side(args.side, args, work, source)
    if args.command in ("report", "smoke"):
        result = report(work)
        (work / "isic-scale.json").write_text(json.dumps(result, indent=1) + "\n")
        print(markdown(result))
        print(f"wrote {work / 'isic-scale.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
