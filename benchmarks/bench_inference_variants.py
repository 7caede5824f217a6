"""Diagnostic: would a choice made at inference time change a trained network's test score?

For one or more finished ``focusnet train`` runs of the same split, each run's test split (the run's own
prepared cache, model resolution, per-image Dice at 0.5) is scored as trained and with each of these
inference-time variants, paired against the as-trained prediction (two-sided Wilcoxon over images):

* ``last weights``: the last epoch's weights (``last.ckpt``) instead of the best by validation;
* ``threshold on val``: the threshold with the best validation Dice on a grid (0.3 ... 0.8);
* ``largest component``: only the largest connected foreground component, its holes filled
  (one lesion per dermoscopy image);
* ``scales``: the mean probability over the input at its size and enlarged by 1/8 (bilinear, the
  prediction resized back);
* ``border where large``: the prediction on the input extended by 16 replicated pixels
  (``bench_border.py``), used only for images whose predicted lesion covers at least a share of the
  image chosen on the validation split (0.3 ... 0.9, or never);
* ``all runs averaged`` (with two or more runs): the mean probability of every run given.

A variant that gains only on the test split, or by less than a seed changes the score, is noise.
``--reference X.json[#side]`` adds a column against that side's per-image Dice (any side spec
``head_to_head_seeds.py`` reads, with the same test ids; several runs are averaged per image); the
crop-filling lesions are reported apart, as in ``bench_border.py``.

Usage::

    python benchmarks/bench_inference_variants.py RUN [RUN ...] [--reference X.json#basicunet]
        [--out benchmarks/results/inference-variants-<date>.json]
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
import torch.nn.functional as F  # noqa: E402
from scipy import ndimage  # noqa: E402

from benchmarks.bench_border import FILLING, extended_probabilities  # noqa: E402
from benchmarks.bench_threshold import dice_at, probabilities  # noqa: E402
from benchmarks.head_to_head_seeds import load_runs  # noqa: E402
from focusnet.compare.stats import paired_test  # noqa: E402
from focusnet.engine.config import TrainConfig  # noqa: E402
from focusnet.engine.split_tensors import SplitTensors, load_split_tensors  # noqa: E402
from focusnet.weights import load_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
AREAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, float("inf"))  # inf: never extend
PAD = 16


def largest_component_filled(masks: torch.Tensor) -> torch.Tensor:
    """Each (N, 1, H, W) boolean mask reduced to its largest 8-connected component, holes filled."""
    out = torch.zeros_like(masks)
    for i, m in enumerate(masks[:, 0].numpy()):
        labels, n = ndimage.label(m, structure=np.ones((3, 3)))
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        out[i, 0] = torch.from_numpy(ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes))))
    return out


def multiscale_probabilities(model: torch.nn.Module, images: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """The mean of :func:`probabilities` over ``images`` resized to each of ``sizes`` (bilinear), resized back."""
    h, w = images.shape[-2:]
    total = torch.zeros(images.shape[0], 1, h, w)
    for s in sizes:
        x = images if (s, s) == (h, w) else F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False)
        p = probabilities(model, x)
        total += p if (s, s) == (h, w) else F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
    return total / len(sizes)


def last_weights(model: torch.nn.Module, run: Path) -> torch.nn.Module:
    """``model`` with the weights of ``run/last.ckpt`` (the run's own Lightning checkpoint)."""
    checkpoint = torch.load(run / "last.ckpt", map_location="cpu", weights_only=False)  # a local run's own file
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model.eval()


def dice_of(probs: torch.Tensor, data: SplitTensors) -> np.ndarray:
    return dice_at(probs, data.masks, 0.5)


def score_run(run: Path) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str], SplitTensors, torch.Tensor]:
    """Per-image test Dice of each variant, the choices made on val, the test ids, the test data and probabilities."""
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    split = json.loads((run / "split.json").read_text())
    data = load_split_tensors(config, split, parts=("val", "test"))
    val, test = data["val"], data["test"]
    model = load_model(run).eval()
    p_val, p_test = probabilities(model, val.images), probabilities(model, test.images)
    dice = {"as trained": dice_of(p_test, test)}
    by_threshold = {t: float(dice_at(p_val, val.masks, t).mean()) for t in THRESHOLDS}
    threshold = max(THRESHOLDS, key=lambda t: (by_threshold[t], -abs(t - 0.5)))
    dice["threshold on val"] = dice_at(p_test, test.masks, threshold)
    dice["largest component"] = dice_at(largest_component_filled(p_test > 0.5).float(), test.masks, 0.5)
    size = config.size
    dice["scales"] = dice_of(multiscale_probabilities(model, test.images, (size, size + size // 8)), test)

    def border_where_large(part: SplitTensors, probs: torch.Tensor, area: float) -> torch.Tensor:
        large = (probs > 0.5).float().mean(dim=(1, 2, 3)) >= area
        if not bool(large.any()):
            return probs
        out = probs.clone()
        out[large] = extended_probabilities(model, part.images[large], PAD, "replicate")
        return out

    by_area = {a: float(dice_of(border_where_large(val, p_val, a), val).mean()) for a in AREAS}
    area = max(AREAS, key=lambda a: (by_area[a], a))
    dice["border where large"] = dice_of(border_where_large(test, p_test, area), test)
    dice["last weights"] = dice_of(probabilities(last_weights(model, run), test.images), test)
    chosen = {"threshold": threshold, "val_dice_by_threshold": by_threshold,
              "border_area": None if area == float("inf") else area,
              "val_dice_by_border_area": {str(a): v for a, v in by_area.items()}}
    return dice, chosen, list(split["test"]), test, p_test


def reference_dice(spec: str, ids: list[str]) -> np.ndarray:
    """Per-image Dice of a ``head_to_head_seeds.py`` side spec (``SIDE.json`` or ``RESULT.json#SIDE``),
    averaged over the side's runs, in ``ids``' order."""
    per_run = []
    for run_ids, dice, _ in load_runs(spec):
        if sorted(run_ids) != sorted(ids):
            raise SystemExit(f"--reference {spec}: its images are not the runs' test split")
        order = {i: k for k, i in enumerate(run_ids)}
        per_run.append(dice[[order[i] for i in ids]])
    return np.mean(per_run, axis=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders written by focusnet train (the same split)")
    p.add_argument("--reference", default=None, help="FILE.json[#side]: per-image Dice to pair every variant with")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/inference-variants-<date>.json)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows: list[dict[str, Any]] = []
    ids: list[str] | None = None
    all_probs, test = [], None
    for run in (r.resolve() for r in args.runs):
        dice, chosen, run_ids, test, probs = score_run(run)
        if ids is not None and run_ids != ids:
            raise SystemExit(f"{run}: its test split differs from {args.runs[0]}'s; give runs of one split")
        ids = run_ids
        all_probs.append(probs)
        rows.append({"run": str(run), "chosen_on_val": chosen, "dice": dice})
    assert ids is not None and test is not None
    if len(all_probs) > 1:
        averaged = dice_of(sum(all_probs) / len(all_probs), test)
        rows.append({"run": "all runs averaged", "chosen_on_val": {}, "dice": {"as trained": averaged}})
    reference = reference_dice(args.reference, ids) if args.reference else None
    filling = (test.masks > 0.5).float().mean(dim=(1, 2, 3)).numpy() >= FILLING
    print(f"| run | variant | test Dice | lesions >= {FILLING:.0%} | other | − as trained, p | − reference, p |")
    print("|---|---|---:|---:|---:|---|---|")
    for row in rows:
        base = row["dice"]["as trained"]
        row["summary"] = {}
        for name, d in row["dice"].items():
            vs_base = paired_test(base, d) if name != "as trained" else None
            vs_ref = paired_test(reference, d) if reference is not None else None
            row["summary"][name] = {"dice": float(d.mean()), "dice_filling": float(d[filling].mean()),
                                    "dice_other": float(d[~filling].mean()), "vs_as_trained": vs_base, "vs_reference": vs_ref}
            cell = "–" if vs_base is None else f"{float((d - base).mean()):+.4f}, {vs_base['pvalue']:.2g}"
            ref_cell = "–" if vs_ref is None else f"{float((d - reference).mean()):+.4f}, {vs_ref['pvalue']:.2g}"
            print(f"| {Path(row['run']).parent.name or row['run']} | {name} | {d.mean():.4f} | {d[filling].mean():.3f} | "
                  f"{d[~filling].mean():.4f} | {cell} | {ref_cell} |")
        row["dice"] = {k: v.tolist() for k, v in row["dice"].items()}
    out = args.out or RESULTS / f"inference-variants-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "inference_variants", "date": stamp, "ids": ids, "reference": args.reference,
                               "protocol": {"resolution": "model input", "threshold": 0.5, "split": "the runs' test split",
                                            "aggregation": "per-image mean Dice", "filling": FILLING, "pad": PAD},
                               "rows": rows}, indent=1, default=float) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
