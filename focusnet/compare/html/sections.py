"""The sections of the compare report: summary, results, statistics, figures, gallery, failures, protocol.

Everything that comes from the user (model names, ids, paths, errors, protocol values) is escaped
here; only ``tables_html`` is inserted as given.

Example:
    >>> [sid for sid, _, _ in sections({"models": []})]
    ['results', 'statistics', 'paper', 'figures', 'gallery', 'failures', 'protocol']
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from focusnet.compare.colors import PREDICTION_FALLBACK_COLOR, TRUTH_COLOR, model_colors
from focusnet.compare.html.markdown import markdown_to_html
from focusnet.compare.html.values import NUM, data_value, escape, finite, num, png_uri, pvalue, scalar
from focusnet.compare.thumbnails import thumbnail_base, thumbnail_png

__all__ = ["GALLERY_THUMB_SIZE", "GALLERY_ZOOM", "sections", "summary_line"]

#: Long side of the gallery's thumbnails in pixels (96 was too small to judge a contour); a click
#: shows one at ``GALLERY_ZOOM`` times that size, pixels kept sharp.
GALLERY_THUMB_SIZE = 128
GALLERY_ZOOM = 3


def _models(comparison: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [m for m in comparison.get("models", []) or [] if isinstance(m, Mapping)]


def _done(comparison: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [m for m in _models(comparison) if m.get("status") == "done"]


def _mean_dice(model: Mapping[str, Any]) -> float | None:
    value = ((model.get("summary") or {}).get("mean") or {}).get("dice")
    return float(value) if finite(value) else None



def summary_line(comparison: Mapping[str, Any]) -> str:
    """The one-paragraph summary under the title: the best model by per-image mean Dice, counts, reference.

    Example:
        >>> summary_line({"models": [{"name": "unet", "status": "failed"}]})
        'No model has test results. 1 model(s) compared: 0 done, 1 failed.'
    """
    models = _models(comparison)
    done = _done(comparison)
    failed = [m for m in models if m.get("status") == "failed"]
    scored = [(d, str(m.get("name"))) for m in done if (d := _mean_dice(m)) is not None]
    parts = []
    if scored:
        best_dice = max(d for d, _ in scored)
        best_name = next(n for d, n in scored if d == best_dice)  # ties: the first in comparison order
        best = next(m for m in done if str(m.get("name")) == best_name)
        std = ((best.get("summary") or {}).get("std") or {}).get("dice")
        count = (best.get("summary") or {}).get("count")
        spread = f" ± {num(std)}" if finite(std) else ""
        on = f" over {escape(count)} test images" if count is not None else ""
        parts.append(
            f"Best per-image mean Dice: <strong>{escape(best_name)}</strong> {num(best_dice)}{spread}{on}."
        )
    else:
        parts.append("No model has test results.")
    parts.append(f"{len(models)} model(s) compared: {len(done)} done, {len(failed)} failed.")
    ref = comparison.get("reference")
    if ref:
        parts.append(f"Reference for the paired tests: <strong>{escape(ref)}</strong>.")
    return " ".join(parts)


def _auto_results_table(comparison: Mapping[str, Any]) -> str:
    """A plain results table from the comparison (used when no rendered table is given)."""
    head = [("model", "text"), ("status", "text"), ("Dice mean ± std", "num"), ("Jaccard mean", "num"),
            ("precision", "num"), ("recall", "num"), ("pooled Dice", "num"), ("params", "num"),
            ("GMACs", "num"), ("train s", "num")]
    parts = ['<div class="scroll"><table class="results sortable"><thead><tr>']
    parts += [f'<th data-sort="{k}"{NUM if k == "num" else ""}>{escape(h)}</th>' for h, k in head]
    parts.append("</tr></thead><tbody>")
    for m in _models(comparison):
        s = m.get("summary") or {}
        mean, std, pooled = s.get("mean") or {}, s.get("std") or {}, s.get("pooled") or {}
        dice = num(mean.get("dice")) + (f" ± {num(std.get('dice'))}" if finite(std.get("dice")) else "")
        params = m.get("params")
        cells = [
            (escape(m.get("name")), "", None),
            (escape(m.get("status")), "", None),
            (dice, "num", mean.get("dice")),
            (num(mean.get("jaccard")), "num", mean.get("jaccard")),
            (num(mean.get("precision")), "num", mean.get("precision")),
            (num(mean.get("recall")), "num", mean.get("recall")),
            (num(pooled.get("dice")), "num", pooled.get("dice")),
            (f"{int(params):,}" if finite(params) else "n/a", "num", params),
            (num(m.get("gmacs"), 2), "num", m.get("gmacs")),
            (num(m.get("train_seconds"), 0), "num", m.get("train_seconds")),
        ]
        parts.append("<tr>")
        for text, cls, value in cells:
            attr = data_value(value)
            parts.append(f'<td{NUM if cls else ""}{attr}>{text}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def _dl(mapping: Mapping[str, Any], depth: int = 0) -> str:
    parts = ['<dl class="protocol">']
    for key, value in mapping.items():
        parts.append(f"<dt>{escape(key)}</dt><dd>{_value_html(value, depth)}</dd>")
    parts.append("</dl>")
    return "".join(parts)


def _value_html(value: Any, depth: int = 0) -> str:
    if isinstance(value, Mapping):
        if not value:
            return "—"
        return _dl(value, depth + 1) if depth < 4 else escape(value)
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            return escape(", ".join(scalar(v) for v in value)) if value else "—"
        return "<ul>" + "".join(f"<li>{_value_html(v, depth + 1)}</li>" for v in value) + "</ul>"
    return escape(scalar(value))


def _stats_section(stats: Any) -> str:
    if not isinstance(stats, Mapping) or not stats:
        return '<p class="note">No statistics were computed.</p>'
    parts: list[str] = []
    proto = stats.get("protocol")
    proto = proto if isinstance(proto, Mapping) else {}
    conf = proto.get("confidence")
    conf_text = f"{float(conf) * 100:.0f}%" if finite(conf) else "CI"

    ci = stats.get("ci")
    if isinstance(ci, Mapping) and ci:
        metrics = list(dict.fromkeys(k for v in ci.values() if isinstance(v, Mapping) for k in v))
        parts.append(f"<h3>Per-model {conf_text} bootstrap confidence intervals of the per-image mean</h3>")
        parts.append('<div class="scroll"><table class="stats-ci sortable"><thead><tr><th data-sort="text">model</th>')
        for metric in metrics:
            parts.append(f'<th data-sort="num" class="num">{escape(metric)} mean</th>'
                         f'<th class="num">{escape(conf_text)} CI</th>')
        parts.append('<th data-sort="num" class="num">n</th></tr></thead><tbody>')
        for name, per_metric in ci.items():
            per_metric = per_metric if isinstance(per_metric, Mapping) else {}
            parts.append(f"<tr><td>{escape(name)}</td>")
            n = None
            for metric in metrics:
                entry = per_metric.get(metric)
                entry = entry if isinstance(entry, Mapping) else {}
                mean = entry.get("mean")
                n = entry.get("n", n)
                attr = data_value(mean)
                parts.append(f'<td class="num"{attr}>{num(mean)}</td>'
                             f'<td class="num">[{num(entry.get("low"))}, {num(entry.get("high"))}]</td>')
            parts.append(f'<td class="num">{escape(scalar(n))}</td></tr>')
        parts.append("</tbody></table></div>")

    tests = stats.get("tests")
    if isinstance(tests, Mapping) and tests:
        metric = proto.get("metric", "dice")
        ref = stats.get("reference")
        parts.append(f"<h3>Paired tests against {escape(ref)} (per-image {escape(metric)})</h3>")
        cols = [("model", "text"), ("n pairs", "num"), ("mean Δ", "num"), ("median Δ", "num"),
                ("W", "num"), ("p", "num"), ("p (Holm)", "num"), ("significant", "text"), ("effect size r", "num"),
                ("detectable Δ (80% power)", "num")]
        parts.append('<div class="scroll"><table class="stats-tests sortable"><thead><tr>')
        parts += [f'<th data-sort="{k}"{NUM if k == "num" else ""}>{escape(h)}</th>' for h, k in cols]
        parts.append("</tr></thead><tbody>")
        for name, t in tests.items():
            t = t if isinstance(t, Mapping) else {}
            sig = t.get("significant")
            sig_html = '<span class="sig">yes</span>' if sig is True else ("no" if sig is False else "n/a")
            vals = [
                (escape(scalar(t.get("n"))), t.get("n")),
                (num(t.get("mean_difference"), 4), t.get("mean_difference")),
                (num(t.get("median_difference"), 4), t.get("median_difference")),
                (escape(scalar(t.get("statistic"))), t.get("statistic")),
                (pvalue(t.get("pvalue")), t.get("pvalue")),
                (pvalue(t.get("pvalue_holm")), t.get("pvalue_holm")),
            ]
            parts.append(f"<tr><td>{escape(name)}</td>")
            for text, value in vals:
                attr = data_value(value)
                parts.append(f'<td class="num"{attr}>{text}</td>')
            parts.append(f"<td>{sig_html}</td>")
            es = t.get("effect_size")
            attr = data_value(es)
            parts.append(f'<td class="num"{attr}>{num(es)}</td>')
            detectable = t.get("detectable_difference")
            parts.append(f'<td class="num"{data_value(detectable)}>{num(detectable, 4)}</td></tr>')
        parts.append("</tbody></table></div>")
        parts.append('<p class="note">Δ = model − reference; r &gt; 0: the model scores higher than the '
                     "reference. Significant: Holm-adjusted p ≤ alpha. Detectable Δ: the smallest true mean "
                     "difference these test images detect with 80% power; a smaller Δ is below their "
                     "resolution.</p>")

    skipped = stats.get("skipped")
    if isinstance(skipped, Mapping) and skipped:
        parts.append("<h3>Left out of the statistics</h3><ul>")
        parts += [f"<li>{escape(k)}: {escape(v)}</li>" for k, v in skipped.items()]
        parts.append("</ul>")
    notes = stats.get("notes")
    if isinstance(notes, (list, tuple)) and notes:
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")

    known = {"protocol", "reference", "ci", "tests", "skipped", "notes"}
    rest = {k: v for k, v in stats.items() if k not in known}
    if rest:
        parts.append("<h3>Other statistics</h3>" + _dl(rest))
    if proto:
        parts.append("<h3>How the statistics were computed</h3>" + _dl(proto))
    return "\n".join(parts)


def _figure_png(path: Path) -> Path | None:
    path = Path(path)
    if path.suffix.lower() == ".png":
        candidates = [path]
    else:
        candidates = [path.with_suffix(".png"), path.parent / f"{path.name}.png"]
    return next((c for c in candidates if c.is_file()), None)


def _figures_section(figures: Mapping[str, Path] | None) -> str:
    if not figures:
        return '<p class="note">No figures.</p>'
    parts = []
    for name, path in figures.items():
        png = _figure_png(Path(path))
        caption = escape(str(name).replace("_", " "))
        if png is None:
            parts.append(f'<p class="note">Figure {caption}: no PNG file ({escape(Path(path).name)}).</p>')
            continue
        uri = png_uri(png.read_bytes())
        parts.append(f'<figure id="fig-{escape(name)}"><img src="{uri}" alt="{caption}">'
                     f"<figcaption>{caption} (also saved as {escape(png.stem)}.pdf next to the PNG)"
                     "</figcaption></figure>")
    return "\n".join(parts)


def _gallery_section(
    comparison: Mapping[str, Any],
    cases: Sequence[Mapping[str, Any]] | None,
    max_gallery: int,
    colors: Mapping[str, str],
) -> str:
    if not cases:
        return '<p class="note">No per-image cases were given.</p>'
    names = [str(m.get("name")) for m in _done(comparison)]
    per_image: dict[str, dict[str, Any]] = {}
    for m in _done(comparison):
        for row in ((m.get("summary") or {}).get("per_image")) or []:
            if isinstance(row, Mapping) and "id" in row:
                per_image.setdefault(str(m.get("name")), {})[str(row["id"])] = row.get("dice")
    ref = comparison.get("reference")
    ref = ref if ref in names else None
    others = [n for n in names if n != ref] if ref else []
    shown = list(cases)[: max(0, int(max_gallery))]
    left_out = len(cases) - len(shown)

    legend = [f'<span class="swatch" style="background:{TRUTH_COLOR}"></span>ground truth']
    legend += [
        f'<span class="swatch" style="background:{escape(colors.get(n, PREDICTION_FALLBACK_COLOR))}"></span>{escape(n)}'
        for n in names
    ]
    parts = ['<p class="note">Contours: ' + " ".join(legend) +
             ". Click a column header to sort (again to reverse); click a thumbnail to enlarge it.</p>"]
    if left_out > 0:
        parts.append(f'<p class="note">Showing the first {len(shown)} of {len(cases)} test images; '
                     f"{left_out} left out (max_gallery = {int(max_gallery)}).</p>")
    parts.append('<div class="scroll"><table id="gallery" class="gallery sortable"><thead><tr>')
    parts.append('<th data-sort="num" class="num">#</th><th data-sort="text">id</th>')
    parts += [f"<th>{escape(n)}</th>" for n in names]
    parts += [f'<th data-sort="num" class="num">Dice {escape(n)}</th>' for n in names]
    parts += [f'<th data-sort="num" class="num">{escape(n)} − {escape(ref)}</th>' for n in others]
    parts.append("</tr></thead><tbody>")
    for index, case in enumerate(shown, start=1):
        image_id = str(case.get("id"))
        dice = dict(case.get("dice") or {})
        predictions = case.get("predictions") or {}
        values = {n: dice.get(n, per_image.get(n, {}).get(image_id)) for n in names}
        parts.append(f'<tr><td class="num">{index}</td><td>{escape(image_id)}</td>')
        try:
            base = thumbnail_base(case["image"], GALLERY_THUMB_SIZE) if case.get("image") is not None else None
        except (ValueError, TypeError):
            base = None
        for n in names:
            if base is None:
                parts.append("<td>—</td>")
                continue
            png = thumbnail_png(base, case.get("truth"), predictions.get(n), colors.get(n, PREDICTION_FALLBACK_COLOR))
            parts.append(f'<td><img class="thumb" src="{png_uri(png)}" alt="{escape(image_id)} {escape(n)}"></td>')
        for n in names:
            v = values[n]
            attr = data_value(v)
            parts.append(f'<td class="num"{attr}>{num(v)}</td>')
        for n in others:
            a, b = values[n], values[str(ref)]  # others is empty without a reference
            if finite(a) and finite(b):
                d = float(a) - float(b)
                parts.append(f'<td class="num"{data_value(d)}>{d:+.3f}</td>')
            else:
                parts.append('<td class="num" data-value="">n/a</td>')
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    return "\n".join(parts)


def _failures_section(comparison: Mapping[str, Any]) -> str:
    failed = [m for m in _models(comparison) if m.get("status") not in ("done", None)]
    if not failed:
        return '<p class="note">No model failed.</p>'
    parts = ['<table class="failures"><thead><tr><th>model</th><th>status</th><th>error</th></tr></thead><tbody>']
    for m in failed:
        parts.append(f'<tr><td>{escape(m.get("name"))}</td><td class="fail">{escape(m.get("status"))}</td>'
                     f'<td><code>{escape(m.get("error") or "no error message")}</code></td></tr>')
    parts.append("</tbody></table>")
    return "".join(parts)


def _runs_table(comparison: Mapping[str, Any]) -> str:
    cols = ("name", "model", "preset", "status", "epochs_run", "best_epoch", "train_seconds", "run_dir")
    parts = ['<div class="scroll"><table class="runs"><thead><tr>']
    parts += [f"<th>{escape(c.replace('_', ' '))}</th>" for c in cols]
    parts.append("</tr></thead><tbody>")
    for m in _models(comparison):
        parts.append("<tr>" + "".join(f"<td>{escape(scalar(m.get(c)))}</td>" for c in cols) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def sections(
    comparison: Mapping[str, Any],
    *,
    tables_html: str | None = None,
    tables_markdown: str | None = None,
    paper_markdown: str | None = None,
    figures: Mapping[str, Path] | None = None,
    cases: Sequence[Mapping[str, Any]] | None = None,
    max_gallery: int = 300,
) -> list[tuple[str, str, str]]:
    """The report's sections as ``(id, heading, HTML)``, in page order (arguments as ``write_report``'s).

    Example:
        >>> sid, heading, content = sections({"models": []})[-2]
        >>> sid, heading, content
        ('failures', 'Failures', '<p class="note">No model failed.</p>')
    """
    colors = model_colors(str(m.get("name")) for m in _models(comparison))
    if tables_html is not None:
        results = tables_html
    elif tables_markdown is not None:
        results = markdown_to_html(tables_markdown)
    else:
        results = _auto_results_table(comparison)

    protocol = comparison.get("protocol")
    entries: dict[str, Any] = {}
    for key in ("dataset", "reference"):
        if comparison.get(key) is not None:
            entries["reference model" if key == "reference" else key] = comparison[key]
    entries.update(protocol if isinstance(protocol, Mapping) else {})
    protocol_html = _dl(entries) if entries else '<p class="note">No protocol recorded.</p>'

    return [
        ("results", "Results", f'<div class="results-tables">{results}</div>'),
        ("statistics", "Statistics", _stats_section(comparison.get("stats"))),
        ("paper", "Published numbers (paper)",
         '<div class="paper"><p class="label">Reference numbers reported in the FocusNet++ paper '
         "(Kaul et al., ISBI 2021), copied for comparison; they were not produced by this run and "
         "come from the paper's own training and split.</p>"
         + (markdown_to_html(paper_markdown) if paper_markdown
            else '<p class="note">No published numbers for this dataset.</p>')
         + "</div>"),
        ("figures", "Figures", _figures_section(figures)),
        ("gallery", "Per-image gallery", _gallery_section(comparison, cases, max_gallery, colors)),
        ("failures", "Failures", _failures_section(comparison)),
        ("protocol", "Protocol", protocol_html + "<h3>Runs</h3>" + _runs_table(comparison)),
    ]
