"""The head-to-head over several training seeds: how much of a single run's verdict is the seed.

``bench_head_to_head.py`` pairs one FocusNet++ run with one BasicUNet run over the 300 test images.
Its Wilcoxon test treats the images as the only source of noise; a second training seed of the same
config moves the mean by as much as the difference it tests. This script takes the side results of
several runs (each ``<work>/focusnetpp.json`` or ``<work>/basicunet.json`` that ``bench_head_to_head.py``
wrote) and reports:

* each run's per-image mean Dice, and each side's mean and sample s.d. across its runs;
* every cross pair (FocusNet++ run i against BasicUNet run j): mean difference and Wilcoxon p, the
  verdicts a single head-to-head could have given;
* the seed-averaged test: each image's Dice averaged over a side's runs, then the paired difference
  (95% bootstrap CI) and Wilcoxon test of those averages, which removes part of the training noise
  from each image.

The JSON (``--out``, never overwritten) also keeps every run's per-image Dice and the test ids, so the
tests can be recomputed from it alone; ``benchmarks/published/`` shows it in the README.

Usage:
    python benchmarks/head_to_head_seeds.py --focusnetpp benchmarks/results/h2h-run4/focusnetpp.json \\
        benchmarks/results/h2h-run6/focusnetpp.json --basicunet benchmarks/results/h2h-run2/basicunet.json \\
        --out benchmarks/results/head-to-head-seeds.json
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _train_common import paired_dice  # noqa: E402


def load_side(path: Path) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """Test ids, per-image Dice and a short description of one side's result file."""
    try:
        side = json.loads(path.read_text())
        rows = side["summary"]["per_image"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path}: not a side result of bench_head_to_head.py ({exc}); pass <work>/focusnetpp.json "
                         "or <work>/basicunet.json") from None
    dice = np.array([r["dice"] for r in rows], dtype=float)
    info = {"file": str(path), "model": side.get("model"), "epochs": side.get("epochs"),
            "overrides": side.get("overrides", []), "seed": side.get("seed"), "dice_mean": float(dice.mean())}
    return [r["id"] for r in rows], dice, info


def analyse(focusnetpp: list[Path], basicunet: list[Path]) -> dict[str, Any]:
    """Per-run, per-side, cross-pair and seed-averaged results (see the module docstring)."""
    sides: dict[str, list[tuple[list[str], np.ndarray, dict[str, Any]]]] = {
        "focusnetpp": [load_side(p) for p in focusnetpp], "basicunet": [load_side(p) for p in basicunet]}
    ids = sides["focusnetpp"][0][0]
    for runs in sides.values():
        for run_ids, _, info in runs:
            if run_ids != ids:
                first = sides["focusnetpp"][0][2]["file"]
                raise SystemExit(f"{info['file']}: scored on other test images than {first}")
    result: dict[str, Any] = {
        "benchmark": "head-to-head-seeds", "date": time.strftime("%Y%m%d-%H%M%S"), "test_images": len(ids),
        "protocol": {"split": "test", "threshold": 0.5, "aggregation": "per-image mean Dice of each run",
                     "test": "two-sided Wilcoxon signed-rank on per-image Dice, FocusNet++ - BasicUNet"},
        "sides": {}}
    for name, runs in sides.items():
        means = np.array([info["dice_mean"] for _, _, info in runs])
        result["sides"][name] = {"runs": [info for _, _, info in runs], "mean_of_runs": float(means.mean()),
                                 "sd_of_runs": float(means.std(ddof=1)) if len(means) > 1 else None,
                                 "per_image_dice": [d.tolist() for _, d, _ in runs]}
    result["cross_pairs"] = [
        {"focusnetpp": fi["file"], "basicunet": bi["file"], **paired_dice(bd, fd)}
        for _, fd, fi in sides["focusnetpp"] for _, bd, bi in sides["basicunet"]
    ]
    fn_avg = np.mean([d for _, d, _ in sides["focusnetpp"]], axis=0)
    bu_avg = np.mean([d for _, d, _ in sides["basicunet"]], axis=0)
    result["seed_averaged"] = paired_dice(bu_avg, fn_avg)
    result["ids"] = ids
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = ["| side | runs | per-image mean Dice of each run | mean ± s.d. across runs |", "|---|---:|---|---|"]
    for name, side in result["sides"].items():
        each = ", ".join(f"{r['dice_mean']:.4f}" for r in side["runs"])
        sd = "–" if side["sd_of_runs"] is None else f"{side['sd_of_runs']:.4f}"
        lines.append(f"| {name} | {len(side['runs'])} | {each} | {side['mean_of_runs']:.4f} ± {sd} |")
    lines += ["", "| FocusNet++ run | BasicUNet run | difference (95% CI) | Wilcoxon p | better / worse |",
              "|---|---|---|---:|---|"]
    averaged = {"focusnetpp": "seed-averaged", "basicunet": "seed-averaged", **result["seed_averaged"]}
    for p in result["cross_pairs"] + [averaged]:
        lo, hi = p["difference_ci95"]
        lines.append(f"| {p['focusnetpp']} | {p['basicunet']} | {p['difference_mean']:+.4f} ({lo:+.4f} to {hi:+.4f}) | "
                     f"{p['wilcoxon']['pvalue']:.3g} | {p['focusnetpp_better']} / {p['focusnetpp_worse']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--focusnetpp", type=Path, nargs="+", required=True, help="FocusNet++ side results, one per run")
    p.add_argument("--basicunet", type=Path, nargs="+", required=True, help="BasicUNet side results, one per run")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default: print only)")
    args = p.parse_args(argv)
    result = analyse(args.focusnetpp, args.basicunet)
    sides = ["--focusnetpp", *map(str, args.focusnetpp), "--basicunet", *map(str, args.basicunet)]
    result["command"] = shlex.join(["python", "benchmarks/head_to_head_seeds.py", *sides])
    print(markdown(result))
    if args.out is not None:
        if args.out.exists():
            raise SystemExit(f"{args.out} exists: pass another --out (earlier results are not overwritten)")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
