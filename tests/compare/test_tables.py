"""focusnet.compare.tables and paper_reference: rows equal summarize(), CSV/LaTeX/Markdown, paper block."""
from __future__ import annotations

import csv
import doctest
import io
import re

import numpy as np
import pytest

from focusnet.compare import paper_reference, tables
from focusnet.compare.paper_reference import TABLE1, TABLE2, TABLE3, paper_tables
from focusnet.compare.stats import compare_statistics
from focusnet.complexity import PAPER_TABLE2
from focusnet.metrics import summarize

IDS = ["ISIC_0000001", "ISIC_0000002", "ISIC_0000003", "ISIC_0000004", "ISIC_0000005"]


def _comparison(dataset: str = "isic2018") -> dict:
    good = np.array([[400, 20, 30, 550], [300, 10, 10, 680], [500, 40, 5, 455], [350, 30, 60, 560], [420, 0, 25, 555]])
    bad = good + np.array([-60, 90, 60, -90])
    models = [
        {
            "name": "focusnetpp", "model": "focusnetpp", "preset": "paper", "status": "done", "error": None,
            "params": 1487941, "gmacs": 4.35, "gmacs_size": 256, "train_seconds": 612.3, "epochs_run": 8,
            "best_epoch": 6, "summary": summarize(good, IDS),
        },
        {
            "name": "wide_unet", "model": "wide_unet", "preset": None, "status": "done", "error": None,
            "params": 9163201, "gmacs": 20.5, "gmacs_size": 256, "train_seconds": 1200.0, "epochs_run": 8,
            "best_epoch": 8, "summary": summarize(bad, IDS),
        },
        {"name": "r2unet", "model": "r2unet", "preset": None, "status": "failed", "error": "CUDA out of memory", "summary": None},
    ]
    comp = {
        "title": "focusnet compare: isic_test, quick profile",
        "dataset": dataset,
        "reference": "focusnetpp",
        "protocol": {"split": "bcdu (280/40/80)", "test_images": 5, "versions": {"focusnet": "0.1.0", "torch": "2.x"}},
        "models": models,
    }
    comp["stats"] = compare_statistics(comp, n_resamples=300)
    return comp


def test_doctests():
    from focusnet.compare.tables import latex, markdown, paper, rows

    results = [doctest.testmod(m) for m in (tables, rows, markdown, latex, paper)]
    assert sum(r.failed for r in results) == 0
    assert sum(r.attempted for r in results) >= 17  # every example of the single-module tables.py, and more
    assert doctest.testmod(paper_reference).failed == 0


def test_rows_equal_summarize():
    comp = _comparison()
    rows = tables.results_rows(comp)
    assert [r["name"] for r in rows] == ["focusnetpp", "wide_unet", "r2unet"]
    for row, model in zip(rows[:2], comp["models"][:2]):
        s = model["summary"]
        for m in ("precision", "recall", "dice", "jaccard"):
            assert row[f"{m}_mean"] == s["mean"][m] and row[f"{m}_std"] == s["std"][m]
            assert row[f"{m}_pooled"] == s["pooled"][m]
        assert row["thresholded_jaccard"] == s["thresholded_jaccard"] and row["n_images"] == 5
    ref, other, failed = rows
    assert ref["is_reference"] and ref["wilcoxon_p"] is None
    assert ref["dice_ci_low"] == comp["stats"]["ci"]["focusnetpp"]["dice"]["low"]
    assert other["wilcoxon_p_holm"] == comp["stats"]["tests"]["wide_unet"]["pvalue_holm"]
    assert other["detectable_difference"] == comp["stats"]["tests"]["wide_unet"]["detectable_difference"] > 0
    assert other["effect_size"] == -1.0 and other["reference"] == "focusnetpp"
    assert ref["train_minutes"] == pytest.approx(612.3 / 60, abs=1e-4) and ref["params"] == 1487941
    assert failed["status"] == "failed" and failed["error"] == "CUDA out of memory"
    assert all(failed[k] is None for k in ("dice_mean", "params", "gmacs", "dice_ci_low", "thresholded_jaccard"))
    assert "thresholded_jaccard" not in tables.results_rows(_comparison("dsb2018"))[0]


def test_csv_round_trips():
    comp = _comparison()
    text = tables.to_csv(comp)
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == tables.csv_columns("isic2018")
    parsed = list(reader)
    rows = tables.results_rows(comp)
    assert len(parsed) == 3 and "±" not in text
    for got, want in zip(parsed, rows):
        for key, value in want.items():
            if isinstance(value, bool):
                assert got[key] == str(value).lower()
            elif isinstance(value, (int, float)):
                assert float(got[key]) == value, key
            elif value is None:
                assert got[key] == "", key
    assert parsed[2]["error"] == "CUDA out of memory" and parsed[2]["dice_mean"] == ""


