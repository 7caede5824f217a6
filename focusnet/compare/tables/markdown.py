"""The results as Markdown: the main table, the pooled table, the protocol and a note on the statistics.

Example:
    >>> _md_table(["a", "b"], [["1", "2"]])
    ['| a | b |', '|---|---:|', '| 1 | 2 |']
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from focusnet.compare.paper_reference import paper_tables
from focusnet.compare.tables.rows import (
    _DASH,
    _LABELS,
    METRICS,
    _best,
    _cells,
    _display_name,
    _f,
    _gmacs_size,
    _status,
    results_rows,
)

__all__ = ["to_markdown"]


def _md_escape(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _md_table(header: Sequence[str], body: Iterable[Sequence[str]], left: Sequence[int] = (0,)) -> list[str]:
    """A Markdown table; columns in ``left`` are left-aligned, the others right-aligned."""
    rule = "|" + "|".join("---" if i in left else "---:" for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _statistics_note(comparison: Mapping[str, Any]) -> list[str]:
    stats = comparison.get("stats")
    if not stats:
        return ["No statistics were computed (no `stats` in the comparison): no confidence intervals or tests."]
    proto = stats.get("protocol") or {}
    conf = proto.get("confidence", 0.95)
    lines = [
        f"- **Dice {conf:.0%} CI**: {proto.get('ci_method', '?')}; {proto.get('n_resamples', '?')} "
        f"resamples, seed {proto.get('seed', '?')}.",
        f"- **p (Holm)**: {proto.get('test', '?')}; zero_method {proto.get('zero_method', '?')}; "
        f"method {proto.get('wilcoxon_method', '?')}. {proto.get('correction', '')}. "
        f"`*`: adjusted p <= alpha = {proto.get('alpha', 0.05)}.",
        f"- **r**: {proto.get('effect_size', '?')}.",
        *_detectable_note(stats),
        f"- **Pairing**: {proto.get('pairing', '?')}. {proto.get('unit', '')}".rstrip(),
        "- With a few tens of test images and a short training run these tests say whether the "
        "difference between the runs on this test set is systematic; they do not account for "
        "training randomness (one seed per model).",
    ]
    for note in stats.get("notes") or []:
        lines.append(f"- Note: {note}")
    for name, why in (stats.get("skipped") or {}).items():
        lines.append(f"- Not in the statistics: {name}: {why}")
    return [line.replace("\n", " ") for line in lines]


def _detectable_note(stats: Mapping[str, Any]) -> list[str]:
    """One line: each test's smallest detectable mean difference of the tested metric (the test set's resolution)."""
    tests = stats.get("tests") or {}
    found = {name: t.get("detectable_difference") for name, t in tests.items()
             if t.get("detectable_difference") is not None}
    if not found:
        return []
    each = ", ".join(f"{name} ±{value:.4f}" for name, value in found.items())
    definition = (stats.get("protocol") or {}).get("detectable_difference", "")
    return [f"- **Detectable difference** against the reference: {each}. A difference smaller than this is "
            f"below what these test images resolve: {definition}."]


def to_markdown(comparison: Mapping[str, Any], footer: bool = True) -> str:
    """The results as Markdown: the main table, the pooled table, then (``footer``) protocol and statistics.

    Main table: per-image mean ± population std of precision, recall, Dice and Jaccard (best mean
    Dice and Jaccard in bold), the thresholded Jaccard (ISIC 2018), the bootstrap CI of the mean
    Dice, the Holm-adjusted Wilcoxon p and the rank-biserial r against the reference, parameters,
    GMACs, training minutes and best epoch (numbered from 0) / epochs run. A failed model keeps its row, with its
    error in the Status column and dashes elsewhere. A second table gives the pooled values.

    Args:
        comparison: the ``comparison`` dict.
        footer: append the ``comparison["protocol"]`` items and a note on the statistics.

    Example:
        >>> md = to_markdown({"title": "t", "dataset": "folder", "models": []}, footer=False)
        >>> md.splitlines()[0]
        '## Results: t'
    """
    rows = results_rows(comparison)
    isic = comparison.get("dataset") == "isic2018"
    reference = comparison.get("reference")
    size = _gmacs_size(rows)
    best = {m: _best(rows, f"{m}_mean") for m in ("dice", "jaccard")}
    n_images = sorted({r["n_images"] for r in rows if r["n_images"] is not None})
    n_text = ", ".join(str(n) for n in n_images) or "?"

    lines = [f"## Results: {_md_escape(comparison.get('title', 'focusnet compare'))}", ""]
    intro = (
        f"Per-image mean ± population std over {n_text} test images (each image weighs the same); "
        "best mean Dice and Jaccard in bold."
    )
    if isic:
        intro += " Thr. Jaccard: ISIC 2018 thresholded Jaccard (per-image Jaccard, 0 below 0.65, then the mean)."
    if reference:
        intro += (
            f" p: Wilcoxon signed-rank test of per-image Dice against `{_md_escape(reference)}` (ref.), "
            "Holm-adjusted across models; r: rank-biserial effect size (> 0: the model beats the reference)."
        )
    lines += [intro, ""]

    header = ["Model", "Status"] + [_LABELS[m] for m in METRICS]
    if isic:
        header.append("Thr. Jaccard")
    header += [
        "Dice 95% CI",
        "p (Holm)",
        "r",
        "Params (M)",
        f"GMACs ({size}×{size})" if size else "GMACs",
        "Train (min)",
        "Best epoch / epochs run",
    ]
    body = []
    for r in rows:
        name = _md_escape(_display_name(r)) + (" (ref.)" if r["is_reference"] else "")
        if r["status"] != "done":
            status = _status(r)
            body.append([name, _md_escape(status)] + [_DASH] * (len(header) - 2))
            continue
        cells = [name, "done"]
        for m in METRICS:
            mean, std = r[f"{m}_mean"], r[f"{m}_std"]
            text = _f(mean)
            if mean is not None and best.get(m) is not None and mean == best[m]:
                text = f"**{text}**"
            cells.append(text if std is None else f"{text} ± {std:.4f}")
        c = _cells(r, rows, isic)
        if isic:
            cells.append(c["tj"])
        cells += [c["ci"], c["p"], c["effect"], c["params"], c["gmacs"], c["minutes"], c["epochs"]]
        body.append(cells)
    lines += _md_table(header, body, left=(0, 1))

    done = [r for r in rows if r["status"] == "done"]
    if done:
        pooled = "Pooled over all test pixels (metrics from the confusion counts summed over the test images):"
        lines += ["", pooled, ""]
        lines += _md_table(
            ["Model"] + [_LABELS[m] for m in METRICS],
            ([_md_escape(_display_name(r))] + [_f(r[f"{m}_pooled"]) for m in METRICS] for r in done),
        )
    if paper_tables(comparison.get("dataset")):
        lines += ["", "The paper's own numbers are in `paper_reference.md`, kept apart: they are not comparable."]

    if footer:
        lines += ["", "### Protocol", ""]
        protocol = comparison.get("protocol") or {}
        lines += [f"- **{_md_escape(k)}**: {_md_escape(_flat(v))}" for k, v in protocol.items()] or [
            "- (none recorded)"
        ]
        lines += ["", "### Statistics", ""]
        lines += _statistics_note(comparison)
    return "\n".join(lines) + "\n"
