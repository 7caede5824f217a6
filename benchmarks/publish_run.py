#!/usr/bin/env python
"""Pack a ``focusnet train`` run folder into one JSON for ``benchmarks/published/``, whose results
the model cards show (``scripts/docgen/measured.py`` reads it as ``"benchmark": "run-summary"``).

The JSON holds the run's ``summary.json`` without its per-image rows, its ``config.json``, the
split sizes (``split.json``), the epochs it trained and their training seconds (``logs/metrics.csv``,
``train_seconds`` column), its start date (``environment.json``) and a ``"published"`` object with
the title, context and command to show::

    .venv/bin/python benchmarks/publish_run.py /tmp/dsb/run-lite --title 'FocusNet++ `lite`, 128²' \\
        --context 'Issue 18, equal CPU budget' --command 'focusnet train CONFIG preset=lite' \\
        --out benchmarks/published/dsb-all-lite-128.json

It refuses to overwrite an existing file (exit 2) unless ``--force``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {path.parent} a finished `focusnet train` run folder?")
    return json.loads(path.read_text(encoding="utf-8"))


def pack_run(run: Path) -> dict[str, Any]:
    """The ``run-summary`` record of one run folder (without the ``published`` annotation)."""
    from focusnet.engine.plots import read_epoch_metrics

    summary = _read_json(run / "summary.json")
    summary.pop("per_image", None)
    config = _read_json(run / "config.json")
    split = _read_json(run / "split.json")
    metrics_csv = run / "logs" / "metrics.csv"
    if not metrics_csv.is_file():
        raise FileNotFoundError(f"{metrics_csv}: missing; it gives the epochs and training seconds")
    metrics = read_epoch_metrics(metrics_csv)
    seconds = metrics.get("train_seconds")  # absent in runs older than that column: time unknown
    epochs = metrics.get("train_loss")
    if not epochs:
        raise ValueError(f"{metrics_csv}: no train_loss rows, so no finished epoch to publish")
    env = run / "environment.json"
    started = _read_json(env).get("time") if env.is_file() else None
    date = started or datetime.datetime.fromtimestamp(metrics_csv.stat().st_mtime, datetime.UTC).isoformat()
    return {
        "benchmark": "run-summary",
        "date": date,
        "run": str(run),
        "epochs": len(epochs),
        "train_seconds": round(sum(seconds.values()), 1) if seconds else None,
        "counts": {k: len(v) for k, v in split.items() if isinstance(v, list)},
        "summary": summary,
        "config": config,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="the run folder (`focusnet train --out RUN`)")
    p.add_argument("--title", help="the result's title on the model card")
    p.add_argument("--context", help="what the run was for (issue, budget, machine)")
    p.add_argument("--command", help="the command that produced the run")
    p.add_argument("--out", type=Path, required=True, help="the JSON to write, e.g. benchmarks/published/NAME.json")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    args = p.parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"publish_run: error: {args.out} exists; published results are not overwritten (pass --force to "
              "replace it)", file=sys.stderr)
        return 2
    try:
        record = pack_run(args.run)
    except (OSError, ValueError) as exc:
        print(f"publish_run: error: {exc}", file=sys.stderr)
        return 2
    published = {k: v for k, v in (("title", args.title), ("context", args.context), ("command", args.command)) if v}
    if published:
        record["published"] = published
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {record['epochs']} epochs, test per-image Dice {record['summary']['mean']['dice']:.4f} "
          f"(n = {record['summary']['count']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
