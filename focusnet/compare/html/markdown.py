"""The small markdown converter of the compare report: pipe tables, headings, lists, quotes, paragraphs.

It reads the markdown that :mod:`focusnet.compare.tables` writes; every piece of text is escaped.

Example:
    >>> markdown_to_html("# Results")
    '<h3>Results</h3>'
"""
from __future__ import annotations

import re

from focusnet.compare.html.values import escape

__all__ = ["markdown_to_html"]

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
    out = escape(text)
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
