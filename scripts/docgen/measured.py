"""Measured accuracy for the model cards, read from the committed JSON in ``benchmarks/published/``.

Every ``benchmarks/published/*.json`` becomes one or more :class:`MeasuredResult` records. The
file's top-level ``"benchmark"`` key picks the adapter that reads it (:data:`ADAPTERS`):

* ``isic-train`` and ``dsb-train``: the JSON that ``benchmarks/bench_isic_train.py`` and
  ``benchmarks/bench_dsb_train.py`` write;
* ``head-to-head``: the JSON of ``benchmarks/bench_head_to_head.py`` (only rows of registered models);
* ``run-summary``: a ``focusnet train`` run folder packed by ``benchmarks/publish_run.py``;
* ``transcribed``: numbers copied from ``benchmarks/RESULTS.md`` for runs whose JSON was not kept;
* ``head-to-head-seeds`` (``benchmarks/head_to_head_seeds.py``): no records (it summarises runs across
  training seeds; the README shows it), but its fields are checked here like every other kind's.

Any file may carry ``"published": {"title": ..., "context": ..., "command": ...}``, which overrides
the adapter's defaults. An unknown kind or a malformed file raises :class:`PublishedResultError`
naming the file: the docs are not generated from half the results.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import ROOT, md_cell

PUBLISHED = ROOT / "benchmarks" / "published"
#: Folder names that say nothing about the data set (the data set is their parent).
_GENERIC_FOLDERS = ("stage1_train", "train", "images")


class PublishedResultError(ValueError):
    """A published result file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class MeasuredResult:
    """One model's test scores from one published run (per-image means unless said)."""

    model: str
    preset: str | None
    title: str
    context: str
    dataset: str
    split: str  # how train / val / test were drawn, with their sizes where known
    resolution: int  # side of the square model input the scores were computed at
    epochs: int | None
    train_seconds: float | None
    dice: float
    jaccard: float | None
    precision: float | None
    recall: float | None
    pooled_dice: float | None
    n_images: int
    command: str
    date: str  # YYYY-MM-DD
    source: Path
    note: str = ""
    transcribed_from: str | None = None


def _day(text: Any) -> str:
    """``YYYY-MM-DD`` from a stamp such as ``20261204-165746`` or ``2026-12-04T21:32:47+0000``.

    Example:
        >>> from docgen.measured import _day
        >>> _day("20261204-165746"), _day("2026-12-04T21:32:47+0000")
        ('2026-12-04', '2026-12-04')
    """
    m = re.match(r"(\d{4})-?(\d{2})-?(\d{2})", str(text))
    if not m:
        raise ValueError(f"date {text!r} is not YYYY-MM-DD or YYYYMMDD")
    return "-".join(m.groups())


def _dataset(source: str) -> str:
    """The data set's name from its folder: ``.../dsb2018_all/stage1_train`` is ``dsb2018_all``."""
    path = Path(source)
    return path.parent.name if path.name in _GENERIC_FOLDERS else path.name


def _counts(counts: dict[str, int]) -> str:
    return f"{counts['train']} train / {counts['val']} val / {counts['test']} test"


def _train_bench(data: dict[str, Any], source: Path) -> list[MeasuredResult]:
    """``isic-train`` / ``dsb-train``: one run, scored at model and at original resolution."""
    test = data["test"]["model_resolution"]
    original = data["test"].get("original_resolution")
    split = data.get("split") or Path(data["split_file"]).name
    note = f"Dice {original['mean']['dice']:.4f} at original resolution." if original else ""
    script = "bench_isic_train.py" if data["benchmark"] == "isic-train" else "bench_dsb_train.py"
    preset = data.get("preset")
    return [MeasuredResult(
        model=data["model"], preset=preset, title=f"{data['model']} `{preset}`, {data['size']}²",
        context=f"`benchmarks/{script}`, {data.get('budget', 'no budget recorded')}",
        dataset=_dataset(data["data"]), split=f"split `{split}`: {_counts(data['counts'])}",
        resolution=int(data["size"]), epochs=int(data["epochs"]), train_seconds=float(data["train_wall_s"]),
        dice=test["mean"]["dice"], jaccard=test["mean"]["jaccard"], precision=test["mean"]["precision"],
        recall=test["mean"]["recall"], pooled_dice=test["pooled"]["dice"], n_images=int(test["count"]),
        command=f"python benchmarks/{script}", date=_day(data["date"]), source=source, note=note,
    )]


def _registered_rows(data: dict[str, Any]) -> list[tuple[dict[str, Any], str, str | None]]:
    """(row, model, preset) of a multi-model result's rows whose model is registered
    (``focusnetpp:paper``, ``unet``; not ``monai.BasicUNet``)."""
    from focusnet.models import list_models

    registered = set(list_models())
    out = []
    for row in data["rows"]:
        model, _, preset = row["model"].partition(":")
        if model in registered:
            out.append((row, model, preset or None))
    return out


