"""A comparison over several training seeds: how much of a single run's verdict is the seed.

``bench_head_to_head.py`` pairs one FocusNet++ run with one BasicUNet run; ``bench_isic_scale.py`` pairs
FocusNet++ with three baselines. Their Wilcoxon tests treat the test images as the only source of noise;
a second training seed of the same config moves a mean by as much as the difference tested. This script
takes several runs of each side (FocusNet++, the reference, and one or more others) and reports:

* each run's per-image mean Dice, and each side's mean and sample s.d. across its runs;
* for each other side, every cross pair (FocusNet++ run i against its run j): mean difference and
  Wilcoxon p, the verdicts a single comparison could have given;
* for each other side, the seed-averaged test: each image's Dice averaged over a side's runs, then the
  paired difference (95% bootstrap CI) and Wilcoxon test of those averages, which removes part of the
  training noise from each image;
* where a run carries its confusion counts (a side file does), each side's seed-averaged Dice by lesion
  area: the test images grouped by the fraction of the image their ground-truth lesion covers
  (``_train_common.AREA_BINS``), so a difference is seen where it sits (small lesions or crop-filling ones).

A run is a side result (``<work>/focusnetpp.json``, ``<work>/basicunet.json``, ... as the two benchmark
scripts write them), or ``RESULT.json#SIDE``: one side of a finished ``bench_isic_scale.py report``
(its ``per_image_dice`` and ``ids``), for runs whose work folder is gone. ``SEEDS.json#SIDE`` of an
earlier result of this script stands for all that side's runs in it (their per-image Dice and
descriptions as stored), so a further seed is added without the first runs' files. Every run must be
scored on the same test images, in the same order.

The JSON (``--out``, never overwritten) keeps every run's per-image Dice and the test ids, so the tests
can be recomputed from it alone; ``benchmarks/published/`` shows it in the README.

Usage:
    python benchmarks/head_to_head_seeds.py --focusnetpp benchmarks/results/h2h-run4/focusnetpp.json \\
        benchmarks/results/h2h-run6/focusnetpp.json --basicunet benchmarks/results/h2h-run2/basicunet.json \\
        --out benchmarks/results/head-to-head-seeds.json
    python benchmarks/head_to_head_seeds.py --focusnetpp S0/focusnetpp.json S1/focusnetpp.json \\
        --side unet S0/unet.json S1/unet.json --side basicunet S0/basicunet.json S1/basicunet.json \\
        --split "test split of the bcdu split (scaled)" --out benchmarks/results/isic-scale-seeds.json
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

from _train_common import AREA_BINS, AREA_LABELS, dice_by_area, lesion_fractions, paired_dice  # noqa: E402

#: The side every other side is paired against.
REFERENCE = "focusnetpp"
#: One run: its test ids, its per-image Dice and a short description.
Run = tuple[list[str], np.ndarray, dict[str, Any]]


def load_runs(spec: str) -> list[Run]:
    """Test ids, per-image Dice and a short description of each run a spec stands for: one for a side
    file or ``RESULT.json#SIDE`` of a scale report, all the side's runs for ``SEEDS.json#SIDE`` of an
    earlier result of this script."""
    path_text, _, side_name = spec.partition("#")
    path = Path(path_text)
    try:
        data = json.loads(path.read_text())
        if side_name and data.get("benchmark") == "head-to-head-seeds":
            ids, side = list(data["ids"]), data["sides"][side_name]
            stored = [(np.asarray(d, dtype=float), dict(info)) for d, info in zip(side["per_image_dice"], side["runs"])]
            fractions = data.get("lesion_fraction")
        elif side_name:
            info = dict(data["sides"][side_name])
            info["file"] = spec
            ids, stored = list(data["ids"]), [(np.asarray(data["per_image_dice"][side_name], dtype=float), info)]
            fractions = data.get("lesion_fraction")
        else:
            rows = data["summary"]["per_image"]
            ids = [r["id"] for r in rows]
            stored = [(np.array([r["dice"] for r in rows], dtype=float), {**data, "file": spec})]
            fractions = lesion_fractions(rows)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        what = f"no side {side_name!r} with per-image Dice and ids" if side_name else "not a side result"
        raise SystemExit(f"{spec}: {what} ({type(exc).__name__}: {exc}); pass <work>/SIDE.json as "
                         "bench_head_to_head.py or bench_isic_scale.py wrote it, or RESULT.json#SIDE of a "
                         "bench_isic_scale.py report or of an earlier head_to_head_seeds.py result") from None
    runs: list[Run] = []
    for dice, side in stored:
        if len(ids) != len(dice):
            raise SystemExit(f"{spec}: {len(dice)} Dice values for {len(ids)} test ids")
        info = {"file": side["file"], "model": side.get("model"), "epochs": side.get("epochs"),
                "overrides": side.get("overrides", []), "seed": side.get("seed"), "dice_mean": float(dice.mean())}
        if side["file"] != spec:
            info["read_from"] = spec
        if fractions is not None:
            info["lesion_fraction"] = list(fractions)
        runs.append((ids, dice, info))
    return runs


def analyse_runs(sides: dict[str, list[Run]], split: str = "test") -> dict[str, Any]:
    """Per-run, per-side, cross-pair and seed-averaged results of runs already loaded (see the module
    docstring); ``sides`` holds :data:`REFERENCE` and at least one other side."""
    if REFERENCE not in sides or len(sides) < 2:
        raise SystemExit(f"need runs of {REFERENCE} and of at least one other side")
    ids = sides[REFERENCE][0][0]
    first = sides[REFERENCE][0][2]["file"]
    for runs in sides.values():
        for run_ids, _, info in runs:
            if run_ids != ids:
                raise SystemExit(f"{info['file']}: scored on other test images than {first}")
    fractions = _lesion_fractions(sides)
    others = [name for name in sides if name != REFERENCE]
    result: dict[str, Any] = {
        "benchmark": "head-to-head-seeds", "date": time.strftime("%Y%m%d-%H%M%S"), "test_images": len(ids),
        "reference": REFERENCE,
        "protocol": {"split": split, "threshold": 0.5, "aggregation": "per-image mean Dice of each run",
                     "test": "two-sided Wilcoxon signed-rank on per-image Dice, FocusNet++ - other"},
        "sides": {}, "comparisons": {}}
    for name, runs in sides.items():
        means = np.array([info["dice_mean"] for _, _, info in runs])
        stored = [{key: value for key, value in info.items() if key != "lesion_fraction"} for _, _, info in runs]
        result["sides"][name] = {"runs": stored, "mean_of_runs": float(means.mean()),
                                 "sd_of_runs": float(means.std(ddof=1)) if len(means) > 1 else None,
                                 "per_image_dice": [d.tolist() for _, d, _ in runs]}
    ref_avg = np.mean([d for _, d, _ in sides[REFERENCE]], axis=0)
    for name in others:
        result["comparisons"][name] = {
            "cross_pairs": [{"reference": ri["file"], "other": oi["file"], **paired_dice(od, rd)}
                            for _, rd, ri in sides[REFERENCE] for _, od, oi in sides[name]],
            "seed_averaged": paired_dice(np.mean([d for _, d, _ in sides[name]], axis=0), ref_avg),
        }
    if fractions is not None:
        by_side = {name: dice_by_area(fractions, np.mean([d for _, d, _ in runs], axis=0)) for name, runs in sides.items()}
        result["by_lesion_area"] = {"bins": list(AREA_BINS), "labels": list(AREA_LABELS),
                                    "images": by_side[REFERENCE]["images"],
                                    "seed_averaged_dice": {name: by["dice"] for name, by in by_side.items()}}
        result["lesion_fraction"] = fractions.tolist()
    result["ids"] = ids
    return result


def _lesion_fractions(sides: dict[str, list[Run]]) -> np.ndarray | None:
    """The test images' lesion fractions from the runs that carry them (all runs score the same images, so
    they must agree); None when no run carries them."""
    found: np.ndarray | None = None
    for runs in sides.values():
        for _, _, info in runs:
            fractions = info.get("lesion_fraction")
            if fractions is None:
                continue
            if found is not None and not np.allclose(found, fractions, rtol=0, atol=1e-9):
                raise SystemExit(f"{info['file']}: other ground-truth lesion areas than an earlier run (another "
                                 "resolution or mask rule?); compare runs scored on the same masks")
            found = np.asarray(fractions, dtype=float)
    return found


def _distinct(runs: list[Run]) -> list[Run]:
    """``runs`` without repeats of one run file: a result that already holds a run, named again beside it,
    counts it once (so a command that adds a seed to ``SEEDS.json`` gives the same result when rerun on the
    ``SEEDS.json`` it wrote). The same file with other per-image Dice is refused."""
    kept: dict[str, Run] = {}
    for run in runs:
        earlier = kept.get(run[2]["file"])
        if earlier is None:
            kept[run[2]["file"]] = run
        elif earlier[0] != run[0] or not np.array_equal(earlier[1], run[1]):
            raise SystemExit(f"{run[2]['file']}: named twice with different per-image Dice (a side trained "
                             "again?); give each run once")
    return list(kept.values())


def analyse(sides: dict[str, list[str]], split: str = "test") -> dict[str, Any]:
    """:func:`analyse_runs` of run specs (paths, ``RESULT.json#SIDE`` or ``SEEDS.json#SIDE``) by side name;
    a run named twice counts once."""
    return analyse_runs({name: _distinct([run for spec in specs for run in load_runs(str(spec))])
                         for name, specs in sides.items()}, split)


def _detectable(pair: dict[str, Any]) -> str:
    """A pair's smallest detectable mean difference (:func:`focusnet.compare.stats.detectable_difference`);
    a dash for results written before it was computed."""
    value = pair["wilcoxon"].get("detectable_difference")
    return "–" if value is None else f"±{value:.4f}"


def markdown(result: dict[str, Any]) -> str:
    lines = ["| side | runs | per-image mean Dice of each run | mean ± s.d. across runs |", "|---|---:|---|---|"]
    for name, side in result["sides"].items():
        each = ", ".join(f"{r['dice_mean']:.4f}" for r in side["runs"])
        sd = "–" if side["sd_of_runs"] is None else f"{side['sd_of_runs']:.4f}"
        lines.append(f"| {name} | {len(side['runs'])} | {each} | {side['mean_of_runs']:.4f} ± {sd} |")
    lines += ["", "| FocusNet++ run | other run | difference (95% CI) | Wilcoxon p | better / worse "
              "| detectable (80% power) |", "|---|---|---|---:|---|---:|"]
    for name, comparison in result["comparisons"].items():
        averaged = {"reference": "seed-averaged", "other": f"{name}, seed-averaged", **comparison["seed_averaged"]}
        for p in comparison["cross_pairs"] + [averaged]:
            lo, hi = p["difference_ci95"]
            lines.append(f"| {p['reference']} | {p['other']} | {p['difference_mean']:+.4f} ({lo:+.4f} to {hi:+.4f}) "
                         f"| {p['wilcoxon']['pvalue']:.3g} | {p['focusnetpp_better']} / {p['focusnetpp_worse']} "
                         f"| {_detectable(p)} |")
    areas = result.get("by_lesion_area")
    if areas is not None:
        heads = [f"{label} ({n})" for label, n in zip(areas["labels"], areas["images"])]
        lines += ["", "Seed-averaged Dice by the fraction of the image the lesion covers (images):", "",
                  "| side | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
        for name, by_area in areas["seed_averaged_dice"].items():
            cells = ["–" if d is None else f"{d:.4f}" for d in by_area]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--focusnetpp", nargs="+", required=True, metavar="RUN", help="FocusNet++ runs (the reference)")
    p.add_argument("--basicunet", nargs="+", default=[], metavar="RUN", help="BasicUNet runs")
    p.add_argument("--side", nargs="+", action="append", default=[], metavar="NAME RUN",
                   help="another side: its name, then its runs (repeatable)")
    p.add_argument("--split", default="test", help="the test split's description, shown with the results")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default: print only)")
    args = p.parse_args(argv)
    sides = {REFERENCE: args.focusnetpp, **({"basicunet": args.basicunet} if args.basicunet else {})}
    for name, *runs in args.side:
        if not runs or name in sides:
            p.error(f"--side {name}: give a new side's name, then at least one run")
        sides[name] = runs
    result = analyse(sides, args.split)
    words = [w for name, runs in sides.items()
             for w in ([f"--{name}"] if name in (REFERENCE, "basicunet") else ["--side", name]) + runs]
    split = [] if args.split == "test" else ["--split", args.split]
    result["command"] = shlex.join(["python", "benchmarks/head_to_head_seeds.py", *words, *split])
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
