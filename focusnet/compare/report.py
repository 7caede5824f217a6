"""A single self-contained ``report.html`` for ``focusnet compare``.

The report has no external reference of any kind: figures and thumbnails are PNG data URIs, the
CSS and the column-sorting script are inline, and a Content-Security-Policy forbids the browser
from fetching anything. Everything that comes from the user (model names, ids, paths, errors,
protocol values, markdown tables) is HTML-escaped; only ``tables_html`` (rendered by
``focusnet.compare.tables``) is inserted as given.

* :func:`write_report` writes the report (atomically);
* :func:`markdown_to_html` is the small markdown (tables, headings, lists, paragraphs) converter;
* :func:`check_report` parses a report back and counts images, tables, sortable headers and
  external references (used by the tests);
* :func:`render_with_chromium` / :func:`dump_dom_with_chromium` load it in headless Chromium.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import html
import io
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Mapping, Sequence

from focusnet.atomic import atomic_write
from focusnet.compare.figures import (
    TRUTH_COLOR,
    _thumb_base,
    _thumb_png,
    model_colors,
)

__all__ = [
    "BROWSERS",
    "check_report",
    "dump_dom_with_chromium",
    "find_browser",
    "markdown_to_html",
    "render_with_chromium",
    "write_report",
]

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

_NUM = ' class="num"'
#: Long side of the gallery's thumbnails in pixels (96 was too small to judge a contour); a click
#: shows one at ``GALLERY_ZOOM`` times that size, pixels kept sharp.
GALLERY_THUMB_SIZE = 128
GALLERY_ZOOM = 3
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_CSS = """
:root { --fg: #1b1f24; --muted: #5b6470; --line: #d5dae0; --bg-alt: #f5f7f9; --accent: #0072B2; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); margin: 0 auto; max-width: 1240px; padding: 1.2rem 1.5rem 3rem; line-height: 1.45; }
h1 { font-size: 1.55rem; margin: 0.2rem 0 0.4rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.02rem; margin: 1.2rem 0 0.4rem; }
h4, h5, h6 { font-size: 0.95rem; margin: 1rem 0 0.3rem; }
p.summary { font-size: 1.05rem; background: var(--bg-alt); border-left: 4px solid var(--accent);
            padding: 0.6rem 0.9rem; margin: 0.6rem 0 1rem; }
nav a { margin-right: 0.9rem; color: var(--accent); text-decoration: none; font-size: 0.92rem; }
table { border-collapse: collapse; margin: 0.4rem 0 1rem; font-size: 0.88rem; }
th, td { border: 1px solid var(--line); padding: 0.25rem 0.5rem; vertical-align: middle; }
th { background: var(--bg-alt); text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
th[data-sort] { cursor: pointer; user-select: none; white-space: nowrap; }
th[data-sort]::after { content: " \\2195"; color: #9aa3ad; font-size: 0.8em; }
th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--fg); }
th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--fg); }
.scroll { overflow-x: auto; }
.md-table td { white-space: nowrap; }
blockquote { margin: 0.4rem 0; padding: 0.2rem 0.8rem; border-left: 3px solid var(--line); }
.paper { border: 2px dashed #b0b7bf; background: #fbfbf7; padding: 0.3rem 1rem 0.6rem; margin-top: 0.6rem; }
.paper .label { font-weight: 600; color: #6b5b00; }
.note { color: var(--muted); font-size: 0.88rem; }
figure { margin: 0.8rem 0 1.4rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.88rem; }
img.thumb { display: block; cursor: zoom-in; }
img.thumb.zoomed { cursor: zoom-out; image-rendering: pixelated; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: -0.1em; margin: 0 0.25em 0 0.7em;
          border: 1px solid #0003; }
.fail { color: #a40000; }
dl.protocol { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; margin: 0.4rem 0 1rem; }
dl.protocol dt { font-weight: 600; }
dl.protocol dd { margin: 0; overflow-wrap: anywhere; }
dl.protocol dl.protocol { margin: 0; }
code { background: var(--bg-alt); padding: 0 0.2em; }
.sig { font-weight: 600; }
footer { margin-top: 2.5rem; color: var(--muted); font-size: 0.82rem; }
"""

_JS = """
(function () {
  function text(cell) {
    if (!cell) return "";
    var v = cell.getAttribute("data-value");
    return (v === null ? cell.textContent : v).trim();
  }
  function num(s) {
    var x = parseFloat(s.replace(/\\u2212/g, "-").replace(/^[^0-9+\\-.]+/, ""));
    return isNaN(x) ? null : x;
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    if (!body) return;
    var idx = th.cellIndex, numeric = th.getAttribute("data-sort") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = text(a.cells[idx]), y = text(b.cells[idx]);
      if (numeric) {
        var nx = num(x), ny = num(y);
        if (nx === null || ny === null) return (nx === null) - (ny === null);
        return dir * (nx - ny);
      }
      if (x === "" || y === "") return (x === "") - (y === "");
      return dir * x.localeCompare(y, undefined, {numeric: true});
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("img.thumb").forEach(function (img) {
    img.title = "click to enlarge (again to shrink)";
    img.addEventListener("click", function () {
      var zoomed = img.classList.toggle("zoomed");
      img.style.width = zoomed ? (img.naturalWidth * ZOOM) + "px" : "";
    });
  });
  document.querySelectorAll("table.sortable th[data-sort]").forEach(function (th) {
    th.tabIndex = 0;
    th.title = "sort by this column";
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); }
    });
  });
})();
"""


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _finite(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _num(x: Any, digits: int = 3) -> str:
    return f"{float(x):.{digits}f}" if _finite(x) else "n/a"


def _dv(x: Any) -> str:
    """The ``data-value`` attribute the sorting script reads (empty for missing values: sorted last)."""
    return f' data-value="{round(float(x), 10)!r}"' if _finite(x) else ' data-value=""'


def _pvalue(p: Any) -> str:
    if not _finite(p):
        return "n/a"
    p = float(p)
    return f"{p:.1e}" if 0 < p < 1e-3 else f"{p:.3f}"


def _scalar(x: Any) -> str:
    """A readable string for a scalar value (floats to 4 significant digits)."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.4g}"
    return str(x)


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _models(comparison: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [m for m in comparison.get("models", []) or [] if isinstance(m, Mapping)]


def _done(comparison: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [m for m in _models(comparison) if m.get("status") == "done"]


def _mean_dice(model: Mapping[str, Any]) -> float | None:
    value = ((model.get("summary") or {}).get("mean") or {}).get("dice")
    return float(value) if _finite(value) else None


# --------------------------------------------------------------------------------------------
# markdown -> HTML
# --------------------------------------------------------------------------------------------
_SEP_CELL = re.compile(r"^:?-{1,}:?$")
_NUMERIC_CELL = re.compile(r"^[\s*_`]*[-+\u2212]?(\d+(\.\d*)?|\.\d+)")


def _split_row(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    cells = re.split(r"(?<!\\)\|", s)
    return [c.strip().replace("\\|", "|") for c in cells]


def _inline(text: str) -> str:
    """Escaped text with **bold** and `code` spans."""
    out = _e(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return out


def _md_table(lines: list[str]) -> str:
    rows = [_split_row(line) for line in lines]
    header: list[str] | None = None
    aligns: list[str] = []
    if len(rows) >= 2 and rows[1] and all(_SEP_CELL.match(c.replace(" ", "")) for c in rows[1] if c):
        header = rows[0]
        for c in rows[1]:
            c = c.replace(" ", "")
            aligns.append("right" if c.endswith(":") and not c.startswith(":") else
                          "center" if c.startswith(":") and c.endswith(":") else "")
        body = rows[2:]
    else:
        body = rows
    width = max([len(r) for r in body] + [len(header or [])])
    numeric = []
    for col in range(width):
        cells = [r[col] for r in body if col < len(r) and r[col] not in ("", "-", "—", "n/a")]
        numeric.append(bool(cells) and all(_NUMERIC_CELL.match(c) for c in cells))
    parts = ['<div class="scroll"><table class="md-table sortable">']
    if header is not None:
        parts.append("<thead><tr>")
        for col in range(width):
            cell = header[col] if col < len(header) else ""
            kind = "num" if numeric[col] else "text"
            cls = ' class="num"' if numeric[col] else ""
            parts.append(f'<th data-sort="{kind}"{cls}>{_inline(cell)}</th>')
        parts.append("</tr></thead>")
    parts.append("<tbody>")
    for r in body:
        parts.append("<tr>")
        for col in range(width):
            cell = r[col] if col < len(r) else ""
            align = aligns[col] if col < len(aligns) else ""
            cls = ' class="num"' if numeric[col] or align == "right" else ""
            style = ' style="text-align:center"' if align == "center" else ""
            parts.append(f"<td{cls}{style}>{_inline(cell)}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def markdown_to_html(text: str) -> str:
    """HTML for the markdown that the tables module writes: pipe tables, headings, lists, paragraphs.

    Every piece of text is HTML-escaped (only ``**bold**`` and ```code``` become tags). Tables get
    the ``sortable`` class, with ``data-sort="num"`` on columns whose cells all start with a number.

    Example:
        >>> markdown_to_html("| model | Dice |\\n|---|---:|\\n| <b> | 0.9 |")  # doctest: +ELLIPSIS
        '<div class="scroll"><table class="md-table sortable"><thead><tr><th data-sort="text">model</th>...&lt;b&gt;...'
    """
    lines = (text or "").splitlines()
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            out.append("<p>" + "<br>".join(_inline(p) for p in para) + "</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("|"):
            flush()
            block = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_md_table(block))
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        if stripped.startswith(">"):
            flush()
            quote = []
            while i < len(lines) and lines[i].strip().startswith(">"):
                quote.append(lines[i].strip()[1:].strip())
                i += 1
            out.append("<blockquote><p>" + " ".join(_inline(q) for q in quote if q) + "</p></blockquote>")
            continue
        if heading:
            flush()
            level = min(6, len(heading.group(1)) + 2)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif re.match(r"^[-*+]\s+", stripped):
            if para:
                flush()
            items.append(re.sub(r"^[-*+]\s+", "", stripped))
        elif not stripped:
            flush()
        else:
            if items:
                flush()
            para.append(stripped)
        i += 1
    flush()
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------
def _summary_line(comparison: Mapping[str, Any]) -> str:
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
        spread = f" ± {_num(std)}" if _finite(std) else ""
        on = f" over {_e(count)} test images" if count is not None else ""
        parts.append(
            f"Best per-image mean Dice: <strong>{_e(best_name)}</strong> {_num(best_dice)}{spread}{on}."
        )
    else:
        parts.append("No model has test results.")
    parts.append(f"{len(models)} model(s) compared: {len(done)} done, {len(failed)} failed.")
    ref = comparison.get("reference")
    if ref:
        parts.append(f"Reference for the paired tests: <strong>{_e(ref)}</strong>.")
    return " ".join(parts)


def _auto_results_table(comparison: Mapping[str, Any]) -> str:
    """A plain results table from the comparison (used when no rendered table is given)."""
    head = [("model", "text"), ("status", "text"), ("Dice mean ± std", "num"), ("Jaccard mean", "num"),
            ("precision", "num"), ("recall", "num"), ("pooled Dice", "num"), ("params", "num"),
            ("GMACs", "num"), ("train s", "num")]
    parts = ['<div class="scroll"><table class="results sortable"><thead><tr>']
    parts += [f'<th data-sort="{k}"{_NUM if k == "num" else ""}>{_e(h)}</th>' for h, k in head]
    parts.append("</tr></thead><tbody>")
    for m in _models(comparison):
        s = m.get("summary") or {}
        mean, std, pooled = s.get("mean") or {}, s.get("std") or {}, s.get("pooled") or {}
        dice = _num(mean.get("dice")) + (f" ± {_num(std.get('dice'))}" if _finite(std.get("dice")) else "")
        params = m.get("params")
        cells = [
            (_e(m.get("name")), "", None),
            (_e(m.get("status")), "", None),
            (dice, "num", mean.get("dice")),
            (_num(mean.get("jaccard")), "num", mean.get("jaccard")),
            (_num(mean.get("precision")), "num", mean.get("precision")),
            (_num(mean.get("recall")), "num", mean.get("recall")),
            (_num(pooled.get("dice")), "num", pooled.get("dice")),
            (f"{int(params):,}" if _finite(params) else "n/a", "num", params),
            (_num(m.get("gmacs"), 2), "num", m.get("gmacs")),
            (_num(m.get("train_seconds"), 0), "num", m.get("train_seconds")),
        ]
        parts.append("<tr>")
        for text, cls, value in cells:
            attr = _dv(value)
            parts.append(f'<td{_NUM if cls else ""}{attr}>{text}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def _dl(mapping: Mapping[str, Any], depth: int = 0) -> str:
    parts = ['<dl class="protocol">']
    for key, value in mapping.items():
        parts.append(f"<dt>{_e(key)}</dt><dd>{_value_html(value, depth)}</dd>")
    parts.append("</dl>")
    return "".join(parts)


def _value_html(value: Any, depth: int = 0) -> str:
    if isinstance(value, Mapping):
        if not value:
            return "—"
        return _dl(value, depth + 1) if depth < 4 else _e(value)
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            return _e(", ".join(_scalar(v) for v in value)) if value else "—"
        return "<ul>" + "".join(f"<li>{_value_html(v, depth + 1)}</li>" for v in value) + "</ul>"
    return _e(_scalar(value))


def _stats_section(stats: Any) -> str:
    if not isinstance(stats, Mapping) or not stats:
        return '<p class="note">No statistics were computed.</p>'
    parts: list[str] = []
    proto = stats.get("protocol") if isinstance(stats.get("protocol"), Mapping) else {}
    conf = proto.get("confidence")
    conf_text = f"{float(conf) * 100:.0f}%" if _finite(conf) else "CI"

    ci = stats.get("ci")
    if isinstance(ci, Mapping) and ci:
        metrics = list(dict.fromkeys(k for v in ci.values() if isinstance(v, Mapping) for k in v))
        parts.append(f"<h3>Per-model {conf_text} bootstrap confidence intervals of the per-image mean</h3>")
        parts.append('<div class="scroll"><table class="stats-ci sortable"><thead><tr><th data-sort="text">model</th>')
        for metric in metrics:
            parts.append(f'<th data-sort="num" class="num">{_e(metric)} mean</th>'
                         f'<th class="num">{_e(conf_text)} CI</th>')
        parts.append('<th data-sort="num" class="num">n</th></tr></thead><tbody>')
        for name, per_metric in ci.items():
            per_metric = per_metric if isinstance(per_metric, Mapping) else {}
            parts.append(f"<tr><td>{_e(name)}</td>")
            n = None
            for metric in metrics:
                entry = per_metric.get(metric) if isinstance(per_metric.get(metric), Mapping) else {}
                mean = entry.get("mean")
                n = entry.get("n", n)
                attr = _dv(mean)
                parts.append(f'<td class="num"{attr}>{_num(mean)}</td>'
                             f'<td class="num">[{_num(entry.get("low"))}, {_num(entry.get("high"))}]</td>')
            parts.append(f'<td class="num">{_e(_scalar(n))}</td></tr>')
        parts.append("</tbody></table></div>")

    tests = stats.get("tests")
    if isinstance(tests, Mapping) and tests:
        metric = proto.get("metric", "dice")
        ref = stats.get("reference")
        parts.append(f"<h3>Paired tests against {_e(ref)} (per-image {_e(metric)})</h3>")
        cols = [("model", "text"), ("n pairs", "num"), ("mean Δ", "num"), ("median Δ", "num"),
                ("W", "num"), ("p", "num"), ("p (Holm)", "num"), ("significant", "text"), ("effect size r", "num")]
        parts.append('<div class="scroll"><table class="stats-tests sortable"><thead><tr>')
        parts += [f'<th data-sort="{k}"{_NUM if k == "num" else ""}>{_e(h)}</th>' for h, k in cols]
        parts.append("</tr></thead><tbody>")
        for name, t in tests.items():
            t = t if isinstance(t, Mapping) else {}
            sig = t.get("significant")
            sig_html = '<span class="sig">yes</span>' if sig is True else ("no" if sig is False else "n/a")
            vals = [
                (_e(_scalar(t.get("n"))), t.get("n")),
                (_num(t.get("mean_difference"), 4), t.get("mean_difference")),
                (_num(t.get("median_difference"), 4), t.get("median_difference")),
                (_e(_scalar(t.get("statistic"))), t.get("statistic")),
                (_pvalue(t.get("pvalue")), t.get("pvalue")),
                (_pvalue(t.get("pvalue_holm")), t.get("pvalue_holm")),
            ]
            parts.append(f"<tr><td>{_e(name)}</td>")
            for text, value in vals:
                attr = _dv(value)
                parts.append(f'<td class="num"{attr}>{text}</td>')
            parts.append(f"<td>{sig_html}</td>")
            es = t.get("effect_size")
            attr = _dv(es)
            parts.append(f'<td class="num"{attr}>{_num(es)}</td></tr>')
        parts.append("</tbody></table></div>")
        parts.append('<p class="note">Δ = model − reference; r &gt; 0: the model scores higher than the '
                     "reference. Significant: Holm-adjusted p ≤ alpha.</p>")

    skipped = stats.get("skipped")
    if isinstance(skipped, Mapping) and skipped:
        parts.append("<h3>Left out of the statistics</h3><ul>")
        parts += [f"<li>{_e(k)}: {_e(v)}</li>" for k, v in skipped.items()]
        parts.append("</ul>")
    notes = stats.get("notes")
    if isinstance(notes, (list, tuple)) and notes:
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")

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
        caption = _e(str(name).replace("_", " "))
        if png is None:
            parts.append(f'<p class="note">Figure {caption}: no PNG file ({_e(Path(path).name)}).</p>')
            continue
        uri = _png_uri(png.read_bytes())
        parts.append(f'<figure id="fig-{_e(name)}"><img src="{uri}" alt="{caption}">'
                     f"<figcaption>{caption} (also saved as {_e(png.stem)}.pdf next to the PNG)</figcaption></figure>")
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
    legend += [f'<span class="swatch" style="background:{_e(colors.get(n, "#E41A1C"))}"></span>{_e(n)}' for n in names]
    parts = ['<p class="note">Contours: ' + " ".join(legend) +
             ". Click a column header to sort (again to reverse); click a thumbnail to enlarge it.</p>"]
    if left_out > 0:
        parts.append(f'<p class="note">Showing the first {len(shown)} of {len(cases)} test images; '
                     f"{left_out} left out (max_gallery = {int(max_gallery)}).</p>")
    parts.append('<div class="scroll"><table id="gallery" class="gallery sortable"><thead><tr>')
    parts.append('<th data-sort="num" class="num">#</th><th data-sort="text">id</th>')
    parts += [f"<th>{_e(n)}</th>" for n in names]
    parts += [f'<th data-sort="num" class="num">Dice {_e(n)}</th>' for n in names]
    parts += [f'<th data-sort="num" class="num">{_e(n)} − {_e(ref)}</th>' for n in others]
    parts.append("</tr></thead><tbody>")
    for index, case in enumerate(shown, start=1):
        image_id = str(case.get("id"))
        dice = dict(case.get("dice") or {})
        predictions = case.get("predictions") or {}
        values = {n: dice.get(n, per_image.get(n, {}).get(image_id)) for n in names}
        parts.append(f'<tr><td class="num">{index}</td><td>{_e(image_id)}</td>')
        try:
            base = _thumb_base(case["image"], GALLERY_THUMB_SIZE) if case.get("image") is not None else None
        except (ValueError, TypeError):
            base = None
        for n in names:
            if base is None:
                parts.append("<td>—</td>")
                continue
            png = _thumb_png(base, case.get("truth"), predictions.get(n), colors.get(n, "#E41A1C"))
            parts.append(f'<td><img class="thumb" src="{_png_uri(png)}" alt="{_e(image_id)} {_e(n)}"></td>')
        for n in names:
            v = values[n]
            attr = _dv(v)
            parts.append(f'<td class="num"{attr}>{_num(v)}</td>')
        for n in others:
            a, b = values[n], values[ref]
            if _finite(a) and _finite(b):
                d = float(a) - float(b)
                parts.append(f'<td class="num"{_dv(d)}>{d:+.3f}</td>')
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
        parts.append(f'<tr><td>{_e(m.get("name"))}</td><td class="fail">{_e(m.get("status"))}</td>'
                     f'<td><code>{_e(m.get("error") or "no error message")}</code></td></tr>')
    parts.append("</tbody></table>")
    return "".join(parts)


def _runs_table(comparison: Mapping[str, Any]) -> str:
    cols = ("name", "model", "preset", "status", "epochs_run", "best_epoch", "train_seconds", "run_dir")
    parts = ['<div class="scroll"><table class="runs"><thead><tr>']
    parts += [f"<th>{_e(c.replace('_', ' '))}</th>" for c in cols]
    parts.append("</tr></thead><tbody>")
    for m in _models(comparison):
        parts.append("<tr>" + "".join(f"<td>{_e(_scalar(m.get(c)))}</td>" for c in cols) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------
def write_report(
    comparison: Mapping[str, Any],
    out_path: Path,
    *,
    tables_html: str | None = None,
    tables_markdown: str | None = None,
    paper_markdown: str | None = None,
    figures: Mapping[str, Path] | None = None,
    cases: Sequence[Mapping[str, Any]] | None = None,
    max_gallery: int = 300,
) -> Path:
    """Write the self-contained HTML report of a comparison.

    Sections: title and summary (best model by per-image mean Dice), results (``tables_html`` as
    given, else ``tables_markdown`` converted, else a table built from the comparison), statistics
    (``comparison["stats"]``), the paper's published numbers (separately labelled), figures (PNG
    embedded; for a ``.pdf`` path the sibling ``.png`` is used), a sortable per-image gallery
    (thumbnails of each done model, per-model Dice, difference to the reference), failures and
    the protocol. The file is written to a temporary file and renamed.

    Args:
        comparison: the ``comparison`` dict.
        out_path: the HTML file to write (parent folders are created).
        tables_html: rendered results tables (trusted HTML from ``focusnet.compare.tables``).
        tables_markdown: the same as markdown, used when ``tables_html`` is None.
        paper_markdown: the paper's reference numbers as markdown.
        figures: ``{name: path}`` of figures to embed, in display order.
        cases: per-image cases (id, image, truth, predictions, dice) for the gallery.
        max_gallery: at most this many images in the gallery (the first ones).

    Returns:
        ``out_path``.

    Example:
        >>> write_report(comparison, Path("out/report.html"), tables_markdown=md, cases=cases)  # doctest: +SKIP
        PosixPath('out/report.html')
    """
    out_path = Path(out_path)
    colors = model_colors(str(m.get("name")) for m in _models(comparison))
    title = comparison.get("title") or "focusnet compare"

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

    try:
        from focusnet import __version__ as version
    except Exception:  # pragma: no cover - the package always has it
        version = "?"
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    sections = [
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
    nav = "".join(f'<a href="#{sid}">{_e(label)}</a>' for sid, label, _ in sections)
    body = "\n".join(
        f'<section id="{sid}"><h2>{_e(label)}</h2>\n{content}\n</section>' for sid, label, content in sections
    )
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(title)}</h1><nav>{nav}</nav>\n"
        f'<p class="summary">{_summary_line(comparison)}</p></header>\n'
        f"{body}\n"
        f"<footer>Written by focusnet {_e(version)} on {_e(date)}. Self-contained: no external "
        "resources.</footer>\n"
        f"<script>{_JS.replace('ZOOM', str(GALLERY_ZOOM))}</script>\n</body></html>\n"
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out_path, page)


# --------------------------------------------------------------------------------------------
# checking and rendering
# --------------------------------------------------------------------------------------------
_REF_ATTRS = {"src", "href", "srcset", "poster", "action", "formaction", "data", "xlink:href", "background", "manifest"}
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]*)|@import\s+['"]?([^'";\s]+)""", re.IGNORECASE)


class _ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images = 0
        self.images_total = 0
        self.bad_images: list[str] = []
        self.tables = 0
        self.sortable_headers = 0
        self.scripts = 0
        self.external: list[str] = []
        self._in_style = False

    def _css(self, text: str) -> None:
        for match in _CSS_URL.finditer(text or ""):
            ref = match.group(1) or match.group(2) or ""
            if ref and not ref.startswith(("data:", "#")):
                self.external.append(ref)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "table":
            self.tables += 1
        elif tag == "th" and "data-sort" in a:
            self.sortable_headers += 1
        elif tag == "script":
            self.scripts += 1
        elif tag == "style":
            self._in_style = True
        elif tag == "link":
            self.external.append(a.get("href", "<link>"))
        for key in _REF_ATTRS & set(a):
            if tag == "link" and key == "href":
                continue
            value = a[key].strip()
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if "style" in a:
            self._css(a["style"])
        if tag == "img":
            self.images_total += 1
            self._check_image(a.get("src", ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data)

    def _check_image(self, src: str) -> None:
        from PIL import Image

        prefix = "data:image/png;base64,"
        if not src.startswith(prefix):
            self.bad_images.append(src[:60] or "<no src>")
            return
        try:
            raw = base64.b64decode(src[len(prefix):], validate=True)
            with Image.open(io.BytesIO(raw)) as im:
                if im.format != "PNG":
                    raise ValueError(f"format {im.format}")
                im.load()
        except (binascii.Error, ValueError, OSError) as exc:
            self.bad_images.append(f"{src[:40]}... ({exc})")
            return
        self.images += 1


def check_report(path: Path) -> dict[str, Any]:
    """Parse a report with :mod:`html.parser` and count what it holds.

    Returns:
        ``images`` (img tags whose src is a base64 PNG data URI that PIL decodes),
        ``images_total`` (all img tags), ``bad_images`` (list of the others),
        ``tables``, ``sortable_headers`` (th with ``data-sort``), ``scripts``,
        ``external_refs`` (count of src/href/... values, ``<link>`` tags and CSS ``url()`` not
        starting with ``data:`` or ``#``), ``external_ref_list``, ``http_mentions`` (occurrences of
        "http://" or "https://" anywhere in the file) and ``bytes``.

    Example:
        >>> info = check_report(Path("out/report.html"))  # doctest: +SKIP
        >>> info["external_refs"], info["bad_images"]  # doctest: +SKIP
        (0, [])
    """
    text = Path(path).read_text(encoding="utf-8")
    parser = _ReportParser()
    parser.feed(text)
    parser.close()
    return {
        "images": parser.images,
        "images_total": parser.images_total,
        "bad_images": parser.bad_images,
        "tables": parser.tables,
        "sortable_headers": parser.sortable_headers,
        "scripts": parser.scripts,
        "external_refs": len(parser.external),
        "external_ref_list": parser.external,
        "http_mentions": len(re.findall(r"https?://", text, flags=re.IGNORECASE)),
        "bytes": len(text.encode("utf-8")),
    }


def find_browser() -> str | None:
    """Path of a Chromium-family browser on PATH (:data:`BROWSERS`), or None.

    Example:
        >>> find_browser()  # doctest: +SKIP
        '/usr/bin/chromium'
    """
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the browser's process group (its own session: started by us, renderers included)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _chromium(args: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    """Run the headless browser with ``args``; (exit code, stdout, stderr). No network, fresh profile.

    The browser runs in a new session and its whole process group is killed on timeout (and any
    helper left over afterwards), so a hung renderer cannot outlive the call.
    """
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no Chromium-family browser found")
    with tempfile.TemporaryDirectory(prefix="focusnet-chromium-") as profile, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
            "--mute-audio", f"--user-data-dir={profile}", *args,
        ]
        env = dict(os.environ, HOME=profile)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            _kill_group(proc)
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


def render_with_chromium(
    html_path: Path,
    png_path: Path,
    timeout: float = 60,
    window_size: tuple[int, int] = (1280, 2000),
) -> Path | None:
    """Screenshot a (local) HTML file with headless Chromium.

    Returns:
        ``png_path``, or None when no Chromium-family browser is installed.

    Raises:
        RuntimeError: the browser ran but wrote no screenshot (its stderr tail is in the message).
        subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds.

    Example:
        >>> render_with_chromium(Path("out/report.html"), Path("out/report.png"))  # doctest: +SKIP
        PosixPath('out/report.png')
    """
    if find_browser() is None:
        return None
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.unlink(missing_ok=True)
    uri = Path(html_path).resolve().as_uri()
    size = f"--window-size={window_size[0]},{window_size[1]}"
    code, _, err = _chromium([f"--screenshot={png_path}", size, uri], timeout)
    if not png_path.is_file() or png_path.stat().st_size == 0:
        tail = err.decode("utf-8", "replace")[-800:]
        raise RuntimeError(f"chromium wrote no screenshot (exit {code}): {tail}")
    return png_path


def dump_dom_with_chromium(html_path: Path, timeout: float = 60) -> str | None:
    """The DOM of a (local) HTML file after its scripts ran, from headless Chromium's ``--dump-dom``.

    Returns:
        The serialised DOM, or None when no Chromium-family browser is installed.

    Raises:
        RuntimeError: the browser printed nothing.

    Example:
        >>> "gallery" in dump_dom_with_chromium(Path("out/report.html"))  # doctest: +SKIP
        True
    """
    if find_browser() is None:
        return None
    code, out, err = _chromium(["--dump-dom", Path(html_path).resolve().as_uri()], timeout)
    dom = out.decode("utf-8", "replace")
    if not dom.strip():
        tail = err.decode("utf-8", "replace")[-800:]
        raise RuntimeError(f"chromium printed no DOM (exit {code}): {tail}")
    return dom
