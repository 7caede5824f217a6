"""benchmarks/bench_wait_policy.py: each OpenMP wait setting in its own process, its ratio to the default."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_wait_policy.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_wait_policy", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_takes_the_median_of_round_medians_and_the_ratio_to_default() -> None:
    bench = _module()
    def run(train: list[float], infer: list[float]) -> dict:
        return {"models": {"m": {"train": train, "infer": infer}}, "env": {}}

    runs = {
        "default": [run([1.0, 3.0, 2.0], [0.5]), run([4.0], [0.7]), run([6.0, 6.0], [0.6])],
        "passive": [run([1.0], [0.1]), run([2.0], [0.3]), run([1.5], [0.2])],
    }
    train, infer = bench.summarise(runs, ["m"])
    assert train["default"]["rounds"] == [2.0, 4.0, 6.0] and train["default"]["median_s"] == 4.0
    assert (train["default"]["min_s"], train["default"]["max_s"]) == (2.0, 6.0)
    assert train["passive"]["vs_default"] == 1.5 / 4.0 and train["default"]["vs_default"] == 1.0
    assert abs(infer["passive"]["vs_default"] - 0.2 / 0.6) < 1e-12
    assert train["default"]["steps"] == [3, 1, 2]
    text = bench.table("idle", [train, infer], ["default", "passive"])
    assert "| idle | m | train | 4000 (2000–6000) | 1500 (1000–2000) | 0.38 |" in text


def test_smoke_run_sets_each_policy_in_a_fresh_process(tmp_path: Path) -> None:
    out = tmp_path / "wp.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--loads", "idle", "--settings", "default", "passive",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["loads"]["idle"]
    assert [(r["model"], r["phase"]) for r in rows] == [
        ("focusnetpp:lite", "train"), ("focusnetpp:lite", "infer"),
        ("unet[base_width=4]", "train"), ("unet[base_width=4]", "infer")]
    assert all(r["default"]["vs_default"] == 1.0 and r["passive"]["median_s"] > 0 for r in rows)
    assert all(r["default"]["env"]["OMP_WAIT_POLICY"] is None and r["passive"]["env"]["OMP_WAIT_POLICY"] == "PASSIVE"
               for r in rows)
    assert "busy" not in result["loads"]
