"""focusnet.compare.report: self-contained HTML (no external refs, images decode, sorting, escaping), Chromium."""
from __future__ import annotations

import os
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from focusnet.compare.report import markdown_to_html, write_report
from tests.compare.chromium import dump_dom_with_chromium, find_browser, render_with_chromium
from tests.compare.html_check import check_report

EVIL = "<script>alert(1)</script>"
IDS = ["a1", "b2", "c3", "d4", "e5", f"id{EVIL}"]

TABLE_MD = """## Test set (original resolution)

| model | Dice | Jaccard | params |
|:--|--:|--:|--:|
| focusnetpp | **0.800 ± 0.05** | 0.700 | 1.49 M |
| unet | 0.750 ± 0.06 | 0.650 | 31.0 M |
| broken | — | — | n/a |

- aggregation: per-image mean <b>
"""
PAPER_MD = "| model | Dice |\n|---|---|\n| FocusNet++ (paper) | 0.8890 |\n"


def _blob(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def make(evil_model: bool = False):
    rng = np.random.default_rng(1)
    other = EVIL if evil_model else "unet"
    dice = {"focusnetpp": [0.9, 0.8, 0.7, 0.85, 0.6, 0.95], other: [0.7, 0.9, 0.6, 0.8, None, 0.75]}

    def model(name, values):
        rows = [{"id": i, "dice": d} for i, d in zip(IDS, values)]
        finite = [v for v in values if v is not None]
        return {"name": name, "model": name, "preset": None, "status": "done", "error": None,
                "params": 1234, "gmacs": 0.5, "train_seconds": 3.2, "epochs_run": 2, "best_epoch": 1,
                "run_dir": f"runs/{name}",
                "summary": {"per_image": rows, "mean": {"dice": float(np.mean(finite))},
                            "std": {"dice": float(np.std(finite))}, "count": len(rows)}}

    comparison = {
        "title": f"synthetic {EVIL}", "dataset": "folder", "reference": "focusnetpp",
        "protocol": {"data": "/data/x<y>", "split": "random", "epochs": 2, "threshold": 0.5,
                     "versions": {"focusnet": "0.1.0", "torch": "2.x"}, "hardware": "2 cores, no GPU"},
        "models": [model("focusnetpp", dice["focusnetpp"]), model(other, dice[other]),
                   {"name": "broken", "model": "r2unet", "status": "failed", "error": f"boom {EVIL}"}],
        "stats": {
            "protocol": {"metric": "dice", "confidence": 0.95, "ci_method": "percentile bootstrap"},
            "reference": "focusnetpp",
            "ci": {"focusnetpp": {"dice": {"mean": 0.8, "low": 0.7, "high": 0.9, "n": 6}},
                   other: {"dice": {"mean": 0.75, "low": 0.65, "high": 0.85, "n": 5}}},
            "tests": {other: {"n": 5, "mean_difference": -0.03, "median_difference": -0.05, "statistic": 4.0,
                              "pvalue": 0.0004, "pvalue_holm": 0.0004, "significant": True, "effect_size": -0.4,
                              "detectable_difference": 0.0213}},
            "skipped": {"broken": "status 'failed'"}, "notes": [],
        },
    }
    cases = []
    for i, image_id in enumerate(IDS):
        cases.append({
            "id": image_id,
            "image": rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8),
            "truth": _blob(20, 30, 10, 15, 5),
            "predictions": {"focusnetpp": _blob(20, 30, 10, 16, 5), other: _blob(10, 15, 5, 7, 2)},
            "dice": {"focusnetpp": dice["focusnetpp"][i], other: dice[other][i]},
        })
    return comparison, cases


def _figures(tmp_path):
    for stem, colour in (("curves", (200, 30, 30)), ("dist", (30, 30, 200))):
        Image.new("RGB", (40, 30), colour).save(tmp_path / f"{stem}.png")
        (tmp_path / f"{stem}.pdf").write_bytes(b"%PDF-1.4\n")
    return {"training_curves": tmp_path / "curves.png", "dice_distribution": tmp_path / "dist.pdf"}


def test_report_self_contained(tmp_path):
    comparison, cases = make()
    out = write_report(comparison, tmp_path / "out" / "report.html", tables_markdown=TABLE_MD,
                       paper_markdown=PAPER_MD, figures=_figures(tmp_path), cases=cases)
    assert out == tmp_path / "out" / "report.html"
    assert os.listdir(out.parent) == ["report.html"]  # atomic: no temp file left
    info = check_report(out)
    assert info["external_refs"] == 0, info["external_ref_list"]
    assert info["http_mentions"] == 0
    assert info["bad_images"] == [] and info["images"] == info["images_total"] == 2 + 6 * 2
    # results (md), paper (md), CI, tests, gallery, failures, runs
    assert info["tables"] == 7
    # md results 4 + paper 2 + CI (model, mean, n) 3 + tests 10 + gallery (#, id, 2 Dice, 1 delta) 5
    assert info["sortable_headers"] == 24
    text = out.read_text()
    assert info["scripts"] == 1 and "function sortBy" in text and 'aria-sort' in text
    assert '<table id="gallery" class="gallery sortable">' in text
    assert '<th data-sort="num" class="num">Dice unet</th>' in text
    assert '<td class="num" data-value="-0.2">-0.200</td>' in text  # a1: unet - focusnetpp = 0.7 - 0.9
    assert '<td class="num" data-value="">n/a</td>' in text  # e5: unet's Dice is undefined
    assert "Best per-image mean Dice: <strong>focusnetpp</strong> 0.800" in text
    assert 'class="paper"' in text and "FocusNet++ (paper)" in text
    assert "<strong>0.800 ± 0.05</strong>" in text and "&lt;b&gt;" in text
    assert "4.0e-04" in text and '<span class="sig">yes</span>' in text
    assert '<td class="num" data-value="0.0213">0.0213</td></tr>' in text  # the test set's resolution
    assert "<dt>hardware</dt><dd>2 cores, no GPU</dd>" in text and "<dt>torch</dt>" in text
    assert "/data/x&lt;y&gt;" in text
    assert "Showing the first" not in text