def _balanced(tex: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_latex_escaped_balanced_bold():
    comp = _comparison()
    comp["models"][2]["error"] = "bad_thing {x} 100% & more"
    tex = tables.to_latex(comp)
    assert tex.startswith("\\begin{table}") and tex.rstrip().endswith("\\end{table}")
    for cmd in ("\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}"):
        assert cmd in tex
    assert _balanced(tex)
    assert "wide\\_unet" in tex and not re.search(r"(?<!\\)_", tex.replace("\\_", ""))
    assert "bad\\_thing \\{x\\} 100\\% \\& more" in tex
    dice = comp["models"][0]["summary"]["mean"]["dice"]
    jac = comp["models"][0]["summary"]["mean"]["jaccard"]
    assert f"\\textbf{{{dice:.4f}}}" in tex and f"\\textbf{{{jac:.4f}}}" in tex
    assert tex.count("\\textbf") == 2
    # every body row has as many cells as the header
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    header = tex.split("\\toprule")[1].split("\\midrule")[0]
    assert all(line.count(" & ") == header.count(" & ") for line in body if "multicolumn" not in line)
    assert _balanced(tables.paper_reference_latex("isic2018")) and _balanced(tables.paper_reference_latex("dsb2018"))


def test_markdown_table_footer_and_failed_row():
    comp = _comparison()
    md = tables.to_markdown(comp)
    s = comp["models"][0]["summary"]
    assert f"**{s['mean']['dice']:.4f}** ± {s['std']['dice']:.4f}" in md
    assert f"{s['pooled']['dice']:.4f}" in md and f"{s['thresholded_jaccard']:.4f}" in md
    failed = next(line for line in md.splitlines() if line.startswith("| r2unet"))
    assert "failed: CUDA out of memory" in failed
    assert "### Protocol" in md and "- **split**: bcdu (280/40/80)" in md and "Wilcoxon" in md
    assert "Kaul" not in md  # the paper's numbers are not in our table
    detectable = comp["stats"]["tests"]["wide_unet"]["detectable_difference"]
    assert f"**Detectable difference** against the reference: wide_unet ±{detectable:.4f}" in md
    no_stats = dict(comp)
    no_stats.pop("stats")
    assert "No statistics were computed" in tables.to_markdown(no_stats)


def test_paper_block_separate_and_labelled():
    md = tables.paper_reference_markdown("isic2018")
    assert md.startswith("## The paper's reported numbers (Kaul et al., ISBI 2021, Tables 1 and 2)")
    assert "for reference only; different split, resolution and training" in md
    assert "| FocusNet++ | 0.8322 | 0.9471 | 0.9014 | 0.8271 |" in md and "| BCU-Net [10] |" in md
    assert "Table 3" in tables.paper_reference_markdown("dsb2018")
    assert tables.paper_reference_markdown("folder") == "" and tables.paper_reference_latex(None) == ""
    assert "Kaul et al., ISBI 2021, Table 1)" in tables.paper_reference_latex("isic2018")
    ours = tables.to_markdown(_comparison()) + tables.to_latex(_comparison()) + tables.to_csv(_comparison())
    assert "0.9014" not in ours and "0.8271" not in ours


def test_paper_reference_transcription():
    assert TABLE1.columns == ("Method", "Precision", "Recall", "DI", "JI")
    assert [r.model for r in TABLE1.rows] == [
        "fcn", "unet", "wide_unet", "r2unet", "bcdunet", "unetpp", "attention_unet", "focusnet", "focusnetpp"
    ]
    assert TABLE1.row_for("fcn").values == {"Precision": 0.7176, "Recall": 0.8966, "DI": 0.7861, "JI": 0.7013}
    assert TABLE1.row_for("attention_unet").values["JI"] == 0.7813
    assert {r.model: r.values["Params"] for r in TABLE2.rows} == {k: v["params_m"] for k, v in PAPER_TABLE2.items()}
    assert TABLE3.columns == ("Method", "Params", "FLOPs", "Precision", "Recall")
    assert TABLE3.row_for("focusnetpp").values == {"Params": 1.84, "FLOPs": 0.98, "Precision": 0.9173, "Recall": 0.9139}
    assert paper_tables("nnunet") == () and [t.number for t in paper_tables("dsb2018")] == [3]
    from focusnet.models import list_models

    known = set(list_models())
    assert all(r.model in known for t in (TABLE1, TABLE2, TABLE3) for r in t.rows)


def test_write_tables_atomic(tmp_path):
    comp = _comparison()
    paths = tables.write_tables(comp, tmp_path / "out")
    assert [p.name for p in paths] == ["results.md", "results.csv", "results.tex", "paper_reference.md", "paper_reference.tex"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)  # no temp files left
    assert (tmp_path / "out" / "results.csv").read_text(encoding="utf-8") == tables.to_csv(comp)
    md = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert md.rstrip().splitlines()[-1].startswith("- ") and "### Statistics" in md
    folder = tables.write_tables(_comparison("folder"), tmp_path / "f")
    assert [p.name for p in folder] == ["results.md", "results.csv", "results.tex"]
