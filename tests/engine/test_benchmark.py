"""`focusnet benchmark`: one tiny real run (FocusNet++ lite against U-Net, each in its own worker
process) checked for rows, ratios, conv peak, memory, JSON and Markdown; the rest are unit checks.

The run uses one torch thread per worker: on a shared, oversubscribed CPU two OpenMP threads per
process make tiny steps hundreds of times slower than one.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from focusnet.bench.specs import normalise_spec
from focusnet.cli import main
from focusnet.complexity import count_parameters
from focusnet.engine.benchmark import (
    _stats,
    bf16_support,
    format_markdown,
    machine_info,
    parse_model_spec,
    parse_model_specs,
    run_benchmark,
    spec_label,
)
from focusnet.errors import FocusNetError
from focusnet.models import create_model

LITE = "focusnetpp:lite[enc_blocks=[1,1,1,2,2]]"
TINY = [
    "benchmark",
    "--models", LITE,  # a constructor argument in the spec
    "--size", "32",
    "--batch-size", "2",
    "--repeats", "2",
    "--warmup", "1",
    "--threads", "1",
    "--min-repeat-time", "0.05",
    "--conv-shape", "2,32,32,32",
    "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, str]:
    out = tmp_path_factory.mktemp("bench")
    json_path, md_path = out / "r.json", out / "r.md"
    code = main([*TINY, "--json-out", str(json_path), "--markdown-out", str(md_path)])
    assert code == 0
    return json.loads(json_path.read_text()), md_path.read_text(), str(out)


def test_rows_and_ratios(tiny_run: tuple[dict, str, str]) -> None:
    result, _, _ = tiny_run
    rows = {r["label"]: r for r in result["rows"]}
    assert list(rows) == [LITE, "unet"]  # baseline appended after the asked models
    assert rows["unet"]["is_baseline"] and not rows[LITE]["is_baseline"]
    assert rows["unet"]["params"] == 7_760_645
    # the spec's argument reached the constructor: a second block at the two deepest levels
    deeper = count_parameters(create_model("focusnetpp", preset="lite", enc_blocks=[1, 1, 1, 2, 2]))
    assert rows[LITE]["params"] == deeper > count_parameters(create_model("focusnetpp", preset="lite"))
    assert rows[LITE]["kwargs"] == {"enc_blocks": [1, 1, 1, 2, 2]}
    for row in rows.values():
        assert row["error"] is None
        assert row["forward_flops_per_image"] > 0
        for phase in ("train", "inference"):
            cell = row[phase]
            ips = cell["images_per_s"]
            assert ips["n"] == 2 and 0 < ips["min"] <= ips["median"] <= ips["max"]
            assert cell["iters_per_repeat"] >= 1
            assert cell["flops_per_step"] == (3 if phase == "train" else 1) * row["forward_flops_per_image"] * 2
            assert cell["achieved_flops_per_s"]["median"] > 0
            assert cell["fraction_of_conv_peak"]["median"] > 0
            assert cell["peak_memory_mb"] is not None and cell["peak_rss_mb"] > 0
            ratio = cell["ratio_vs_baseline"]
            assert ratio["n"] == 2 and ratio["min"] > 0
    for phase in ("train", "inference"):
        # the baseline against itself, round by round, is exactly 1
        assert rows["unet"][phase]["ratio_vs_baseline"]["values"] == [1.0, 1.0]
        lite, unet = rows[LITE][phase], rows["unet"][phase]
        expected = [a / b for a, b in zip(lite["images_per_s_per_round"], unet["images_per_s_per_round"])]
        assert lite["ratio_vs_baseline"]["values"] == pytest.approx(expected)
    # training keeps gradients and Adam state: more memory than inference for U-Net's 7.8 M weights
    assert rows["unet"]["train"]["peak_memory_mb"] > rows["unet"]["inference"]["peak_memory_mb"]


def test_conv_peak_machine_and_settings(tiny_run: tuple[dict, str, str]) -> None:
    result, _, _ = tiny_run
    peak = result["conv_peak"]
    assert peak["error"] is None
    assert peak["flops"] == 2 * 2 * 32 * 32 * 9 * 32 * 32
    assert peak["flops_per_s"]["median"] > 0 and peak["flops_per_s"]["n"] == 4  # 2 repeats x 2 phases
    machine = result["machine"]
    assert machine["torch_version"] and machine["cpu_model"]
    assert isinstance(machine["bf16"]["native"], bool)
    st = result["settings"]
    assert (st["size"], st["batch_size"], st["precision"], st["baseline"]) == (32, 2, "32-true", "unet")
    assert "3 x forward" in st["flop_convention"]
    # every worker reports the same allocator setting (on unless FOCUSNET_ALLOCATOR_TUNING=0)
    tuned = sys.platform.startswith("linux") and os.environ.get("FOCUSNET_ALLOCATOR_TUNING") != "0"
    assert st["allocator_tuned"] is tuned
    assert isinstance(st["native_kernels"], bool)


def test_markdown_table(tiny_run: tuple[dict, str, str]) -> None:
    result, md, _ = tiny_run
    assert md == format_markdown(result)
    for text in (LITE, "unet (baseline)", "train img/s", "infer x base", "% conv peak", "Conv peak"):
        assert text in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2  # header, rule, two rows
    assert len({line.count("|") for line in table}) == 1


def test_parse_specs_and_labels() -> None:
    specs = parse_model_specs("focusnetpp:paper, unet,focusnetpp:lite[norm=instance;enc_blocks=[1,1,1,2,2]]@onnxruntime")
    assert [(s.model, s.preset, dict(s.kwargs), s.backend) for s in specs] == [
        ("focusnetpp", "paper", {}, "torch"),
        ("unet", None, {}, "torch"),
        ("focusnetpp", "lite", {"norm": "instance", "enc_blocks": [1, 1, 1, 2, 2]}, "onnxruntime"),
    ]
    # the label is the spec written back (keys sorted), and reads back to the same spec
    assert specs[2].label == "focusnetpp:lite[enc_blocks=[1,1,1,2,2];norm=instance]@onnxruntime"
    assert parse_model_spec(specs[2].label) == specs[2]
    assert parse_model_spec("focusnetpp:official").label == spec_label("focusnetpp", "official") == "focusnetpp:official"
    # the older tuple forms still name the same rows
    assert normalise_spec(("focusnetpp", "paper")) == specs[0] and normalise_spec(("unet", None, "torch")) == specs[1]
    with pytest.raises(FocusNetError, match="backend"):
        parse_model_spec("unet@tensorrt")
    with pytest.raises(FocusNetError, match="no models"):
        parse_model_specs(" , ")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": [("nope", None)]}, "unknown model 'nope'"),
        ({"models": [("focusnetpp", "huge")]}, "unknown preset 'huge'"),
        ({"models": [("unet", "paper")]}, "has no presets"),
        ({"models": ["unet[widht=4]"]}, r"unet\[widht=4\]: model 'unet' takes no argument widht; it takes: base_width"),
        ({"models": ["unet[in_channels=1]"]}, "--in-channels"),
        ({"models": ["monai_basicunet[features=1]"]}, "as is"),
        ({"models": [("unet", None)], "precision": "fp16"}, "unknown precision"),
        ({"models": [("unet", None)], "repeats": 0}, "repeats >= 1"),
        ({"models": [("unet", None)], "device": "tpu"}, "unsupported device"),
    ],
)
def test_bad_input_fails_before_starting_workers(kwargs: dict, message: str) -> None:
    with pytest.raises(FocusNetError, match=message):
        run_benchmark(**kwargs)


def test_cli_bad_input_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["benchmark", "--models", "nope", "--quiet"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["benchmark", "--models", "unet", "--conv-shape", "1,2,3", "--quiet"]) == 2
    assert main(["benchmark", "--models", "unet", "--phases", "eval", "--quiet"]) == 2


def test_stats_and_machine_info() -> None:
    s = _stats([3.0, 1.0, None, 2.0, float("nan")])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
    assert s["q1"] == 1.5 and s["q3"] == 2.5
    assert _stats([None]) is None
    one = _stats([4.0])
    assert one["q1"] == one["q3"] == 4.0
    info = machine_info()
    assert info["usable_cpus"] >= 1 and info["torch_threads"] >= 1
    assert isinstance(bf16_support()["native"], bool)
    assert all(math.isfinite(v) for v in info["load_average"] or [])


@pytest.mark.parametrize(
    "command",
    [["-m", "focusnet.bench.worker"], ["-m", "focusnet.engine.benchmark", "--worker"]],
    ids=["bench.worker", "engine.benchmark --worker"],
)
def test_worker_protocol_over_stdin_and_stdout(command: list[str]) -> None:
    """The worker run_benchmark starts, and the older module path that still serves it."""
    job = {"label": "conv_peak", "kind": "conv", "conv_shape": [1, 4, 8, 8], "device": "cpu",
           "channels_last": False, "precision": "32-true", "seed": 0, "threads": 1}
    messages = [job, {"cmd": "run", "phase": "conv", "iters": 2}, {"cmd": "nope"}, {"cmd": "quit"}]
    proc = subprocess.run([sys.executable, *command], input="".join(json.dumps(m) + "\n" for m in messages),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    setup, run, unknown = (json.loads(line) for line in proc.stdout.splitlines())
    assert setup["ok"] and setup["flops"] == 2 * 4 * 4 * 9 * 8 * 8 and setup["params"] == 4 * 4 * 9
    assert run["ok"] and run["iters"] == 2 and run["seconds"] > 0
    assert unknown == {"ok": False, "error": "unknown command 'nope'"}