def _row_record(data: dict[str, Any], row: dict[str, Any], model: str, preset: str | None, source: Path, *,
                kind: str, context: str, split: str, n_images: int, command: str, paired: str = "") -> MeasuredResult:
    """The record of one row of a multi-model result; the other rows are named in the note."""
    lo, hi = row["dice_ci95"]
    rivals = ", ".join(f"{r['model']} {r['dice_mean']:.4f}" for r in data["rows"] if r is not row)
    return MeasuredResult(
        model=model, preset=preset, title=f"{row['model']}, {data['size']}², {kind}", context=context,
        dataset=_dataset(data["data"]), split=split, resolution=int(data["size"]), epochs=int(row["epochs"]),
        train_seconds=float(row["train_wall_s"]), dice=row["dice_mean"], jaccard=row.get("jaccard_mean"),
        precision=row.get("precision_mean"), recall=row.get("recall_mean"), pooled_dice=row.get("pooled_dice"),
        n_images=n_images, command=command, date=_day(data["date"]), source=source,
        note=f"Dice 95% CI {lo:.4f}–{hi:.4f}.{paired}" + (f" Same run, per-image Dice: {rivals}." if rivals else ""),
    )


def _head_to_head(data: dict[str, Any], source: Path) -> list[MeasuredResult]:
    """``head-to-head`` (``benchmarks/bench_head_to_head.py``): a record per registered model's row."""
    return [_row_record(data, row, model, preset, source, kind="head-to-head",
                        context=f"{data['minutes']:g} minutes each, {data['threads']} threads",
                        split=f"split file `{Path(data['split_file']).name}`", n_images=len(data["ids"]),
                        command="python benchmarks/bench_head_to_head.py")
            for row, model, preset in _registered_rows(data)]


def _isic_scale(data: dict[str, Any], source: Path) -> list[MeasuredResult]:
    """``isic-scale`` (``benchmarks/bench_isic_scale.py report``): a record per registered model's row,
    with its paired test against FocusNet++."""
    out = []
    context = f"{data['minutes']:g} minutes each, {data['threads']} thread(s) each, side by side"
    split = f"split `bcdu` (sorted, scaled): {_counts(data['counts'])}"
    for row, model, preset in _registered_rows(data):
        p = data["paired"].get(row["side"])
        paired = (f" FocusNet++ − it: {p['difference_mean']:+.4f} (Wilcoxon p = {p['wilcoxon']['pvalue']:.2g})."
                  if p else "")
        out.append(_row_record(data, row, model, preset, source, kind="ISIC at scale", context=context, split=split,
                               n_images=int(row["n"]), command="python benchmarks/bench_isic_scale.py", paired=paired))
    return out


def _run_summary(data: dict[str, Any], source: Path) -> list[MeasuredResult]:
    """``run-summary``: a ``focusnet train`` run folder packed by ``benchmarks/publish_run.py``."""
    config, summary = data["config"], data["summary"]
    mean, protocol = summary["mean"], summary.get("protocol", {})
    named = str(config["data"]["split"])
    if named.endswith(".json"):  # a split file: its name, not this machine's path
        split = f"split file `{Path(named).name}`: {_counts(data['counts'])}"
    else:
        split = f"split `{named}` (seed {config['data']['split_seed']}): {_counts(data['counts'])}"
    seconds = data["train_seconds"]
    return [MeasuredResult(
        model=config["model"], preset=config.get("preset"), title=f"{config['model']} `{config.get('preset')}`, "
        f"{config['size']}²", context=f"`focusnet train`, run `{Path(data['run']).name}`",
        dataset=_dataset(config["data"]["source"]), split=split, resolution=int(config["size"]),
        epochs=int(data["epochs"]), train_seconds=None if seconds is None else float(seconds),
        dice=mean["dice"], jaccard=mean["jaccard"], precision=mean["precision"], recall=mean["recall"],
        pooled_dice=summary["pooled"]["dice"], n_images=int(summary["count"]),
        command="focusnet train", date=_day(data["date"]), source=source,
        note=f"Weights: {protocol['checkpoint']}." if "checkpoint" in protocol else "",
    )]


def _transcribed(data: dict[str, Any], source: Path) -> list[MeasuredResult]:
    """``transcribed``: the numbers of a ``benchmarks/RESULTS.md`` row whose JSON was not kept."""
    test = data["test"]
    mean = test["mean"]
    return [MeasuredResult(
        model=data["model"], preset=data.get("preset"), title=data["title"], context=data["context"],
        dataset=data["data"], split=data["split"], resolution=int(data["size"]), epochs=data.get("epochs"),
        train_seconds=data.get("train_wall_s"), dice=mean["dice"], jaccard=mean.get("jaccard"),
        precision=mean.get("precision"), recall=mean.get("recall"), pooled_dice=test.get("pooled_dice"),
        n_images=int(test["count"]), command=data["command"], date=_day(data["date"]), source=source,
        note=data.get("note", ""), transcribed_from=data["transcribed_from"],
    )]