def test_report_escapes_everything_and_limits_gallery(tmp_path):
    comparison, cases = make(evil_model=True)
    out = write_report(comparison, tmp_path / "r.html", tables_markdown=f"| model |\n|---|\n| {EVIL} |",
                       cases=cases, max_gallery=4)
    text = out.read_text()
    assert text.count("<script>") == 1  # only the sorting script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "boom &lt;script&gt;" in text
    info = check_report(out)
    assert info["scripts"] == 1 and info["external_refs"] == 0 and info["bad_images"] == []
    assert info["images"] == 4 * 2
    assert "Showing the first 4 of 6 test images; 2 left out" in text


def test_report_tables_html_passthrough_and_fallback(tmp_path):
    comparison, _ = make()
    rendered = '<table class="t"><tr><td>X-RESULTS</td></tr></table>'
    out = write_report(comparison, tmp_path / "a.html", tables_html=rendered)
    text = out.read_text()
    assert "X-RESULTS" in text and "No per-image cases" in text and "No figures." in text
    del comparison["stats"]
    out = write_report(comparison, tmp_path / "b.html")  # no tables: built from the comparison
    text = out.read_text()
    assert '<table class="results sortable">' in text and "No statistics were computed" in text
    assert check_report(out)["external_refs"] == 0


def test_markdown_to_html():
    out = markdown_to_html("# T\n\n| m | Dice |\n|---|---:|\n| <x> | 0.9 |\n| y | −0.1 |\n\ntext `a|b`")
    assert out.startswith("<h3>T</h3>")
    assert '<th data-sort="text">m</th><th data-sort="num" class="num">Dice</th>' in out
    assert "<td>&lt;x&gt;</td>" in out and "<code>a|b</code>" in out


def test_check_report_counts_external_refs(tmp_path):
    page = tmp_path / "p.html"
    page.write_text('<html><head><link rel="stylesheet" href="https://cdn.example/x.css">'
                    '<style>body{background:url(http://x/y.png)}</style></head>'
                    '<body><img src="x.png"><a href="#top">t</a><script src="//x/y.js"></script></body></html>')
    info = check_report(page)
    assert info["external_refs"] == 4 and info["images"] == 0 and len(info["bad_images"]) == 1


@pytest.mark.skipif(find_browser() is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    comparison, cases = make()
    out = write_report(comparison, tmp_path / "report.html", tables_markdown=TABLE_MD, cases=cases[1:5])
    # the DOM dump is of a copy that clicks the "Dice unet" header once: checks the sorting script
    clicked = tmp_path / "clicked.html"
    click = ("<script>Array.prototype.find.call(document.querySelectorAll('#gallery th'),"
             " function (th) { return th.textContent === 'Dice unet'; }).click();</script></body>")
    clicked.write_text(out.read_text().replace("</body>", click))
    try:
        shot = render_with_chromium(out, tmp_path / "shot.png", timeout=60)
        dom = dump_dom_with_chromium(clicked, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("headless chromium timed out")
    assert shot is not None and shot.is_file()
    with Image.open(shot) as im:
        im = im.convert("RGB")
        assert im.size == (1280, 2000)
        colours = im.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20, "screenshot is (nearly) a single colour"
    assert dom is not None and '<section id="results">' in dom
    assert re.search(r'<table class="md-table sortable">.*focusnetpp', dom, re.S)
    assert 'tabindex="0"' in dom  # the sorting script ran and made the headers focusable
    gallery = dom[dom.index('<table id="gallery"'):]
    gallery = gallery[:gallery.index("</table>")]
    order = re.findall(r'<tr><td class="num">\d+</td><td>([^<]*)</td>', gallery)
    assert order == ["c3", "d4", "b2", "e5"]  # unet's Dice ascending: 0.6, 0.8, 0.9, undefined last
    assert 'aria-sort="ascending"' in gallery


def test_gallery_thumbnails_are_larger_and_enlarge_on_click(tmp_path):
    """96-pixel thumbnails were too small to judge a contour (issue 17, item 11)."""
    import base64
    import io

    from focusnet.compare.report import GALLERY_THUMB_SIZE, GALLERY_ZOOM

    comparison, cases = make()
    text = write_report(comparison, tmp_path / "r.html", cases=cases).read_text()
    thumbs = re.findall(r'<img class="thumb" src="data:image/png;base64,([^"]+)"', text)
    assert len(thumbs) == 6 * 2
    sizes = {Image.open(io.BytesIO(base64.b64decode(t))).size for t in thumbs}
    assert sizes == {(GALLERY_THUMB_SIZE, round(20 * GALLERY_THUMB_SIZE / 30))} and GALLERY_THUMB_SIZE > 96
    # click to enlarge: the handler, its zoom factor and the hint
    assert 'classList.toggle("zoomed")' in text and f"img.naturalWidth * {GALLERY_ZOOM}" in text
    assert "click a thumbnail to enlarge it" in text
