"""Test helper: parse a compare report back and count what it holds (images, tables, external refs)."""
from __future__ import annotations

import base64
import binascii
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from PIL import Image

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
