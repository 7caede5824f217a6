"""benchmarks/bench_entry_points.py: one step through a plain loop, `focusnet benchmark` and `focusnet train`
(issue 15 item 3), for the model a spec names."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_entry_points.py"
TINY = "focusnetpp:lite[widths=[4,4,4,4,4];stem_width=4;head_mid=[4,4,4,4];fusion_mid=4;norm=instance]"


def test_smoke_times_the_spec_through_every_entry_point(tmp_path: Path) -> None:
    out = tmp_path / "entry.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--threads", "1", "--model", TINY, "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["model"] == "focusnetpp:lite[fusion_mid=4;head_mid=[4,4,4,4];norm=instance;stem_width=4;widths=[4,4,4,4,4]]"
    assert set(result["results"]) == {"loop", "benchmark", "train"}
    for name, row in result["results"].items():
        assert len(row["step_s"]) == 1 and math.isfinite(row["step_s"][0]), name
    # `train`'s step is the difference of two runs' wall times over the extra steps: at the smoke size (2 steps of a
    # 4-channel network) the start-up's jitter outweighs them, so only the two direct timings must be positive.
    assert result["results"]["loop"]["step_s"][0] > 0 and result["results"]["benchmark"]["step_s"][0] > 0
    assert result["results"]["loop"]["ratio_to_loop"] == [1.0]
    assert f"### {result['model']}, 64x64" in proc.stdout
