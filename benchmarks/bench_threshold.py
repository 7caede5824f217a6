"""Ablation: the probability threshold chosen on the validation split against the fixed 0.5.

For a finished ``focusnet train`` run: its best weights score the val and test splits of the run's own
prepared cache at model resolution; the threshold with the highest per-image mean validation Dice on
a grid (0.05, 0.10, ..., 0.95) is then applied to the test split, and the per-image test Dice at that
threshold is compared with the one at 0.5 (the same images, so a paired two-sided Wilcoxon test).

Usage::

    python benchmarks/bench_threshold.py RUN [RUN ...] [--out benchmarks/results/threshold-<date>.json]
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from focusnet.compare.stats import bootstrap_ci, paired_test  # noqa: E402
from focusnet.engine.config import TrainConfig  # noqa: E402
from focusnet.engine.split_tensors import load_split_tensors  # noqa: E402
from focusnet.metrics import confusion_counts, metrics_from_counts  # noqa: E402
from focusnet.weights import load_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))


def probabilities(model: torch.nn.Module, images: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """Sigmoid of the model's logits, (N, 1, H, W), in eval mode without gradients."""
    with torch.no_grad():
        return torch.cat([torch.sigmoid(model(images[s : s + batch]).float()) for s in range(0, len(images), batch)])


def dice_at(probs: torch.Tensor, masks: torch.Tensor, threshold: float) -> np.ndarray:
    """Per-image Dice of ``probs > threshold`` (an empty prediction of an empty mask scores 1)."""
    return metrics_from_counts(confusion_counts(probs > threshold, masks > 0.5), empty_score=1.0)["dice"]


def ablate(run: Path) -> dict[str, Any]:
    """Val-chosen threshold against 0.5 on the run's test split."""
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    split = json.loads((run / "split.json").read_text())
    data = load_split_tensors(config, split, parts=("val", "test"))
    model = load_model(run)
    val_probs, test_probs = probabilities(model, data["val"].images), probabilities(model, data["test"].images)
    val_curve = {t: float(dice_at(val_probs, data["val"].masks, t).mean()) for t in GRID}
    chosen = max(GRID, key=lambda t: (val_curve[t], -abs(t - 0.5)))
    fixed, tuned = dice_at(test_probs, data["test"].masks, 0.5), dice_at(test_probs, data["test"].masks, chosen)
    lo, hi = bootstrap_ci(tuned - fixed)
    return {"run": str(run), "model": config.model, "preset": config.preset, "size": config.size,
            "val_dice_by_threshold": val_curve, "chosen_threshold": chosen, "n_test": len(fixed),
            "test_dice_at_0.5": float(fixed.mean()), "test_dice_at_chosen": float(tuned.mean()),
            "difference_mean": float((tuned - fixed).mean()), "difference_ci95": [lo, hi],
            "wilcoxon": paired_test(fixed, tuned)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders written by focusnet train")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/threshold-<date>.json)")
    args = p.parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = [ablate(run.resolve()) for run in args.runs]
    print("| run | chosen on val | test Dice at 0.5 | at chosen | difference (95% CI) | Wilcoxon p |")
    print("|---|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['run']} | {r['chosen_threshold']:.2f} | {r['test_dice_at_0.5']:.4f} | {r['test_dice_at_chosen']:.4f} | "
              f"{r['difference_mean']:+.4f} ({r['difference_ci95'][0]:+.4f} to {r['difference_ci95'][1]:+.4f}) | "
              f"{r['wilcoxon']['pvalue']:.2g} |")
    out = args.out or RESULTS / f"threshold-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "threshold", "date": stamp, "grid": list(GRID),
                               "protocol": {"resolution": "model input", "aggregation": "per-image mean Dice",
                                            "selection": "highest per-image mean val Dice on the grid, ties to the nearest of 0.5"},
                               "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
