"""The README's results section, generated from the committed JSON in ``benchmarks/published/``.

:func:`results_block` renders one Markdown table per comparison or group of training runs:

* ``head-to-head`` (``benchmarks/bench_head_to_head.py``) and ``isic-scale``
  (``benchmarks/bench_isic_scale.py report``): every row, the models that are not registered in
  focusnet (``monai.BasicUNet``) included, with the paired test against FocusNet++;
* ``run-summary`` (``benchmarks/publish_run.py``), ``isic-train`` and ``dsb-train``: one row per run,
  the runs grouped by (data set, split, resolution, context) into one table;
* ``transcribed`` files (older single runs whose JSON was not kept) are named in one line that points
  to the model cards, which show them;
* ``head-to-head-seeds`` (``benchmarks/head_to_head_seeds.py``): a comparison over several training seeds
  of each side, shown first, since a single run's verdict moves with its seed.

Each table states its protocol (split, resolution, threshold, aggregation, test n), links to its JSON
and gives the command that reproduces it. The files are read in name order, so the block is
deterministic; ``scripts/update_readme_tables.py`` writes it into README.md between
``<!-- results:start -->`` and ``<!-- results:end -->``, and its ``--check`` fails when it is stale.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .common import ROOT, md_cell
from .measured import PUBLISHED, MeasuredResult, PublishedResultError, _num, load_result_file

#: Kinds whose rows are models compared on the same test images.
COMPARISONS = ("head-to-head", "isic-scale")
#: The kind that summarises comparisons across training seeds.
SEEDS = "head-to-head-seeds"
#: Kinds that hold one training run each; runs of the same protocol share a table.
SINGLE_RUNS = ("run-summary", "isic-train", "dsb-train")
AGGREGATION = ("per-image mean (each image weighs the same); pooled Dice from the confusion counts summed over "
               "the images")


def _rel(path: Path) -> str:
    """``path`` relative to the repository (README links), or its name outside it (tests)."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def _source(path: Path) -> str:
    return f"[`{_rel(path)}`]({_rel(path)})"


def _code(command: str) -> str:
    """A command as inline code (a published command may already be marked up)."""
    return command if command.startswith("`") else f"`{command}`"


def _threshold(data: dict[str, Any]) -> float:
    """The probability threshold the file's scores used: its protocol's, else the engine's default
    (``bench_isic_train.py`` and ``bench_dsb_train.py`` do not set one)."""
    protocol = data.get("protocol") or data.get("summary", {}).get("protocol") or {}
    if "threshold" in protocol:
        return float(protocol["threshold"])
    from focusnet.engine.config import TrainConfig

    return float(TrainConfig().threshold)


def _signed(x: float) -> str:
    """A difference with its sign, and a true minus sign."""
    return f"{x:+.4f}".replace("-", "−")


def _budget(minutes: float | None, threads: int) -> str:
    limit = "no time limit" if minutes is None else f"{minutes:g} minutes per model"
    return f"{limit}, {threads} thread(s) each"


def _comparison_command(data: dict[str, Any], record: MeasuredResult) -> str:
    """The published command, else the benchmark script's steps (``isic-scale`` trains side by side)."""
    if "command" in data.get("published", {}) or data["benchmark"] != "isic-scale":
        return _code(record.command)
    script, limit = "python benchmarks/bench_isic_scale.py", (
        "" if data["minutes"] is None else f" --minutes {data['minutes']:g}")
    sides = " ".join(row["side"] for row in data["rows"])
    return (f"`{script} prepare --work WORK`, then for each side in ({sides}) `{script} side SIDE --work WORK"
            f"{limit} --threads {data['threads']} --size {data['size']}`, then `{script} report --work WORK`")


def _paired(data: dict[str, Any], row: dict[str, Any], index: int) -> dict[str, Any] | None:
    """The paired test of ``row`` against FocusNet++: ``paired[side]`` (isic-scale), or the one test of
    a two-model head-to-head (against its second row)."""
    if "side" in row:
        return data["paired"].get(row["side"])
    return data["paired"] if index > 0 and len(data["rows"]) == 2 else None


