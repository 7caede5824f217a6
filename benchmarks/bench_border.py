"""Diagnostic: does a trained network segment short of the image border?

For a finished ``focusnet train`` run, its best weights score the test split of the run's own prepared
cache at model resolution, once as trained and once with each input extended by ``--pad`` pixels on
every side (reflection, then replication) and the prediction cropped back. If lesions that touch the
border (those filling most of the crop) score much better on the extended input, the network reads
the border itself as evidence of background: zero padding darkens every feature map towards it.
Per-image Dice at 0.5, by lesion area (the fraction of the image the ground-truth lesion covers),
paired against the unpadded prediction (two-sided Wilcoxon). The padded input is not what the network
was trained on, so the other images may lose; training with ``model_kwargs.padding_mode`` is the fix
this diagnoses, not the padding here.

Usage::

    python benchmarks/bench_border.py RUN [RUN ...] [--pad 16] [--out benchmarks/results/border-<date>.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.bench_threshold import dice_at, probabilities  # noqa: E402
from focusnet.compare.stats import paired_test  # noqa: E402
from focusnet.engine.config import TrainConfig  # noqa: E402
from focusnet.engine.split_tensors import load_split_tensors  # noqa: E402
from focusnet.weights import load_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MODES = ("reflect", "replicate")
FILLING = 0.75  # lesions covering at least this fraction of the image touch its border on every side


def extended_probabilities(model: torch.nn.Module, images: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """:func:`probabilities` on ``images`` extended by ``pad`` pixels on every side (``mode``), cropped back."""
    h, w = images.shape[-2:]
    return probabilities(model, F.pad(images, (pad,) * 4, mode=mode))[..., pad : pad + h, pad : pad + w]


def diagnose(run: Path, pad: int) -> dict[str, Any]:
    """Per-image test Dice as trained and with each border extension, overall and by lesion area."""
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    if (config.size + 2 * pad) % 16:
        raise SystemExit(f"--pad {pad}: size {config.size} + 2 x pad must stay a multiple of 16 (the network's stride)")
    split = json.loads((run / "split.json").read_text())
    test = load_split_tensors(config, split, parts=("test",))["test"]
    model = load_model(run).eval()
    filling = (test.masks > 0.5).float().mean(dim=(1, 2, 3)).numpy() >= FILLING
    base = dice_at(probabilities(model, test.images), test.masks, 0.5)
    row: dict[str, Any] = {"run": str(run), "n_test": len(base), "n_filling": int(filling.sum()),
                           "dice": float(base.mean()), "dice_filling": float(base[filling].mean()),
                           "dice_other": float(base[~filling].mean()), "extended": {}}
    for mode in MODES:
        dice = dice_at(extended_probabilities(model, test.images, pad, mode), test.masks, 0.5)
        diff = dice - base
        row["extended"][mode] = {
            "dice": float(dice.mean()), "dice_filling": float(dice[filling].mean()),
            "dice_other": float(dice[~filling].mean()), "better": int((diff > 0).sum()),
            "worse": int((diff < 0).sum()), "wilcoxon": paired_test(base, dice),
        }
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders written by focusnet train")
    p.add_argument("--pad", type=int, default=16, help="pixels added on every side (default 16)")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/border-<date>.json)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = [diagnose(run.resolve(), args.pad) for run in args.runs]
    print(f"| run | input | test Dice | lesions >= {FILLING:.0%} of the image | other lesions | better / worse | Wilcoxon p |")
    print("|---|---|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['run']} | as trained | {r['dice']:.4f} | {r['dice_filling']:.3f} (n = {r['n_filling']}) | "
              f"{r['dice_other']:.4f} | - | - |")
        for mode, e in r["extended"].items():
            print(f"| | {mode} +{args.pad} px | {e['dice']:.4f} | {e['dice_filling']:.3f} | {e['dice_other']:.4f} | "
                  f"{e['better']} / {e['worse']} | {e['wilcoxon']['pvalue']:.2g} |")
    out = args.out or RESULTS / f"border-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "border", "date": stamp, "pad": args.pad,
                               "protocol": {"resolution": "model input", "threshold": 0.5, "split": "the run's test split",
                                            "aggregation": "per-image mean Dice", "filling": FILLING},
                               "rows": rows}, indent=1, default=float) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
