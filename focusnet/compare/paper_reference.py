"""The FocusNet++ paper's own reported numbers (Kaul et al., ISBI 2021, Tables 1, 2 and 3).

Transcribed exactly as printed in the paper (``shared/paper/focusnetpp-isbi2021.txt``), with the
paper's row labels and column names, and each row mapped to our model registry name. These numbers
are for reference only: the paper used its own split (ISIC 2018: 1815/259/520 train/val/test;
DSB 2018: 540/130), 256 x 256 inputs, Keras and 50 epochs, so they are never mixed into the rows of
``focusnet compare``; :mod:`focusnet.compare.tables` prints them as a separate, labelled block.

Table 2 (and the Params/FLOPs columns of Table 3) are not re-transcribed here: they come from
:data:`focusnet.complexity.PAPER_TABLE2` and :data:`focusnet.complexity.PAPER_TABLE3`, which also
explain their units (printed "x10^8", read as x10^6; "FLOPs" counts weight-initialiser operations,
not compute; see :data:`focusnet.complexity.PAPER_UNITS_NOTE`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from focusnet.complexity import PAPER_TABLE2, PAPER_TABLE3, PAPER_UNITS_NOTE

__all__ = [
    "PAPER_CITATION",
    "PAPER_DATASETS",
    "PaperRow",
    "PaperTable",
    "TABLE1",
    "TABLE2",
    "TABLE3",
    "paper_tables",
]

#: Citation of the paper, as used in every block that quotes it.
PAPER_CITATION = (
    'C. Kaul, N. Pears, H. Dai, R. Murray-Smith, S. Manandhar, "FocusNet++: Attentive Aggregated '
    'Transformations for Efficient and Accurate Medical Image Segmentation", ISBI 2021, '
    "arXiv:1912.02079"
)


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table.

    Attributes:
        label: the row label exactly as printed (e.g. ``"BCU-Net [10]"``).
        model: our registry name (``focusnet.cli models``), or None if we have no such model.
        values: column name (as printed) -> value as printed (a float; units per the table note).
        note: what the mapping to ``model`` assumes, if anything.
        config: which configuration of ``model`` the row describes (e.g. ``"preset=official"``),
            where the paper's figure identifies one; empty otherwise.
    """

    label: str
    model: str | None
    values: Mapping[str, float]
    note: str = ""
    config: str = ""


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper, as printed.

    Attributes:
        number: the table number in the paper.
        dataset: our reader format whose results it compares with (``isic2018``, ``dsb2018``).
        caption: the caption as printed.
        columns: the column names as printed, first the label column.
        rows: the rows in the printed order.
        source: where the numbers come from (paper, table, page text).
        note: how to read the numbers (units, what they measure, known inconsistencies).
        metric_keys: printed metric column -> key in :func:`focusnet.metrics.summarize` (only the
            columns that are segmentation metrics).
    """

    number: int
    dataset: str
    caption: str
    columns: tuple[str, ...]
    rows: tuple[PaperRow, ...]
    source: str
    note: str = ""
    metric_keys: Mapping[str, str] = field(default_factory=dict)

    def row_for(self, model: str) -> PaperRow | None:
        """The row mapped to our registry name ``model``, or None.

        Example:
            >>> TABLE1.row_for("focusnetpp").values["DI"]
            0.9014
        """
        return next((r for r in self.rows if r.model == model), None)


_SOURCE = "Kaul et al., ISBI 2021 (arXiv:1912.02079), {what}; transcribed from shared/paper/focusnetpp-isbi2021.txt"

_BCDU_NOTE = 'printed "BCU-Net [10]", a typo for BCDU-Net (reference [10]; Table 2 prints "BCDU-Net [10]")'

#: Table 1: "Segmentation results on ISIC 2018 dataset." (test set of 520 images, 256 x 256).
TABLE1 = PaperTable(
    number=1,
    dataset="isic2018",
    caption="Segmentation results on ISIC 2018 dataset.",
    columns=("Method", "Precision", "Recall", "DI", "JI"),
    rows=(
        PaperRow("FCN [13]", "fcn", {"Precision": 0.7176, "Recall": 0.8966, "DI": 0.7861, "JI": 0.7013}),
        PaperRow("U-Net [14]", "unet", {"Precision": 0.7398, "Recall": 0.9043, "DI": 0.8167, "JI": 0.7268}),
        PaperRow("Wide UNet [8]", "wide_unet", {"Precision": 0.7439, "Recall": 0.9167, "DI": 0.8224, "JI": 0.7334}),
        PaperRow("R2U-Net [9]", "r2unet", {"Precision": 0.7381, "Recall": 0.9122, "DI": 0.8271, "JI": 0.7511}),
        PaperRow(
            "BCU-Net [10]",
            "bcdunet",
            {"Precision": 0.7576, "Recall": 0.9272, "DI": 0.8637, "JI": 0.7665},
            note=_BCDU_NOTE,
        ),
        PaperRow("UNet++ [8]", "unetpp", {"Precision": 0.7516, "Recall": 0.8889, "DI": 0.8437, "JI": 0.7435}),
        PaperRow(
            "Attn U-Net [2]", "attention_unet", {"Precision": 0.7526, "Recall": 0.9286, "DI": 0.8741, "JI": 0.7813}
        ),
        PaperRow("FocusNet [1]", "focusnet", {"Precision": 0.7805, "Recall": 0.9328, "DI": 0.8676, "JI": 0.7751}),
        PaperRow(
            "FocusNet++",
            "focusnetpp",
            {"Precision": 0.8322, "Recall": 0.9471, "DI": 0.9014, "JI": 0.8271},
            note="the network of the paper's text (our `paper` preset) is the most likely one",
        ),
    ),
    source=_SOURCE.format(what="Table 1 (Section 3.1)"),
    note=(
        "DI = Dice index, JI = Jaccard index. Test set of 520 of the 2594 ISIC 2018 Task 1 images "
        "(split 1815/259/520), resized to 256 x 256, thresholded at 0.5. DI != 2PR/(P+R) (for "
        "FocusNet++ 0.8859 against 0.9014), so these are not pooled-pixel figures; most likely "
        "per-image means (implementation spec §3.6)."
    ),
    metric_keys={"Precision": "precision", "Recall": "recall", "DI": "dice", "JI": "jaccard"},
)

#: Table 2: complexity on ISIC 2018, built from :data:`focusnet.complexity.PAPER_TABLE2`.
TABLE2 = PaperTable(
    number=2,
    dataset="isic2018",
    caption=(
        "Comparing the model complexity and performance (on ISIC 2018) for FocusNet++ against "
        "state of the art segmentation architectures."
    ),
    columns=("Architecture", "Params", "FLOPs"),
    rows=tuple(
        PaperRow(
            entry["row"],
            model,
            {"Params": entry["params_m"], "FLOPs": entry["flops"]},
            note=f"printed {entry['params_printed']} / {entry['flops_printed']}; {entry['note']}",
            config=", ".join(f"{k}={v}" for k, v in entry["kwargs"].items()),
        )
        for model, entry in PAPER_TABLE2.items()
    ),
    source=_SOURCE.format(what="Table 2 (Section 3.1); values from focusnet.complexity.PAPER_TABLE2"),
    note="Values are the printed mantissas. " + PAPER_UNITS_NOTE,
)

_TABLE3_LABELS = {
    "unet": "U-Net [14]",
    "bcdunet": "BCU-Net [10]",
    "attention_unet": "Attn U-Net [2]",
    "focusnet": "FocusNet [1]",
    "focusnetpp": "FocusNet++",
}
_TABLE3_METRICS: dict[str, dict[str, float]] = {
    "unet": {"Precision": 0.8976, "Recall": 0.9052},
    "bcdunet": {"Precision": 0.9024, "Recall": 0.9078},
    "attention_unet": {"Precision": 0.8782, "Recall": 0.9019},
    "focusnet": {"Precision": 0.9016, "Recall": 0.8981},
    "focusnetpp": {"Precision": 0.9173, "Recall": 0.9139},
}

#: Table 3: "Segmentation results on the cell nuclei segmentation dataset." (DSB 2018, validation
#: set of 130 images, reduced-width networks). Params/FLOPs from
#: :data:`focusnet.complexity.PAPER_TABLE3`.
TABLE3 = PaperTable(
    number=3,
    dataset="dsb2018",
    caption=(
        "Segmentation results on the cell nuclei segmentation dataset. Params and FLOPs are of "
        "the order of ×10^8."
    ),
    columns=("Method", "Params", "FLOPs", "Precision", "Recall"),
    rows=tuple(
        PaperRow(
            _TABLE3_LABELS[model],
            model,
            {
                "Params": PAPER_TABLE3[model]["params_m"],
                "FLOPs": PAPER_TABLE3[model]["flops"],
                **_TABLE3_METRICS[model],
            },
            note=(_BCDU_NOTE + "; " if model == "bcdunet" else "")
            + "reduced widths that the paper does not give (not our presets)",
        )
        for model in _TABLE3_LABELS
    ),
    source=_SOURCE.format(what="Table 3 (Section 3.2); Params/FLOPs from focusnet.complexity.PAPER_TABLE3"),
    note=(
        "DSB 2018 nuclei: 670 images split 540/130 (train/validation), resized to 256 x 256; every "
        "network slimmed to widths the paper does not give. Params and FLOPs read as x10^6 like "
        "Table 2 (see its note); the table reports no Dice or Jaccard."
    ),
    metric_keys={"Precision": "precision", "Recall": "recall"},
)

#: Our reader format -> the paper tables that report results on that dataset.
PAPER_DATASETS: dict[str, tuple[PaperTable, ...]] = {
    "isic2018": (TABLE1, TABLE2),
    "dsb2018": (TABLE3,),
}


def paper_tables(dataset: str | None) -> tuple[PaperTable, ...]:
    """The paper tables for a dataset (reader format); empty for datasets the paper does not cover.

    Example:
        >>> [t.number for t in paper_tables("isic2018")], paper_tables("folder")
        ([1, 2], ())
    """
    return PAPER_DATASETS.get(str(dataset), ())