def _comparison(path: Path, data: dict[str, Any], records: list[MeasuredResult]) -> list[str]:
    """One comparison's table: every row, then the paired tests, the protocol and the command."""
    if not records:
        raise PublishedResultError(f"{path}: a comparison without a FocusNet++ (registered model) row")
    r = records[0]
    n_all = len(data["ids"]) if "ids" in data else None
    protocol = data.get("protocol", {})
    models = ", ".join(f"`{row['model']}`" for row in data["rows"])
    title = data.get("published", {}).get("title") or f"{data['benchmark']}: {models}, {r.resolution}²"
    lines = [
        f"### {md_cell(title)}",
        "",
        f"Protocol: test split of `{r.dataset}` ({md_cell(r.split)}), n = "
        f"{n_all if n_all is not None else r.n_images} images, scored at {r.resolution}² (model input), "
        f"probability > {_threshold(data):g}; {md_cell(protocol.get('aggregation', AGGREGATION))}. "
        f"Equal budget: {_budget(data['minutes'], data['threads'])}. Run {r.date}"
        + (f", torch {data['torch']}" if "torch" in data else "") + f". JSON: {_source(path)}.",
        "",
        "| model | params (M) | epochs | per-image Dice (95% CI) | Jaccard | thresholded Jaccard | pooled Dice "
        "| precision | recall | n | FocusNet++ − it (Wilcoxon p) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    tests = []
    for i, row in enumerate(data["rows"]):
        lo, hi = row["dice_ci95"]
        p = _paired(data, row, i)
        vs = f"{_signed(p['difference_mean'])} (p = {p['wilcoxon']['pvalue']:.2g})" if p else "–"
        lines.append(
            f"| `{row['model']}` | {row['params_M']:.2f} | {row['epochs']} | {_num(row['dice_mean'])} "
            f"({_num(lo)}–{_num(hi)}) | {_num(row.get('jaccard_mean'))} | {_num(row.get('thresholded_jaccard'))} "
            f"| {_num(row.get('pooled_dice'))} | {_num(row.get('precision_mean'))} | {_num(row.get('recall_mean'))} "
            f"| {row.get('n', n_all)} | {vs} |"
        )
        if p:
            ci = p.get("difference_ci95")
            tests.append(
                f"FocusNet++ − `{row['model']}`: {_signed(p['difference_mean'])} per-image Dice"
                + (f" (95% CI {_signed(ci[0])} to {_signed(ci[1])})" if ci else "")
                + f", Wilcoxon p = {p['wilcoxon']['pvalue']:.2g}"
                + (f"; FocusNet++ better on {p['focusnetpp_better']} images, worse on {p['focusnetpp_worse']}"
                   if "focusnetpp_better" in p else "")
            )
    lines.append("")
    if tests:
        what = protocol.get("test", "two-sided Wilcoxon signed-rank on per-image Dice")
        lines += [f"Paired test ({md_cell(what)}, same test images): " + "; ".join(tests) + ".", ""]
    if "context" in data.get("published", {}):
        lines += [f"Context: {md_cell(r.context)}.", ""]
    lines += [f"Reproduce: {_comparison_command(data, r)}.", ""]
    return lines


def _seeds(path: Path, data: dict[str, Any]) -> list[str]:
    """A comparison over seeds: each side's runs and their spread, then for each side paired with FocusNet++
    the single-run verdicts and the seed-averaged test."""
    title = data.get("published", {}).get("title") or "The comparison over training seeds"
    lines = [
        f"### {md_cell(title)}", "",
        f"Protocol: {md_cell(data['protocol']['split'])}, n = {data['test_images']} images, probability > "
        f"{_threshold(data):g}; per-image mean Dice of each run; the runs of a side differ only in their training "
        f"seed. Run {data['date'][:4]}-{data['date'][4:6]}-{data['date'][6:8]}. JSON: {_source(path)}.", "",
        "| side | runs | per-image mean Dice of each run | mean ± s.d. across runs |", "|---|---:|---|---|",
    ]
    models = {}
    for name, side in data["sides"].items():
        runs = side["runs"]
        models[name] = model = runs[0].get("model") or name
        overrides = ", ".join(o for o in runs[0].get("overrides", []) if not o.startswith("seed="))
        sd = "–" if side["sd_of_runs"] is None else f"{side['sd_of_runs']:.4f}"
        lines.append(f"| `{model}`" + (f" ({md_cell(overrides)})" if overrides else "") + f" | {len(runs)} | "
                     + ", ".join(f"{r['dice_mean']:.4f}" for r in runs) + f" | {side['mean_of_runs']:.4f} ± {sd} |")
    lines.append("")
    for name, comparison in data["comparisons"].items():
        pairs = comparison["cross_pairs"]
        diffs = [p["difference_mean"] for p in pairs]
        fn_wins = sum(p["wilcoxon"]["pvalue"] < 0.05 and p["difference_mean"] > 0 for p in pairs)
        other_wins = sum(p["wilcoxon"]["pvalue"] < 0.05 and p["difference_mean"] < 0 for p in pairs)
        a = comparison["seed_averaged"]
        lo, hi = a["difference_ci95"]
        lines += [
            f"FocusNet++ against `{models[name]}`: single runs paired (each FocusNet++ run against each of its runs, "
            f"{len(pairs)} pairs): differences from {_signed(min(diffs))} to {_signed(max(diffs))}; FocusNet++ wins "
            f"{fn_wins} and `{models[name]}` {other_wins} of them at Wilcoxon p < 0.05. Seed-averaged (each image's "
            f"Dice averaged over a side's runs, then {md_cell(data['protocol']['test'])}): "
            f"{_signed(a['difference_mean'])} (95% CI {_signed(lo)} to {_signed(hi)}), "
            f"p = {a['wilcoxon']['pvalue']:.2g}; FocusNet++ better on "
            f"{a['focusnetpp_better']} images, worse on {a['focusnetpp_worse']}.", "",
        ]
    areas = data.get("by_lesion_area")
    if areas is not None:
        heads = [f"{label} ({n})" for label, n in zip(areas["labels"], areas["images"])]
        lines += ["Seed-averaged per-image Dice by the fraction of the image the lesion covers (images per group):", "",
                  "| side | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
        for name, by_area in areas["seed_averaged_dice"].items():
            lines.append(f"| `{models[name]}` | " + " | ".join("–" if d is None else f"{d:.4f}" for d in by_area) + " |")
        lines.append("")
    if "context" in data.get("published", {}):
        lines += [f"Context: {md_cell(data['published']['context'])}.", ""]
    return lines + [f"Reproduce: {_code(data['command'])}.", ""]


def _single_runs(group: list[tuple[MeasuredResult, dict[str, Any]]]) -> list[str]:
    """One table of training runs that share data set, split, resolution and context."""
    r = group[0][0]
    thresholds = sorted({_threshold(data) for _, data in group})
    lines = [
        f"### Training runs: `{r.dataset}`, {r.resolution}²",
        "",
        f"Protocol: test split of `{r.dataset}` ({md_cell(r.split)}), scored at {r.resolution}² (model input), "
        f"probability > {' / '.join(f'{t:g}' for t in thresholds)}; {AGGREGATION}; n per row. "
        f"Context: {md_cell(r.context)}.",
        "",
        "| model | epochs | training (s) | per-image Dice | Jaccard | precision | recall | pooled Dice | n | date "
        "| JSON |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for rec, _ in group:
        name = f"{rec.model}:{rec.preset}" if rec.preset else rec.model
        wall = "–" if rec.train_seconds is None else f"{rec.train_seconds:.0f}"
        lines.append(
            f"| `{name}` | {rec.epochs if rec.epochs is not None else '–'} | {wall} | {_num(rec.dice)} "
            f"| {_num(rec.jaccard)} | {_num(rec.precision)} | {_num(rec.recall)} | {_num(rec.pooled_dice)} "
            f"| {rec.n_images} | {rec.date} | {_source(rec.source)} |"
        )
    lines += ["", "Reproduce:", ""]
    for rec, _ in group:
        name = f"{rec.model}:{rec.preset}" if rec.preset else rec.model
        lines.append(f"- `{name}`: {md_cell(_code(rec.command))}")
    return lines + [""]


def results_block(folder: Path = PUBLISHED) -> str:
    """The Markdown of every comparison and training run in ``folder/*.json`` (files in name order)."""
    comparisons: list[str] = []
    seeds: list[str] = []
    groups: dict[tuple[str, str, int, str], list[tuple[MeasuredResult, dict[str, Any]]]] = {}
    transcribed: list[Path] = []
    for path in sorted(folder.glob("*.json")):
        records = load_result_file(path)  # validates the file and names it when it is malformed
        data = json.loads(path.read_text(encoding="utf-8"))
        kind = data["benchmark"]
        try:
            if kind in COMPARISONS:
                comparisons += _comparison(path, data, records)
            elif kind == SEEDS:
                seeds += _seeds(path, data)
            elif kind in SINGLE_RUNS:
                for rec in records:
                    groups.setdefault((rec.dataset, rec.split, rec.resolution, rec.context), []).append((rec, data))
            elif kind == "transcribed":
                transcribed.append(path)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, PublishedResultError):
                raise
            raise PublishedResultError(f"{path}: malformed {kind!r} result ({type(exc).__name__}: {exc})") from exc
    lines = seeds + comparisons
    for group in groups.values():
        lines += _single_runs(group)
    if transcribed:
        lines.append("Older single runs (numbers transcribed from `benchmarks/RESULTS.md`; their JSON was not kept): "
                     + ", ".join(_source(p) for p in transcribed) + "; see the [model cards](docs/models/index.md).")
    return "\n".join(lines).strip() + "\n"