def _head_to_head_seeds(data: dict[str, Any], source: Path) -> list[MeasuredResult]:
    """``head-to-head-seeds``: checks the fields the README reads; a model card shows single runs only."""
    for name, side in data["sides"].items():
        runs = side["runs"]
        if not runs or any(not isinstance(r["dice_mean"], float) for r in runs):
            raise ValueError(f"side {name!r} has no runs or a run without its per-image mean Dice")
    if set(data["comparisons"]) != set(data["sides"]) - {data["reference"]} or not data["comparisons"]:
        raise ValueError("the comparisons do not pair the reference side with each other side")
    for comparison in data["comparisons"].values():
        averaged = comparison["seed_averaged"]
        float(averaged["difference_mean"]) + float(averaged["wilcoxon"]["pvalue"])
    str(data["command"]) + str(data["protocol"]["split"])
    return []


#: The adapter of each ``"benchmark"`` kind.
ADAPTERS: dict[str, Callable[[dict[str, Any], Path], list[MeasuredResult]]] = {
    "isic-train": _train_bench,
    "dsb-train": _train_bench,
    "head-to-head": _head_to_head,
    "isic-scale": _isic_scale,
    "run-summary": _run_summary,
    "transcribed": _transcribed,
    "head-to-head-seeds": _head_to_head_seeds,
}


def load_result_file(path: Path) -> list[MeasuredResult]:
    """The records of one published JSON, with its ``"published"`` annotation applied."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PublishedResultError(f"{path}: not readable JSON ({exc})") from exc
    kind = data.get("benchmark") if isinstance(data, dict) else None
    if kind not in ADAPTERS:
        raise PublishedResultError(f"{path}: unknown \"benchmark\" kind {kind!r}; known: {', '.join(ADAPTERS)}")
    try:
        records = ADAPTERS[kind](data, path)
        overrides: dict[str, Any] = {
            k: str(v) for k, v in data.get("published", {}).items() if k in ("title", "context", "command")
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PublishedResultError(f"{path}: malformed {kind!r} result ({type(exc).__name__}: {exc})") from exc
    return [dataclasses.replace(r, **overrides) for r in records]


def measured_results(folder: Path = PUBLISHED) -> list[MeasuredResult]:
    """Every record of ``folder/*.json``, newest first (then by file name)."""
    records = [r for path in sorted(folder.glob("*.json")) for r in load_result_file(path)]
    return sorted(records, key=lambda r: (r.date, r.source.name), reverse=True)


def results_for(results: list[MeasuredResult], model: str, preset: str | None) -> list[MeasuredResult]:
    """The records of one model card (a record without a preset belongs to every preset's card)."""
    return [r for r in results if r.model == model and r.preset in (preset, None)]


def _num(x: float | None) -> str:
    """A score with 4 decimals, or fewer where it was published with fewer (a transcribed table).

    Example:
        >>> from docgen.measured import _num
        >>> _num(0.85102737), _num(0.828), _num(None)
        ('0.8510', '0.828', '–')
    """
    if x is None:
        return "–"
    return f"{x:g}" if round(x, 4) == x else f"{x:.4f}"


def _link(r: MeasuredResult) -> str:
    rel = r.source.relative_to(ROOT).as_posix() if r.source.is_relative_to(ROOT) else r.source.name
    return f"[`{rel}`](../../{rel})"


def accuracy_lines(records: list[MeasuredResult]) -> list[str]:
    """The body of a card's "Expected accuracy" section."""
    if not records:
        return [
            "Not measured on the shared data yet. The paper's own figures (its Tables 1 and 3) use its split and "
            "protocol; see [how our metrics and split differ](../explanation/protocol.md).",
            "",
        ]
    lines = [
        "Measured on the project's shared development data (not the paper's protocol or split); each result is "
        "read from its JSON in `benchmarks/published/`, and [`benchmarks/RESULTS.md`](../../benchmarks/RESULTS.md) "
        "gives the machine and the full context:",
        "",
    ]
    for r in records:
        wall = "?" if r.train_seconds is None else f"{r.train_seconds:.0f} s"
        origin = _link(r)
        if r.transcribed_from:
            why = re.search(r"\(([^()]*)\)$", r.transcribed_from)
            origin += ", transcribed from RESULTS.md" + (f" ({why.group(1)})" if why else "")
        lines.append(
            f"- **{md_cell(r.title)}** ({md_cell(r.context)}, {r.date}): `{r.dataset}`, {md_cell(r.split)}; "
            f"epochs: {r.epochs if r.epochs is not None else '?'}; training wall time: {wall}. Test split, "
            f"{r.n_images} images at {r.resolution}² (model input), per-image means: Dice {_num(r.dice)}, "
            f"Jaccard {_num(r.jaccard)}, "
            f"precision {_num(r.precision)}, recall {_num(r.recall)}"
            + (f"; pooled Dice {_num(r.pooled_dice)}." if r.pooled_dice is not None else ".")
            + (f" {md_cell(r.note)}" if r.note else "")
            + f" Command: {md_cell(r.command if r.command.startswith('`') else f'`{r.command}`')}. Source: {origin}."
        )
    lines.append("")
    return lines


def index_cell(records: list[MeasuredResult]) -> str:
    """The model index's "measured" column: per-image mean test Dice, data set, resolution, n."""
    return "; ".join(f"{_num(r.dice)} ({r.dataset}, {r.resolution}², n = {r.n_images})" for r in records) or "–"
