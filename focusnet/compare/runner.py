"""``focusnet compare``: train and evaluate several models under one protocol, then report.

Every model is trained by :func:`focusnet.engine.train.train` from the same config (same prepared
data, split, loss, schedule, seed), evaluated on the same test split by
:func:`focusnet.engine.evaluate.evaluate_run` (per image, at model and original resolution), and
the results go into tables (:mod:`focusnet.compare.tables`), statistics
(:mod:`focusnet.compare.stats`), figures (:mod:`focusnet.compare.figures`) and one
self-contained ``report.html`` (:mod:`focusnet.compare.report`).

The output folder::

    OUT/compare.json         what was asked (config, profile, overrides) and each model's status
    OUT/runs/<name>/         one ordinary run folder per model (focusnet train's layout)
    OUT/logs/<name>.log      the traceback of a model that failed
    OUT/comparison.json      every number the tables, figures and report are made from
    OUT/tables/              results.{md,csv,tex}, paper_reference.{md,tex}
    OUT/figures/             qualitative, curves, dice_distribution (.png and .pdf)
    OUT/report.html

Resumable model by model: a model whose run has its ``summary.json`` is reused as it is; one with
a ``last.ckpt`` continues from it (:func:`focusnet.engine.train.resume`); one that failed is tried
again. The comparison's protocol is fixed by its first call: the same ``--out`` with another
config, profile or override is refused (use another ``--out``). A failure of one model is
recorded (one line in the tables and report, the traceback in ``OUT/logs``) and the others go on.

This module is the workflow (checks, then train and evaluate model by model); the models come from
:mod:`focusnet.compare.specs`, each model's config and the state file from
:mod:`focusnet.compare.protocol`, the numbers from :mod:`focusnet.compare.results` and the files
written from them from :mod:`focusnet.compare.outputs`.

Example:
    >>> comparison = run_compare("configs/isic2018_focusnetpp.yaml",
    ...                          ["focusnetpp", "unet", "attention_unet"], profile="quick",
    ...                          out="runs/compare-isic")  # doctest: +SKIP
    >>> [m["status"] for m in comparison["models"]]  # doctest: +SKIP
    ['done', 'done', 'done']
"""
from __future__ import annotations

import contextlib
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from focusnet.compare.outputs import (
    COMPARISON_JSON,
    REPORT_HTML,  # noqa: F401 - the old import path
    write_outputs,
)
from focusnet.compare.profiles import describe_profile, describe_run, profile_overrides
from focusnet.compare.protocol import absolute_data, changed_keys, model_config, protocol_key, read_state, write_json
from focusnet.compare.results import collect
from focusnet.compare.specs import DEFAULT_MODELS, ModelSpec, parse_model_specs
from focusnet.engine import evaluate as ev
from focusnet.engine import train as tr  # compare's training step: train, resume and the checks before them
from focusnet.engine.config import TrainConfig, load_config
from focusnet.engine.rundir import RunDir
from focusnet.errors import FocusNetError

__all__ = ["ModelSpec", "parse_model_specs", "run_compare", "DEFAULT_MODELS", "STATE_JSON", "COMPARISON_JSON"]

STATE_JSON = "compare.json"


def run_compare(
    config_path: str | Path,
    models: Sequence[ModelSpec] | str = DEFAULT_MODELS,
    out: str | Path | None = None,
    profile: str = "quick",
    overrides: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
    gallery_limit: int = 300,
    show: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (or reuse), evaluate and compare ``models`` under one protocol; write tables, figures, report.

    Args:
        config_path: a training config (``configs/*.yaml``); its model is replaced by each of ``models``.
        models: specs, or their comma-separated text (:func:`parse_model_specs`).
        out: the comparison folder (default ``runs/compare-<config stem>-<profile>``).
        profile: ``quick`` or ``paper`` (:mod:`focusnet.compare.profiles`).
        overrides: ``KEY=VALUE`` config overrides, applied after the profile's.
        log: progress lines (default: print to stderr).
        gallery_limit: at most this many test images in the report's gallery.
        show: the results table, the command's result (default: print to stdout).

    Returns:
        The ``comparison`` dict (also ``OUT/comparison.json``).

    Raises:
        FocusNetError: bad config, model, override or output folder (before anything is trained).
    """
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    specs = parse_model_specs(models) if isinstance(models, str) else list(models)
    if not specs:
        raise FocusNetError(f"--models: no models given; e.g. --models {DEFAULT_MODELS}")
    config_path = Path(config_path)
    all_overrides = profile_overrides(profile) + list(overrides)
    base = absolute_data(load_config(config_path, all_overrides))
    out_dir = Path(out) if out is not None else Path("runs") / f"compare-{config_path.stem}-{profile}"
    runs_dir = out_dir / "runs"

    # Everything that can fail on bad input fails here, before anything is written or trained.
    configs: dict[str, tuple[TrainConfig, list[str]]] = {}
    for s in specs:
        config, dropped = model_config(base, s, runs_dir / s.name)
        configs[s.name] = (tr.resolve_model(config), dropped)
    for config, _ in configs.values():
        tr.check_model_input(config)  # unknown keyword arguments, a size the model cannot take -> FocusNetError now
    if out_dir.exists() and not out_dir.is_dir():
        raise FocusNetError(f"--out: {out_dir} exists and is not a folder")
    state_path = out_dir / STATE_JSON
    state = read_state(state_path)
    protocol = protocol_key(base)
    if state is None:
        if out_dir.is_dir() and any(out_dir.iterdir()):
            raise FocusNetError(f"--out: {out_dir} is not empty and holds no {STATE_JSON}; give a new or empty folder")
        state = {"kind": "focusnet-compare", "version": 1, "config_file": str(config_path), "profile": profile,
                 "overrides": list(overrides), "protocol": protocol, "models": {}}
    elif changed := changed_keys(protocol, state.get("protocol") or {}):
        raise FocusNetError(
            f"--out: {out_dir} holds a comparison made with other settings ({', '.join(changed)} differ); "
            "run it with the same config, profile and overrides, or give another --out"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "logs").mkdir(exist_ok=True)
    runs_dir.mkdir(exist_ok=True)
    for spec in specs:
        state["models"].setdefault(spec.name, {"spec": spec.to_dict(), "status": "pending", "error": None,
                                               "train_seconds": 0.0, "attempts": 0})
    write_json(state_path, state)

    # What runs, from the resolved config: the profile's notes describe the profile before the overrides.
    say(f"focusnet compare: {describe_run(base, [s.name for s in specs])}; folder {out_dir}")
    say(f"  profile {describe_profile(profile, overrides)}")
    for i, spec in enumerate(specs, 1):
        entry = state["models"][spec.name]
        config, dropped = configs[spec.name]
        prefix = f"[{i}/{len(specs)}] {spec.name}"
        if dropped:
            say(
                f"{prefix}: model_kwargs {', '.join(dropped)} of the config's model do not apply to {spec.model}; "
                "left out"
            )
        try:
            # Training's own lines (model summary, epochs, Lightning's bar) are progress: stderr, so that
            # stdout holds only the results table.
            with contextlib.redirect_stdout(sys.stderr):
                _train_and_evaluate(config, runs_dir / spec.name, entry, state, state_path, say, prefix)
        except KeyboardInterrupt:
            write_json(state_path, state)
            raise KeyboardInterrupt(
                f"compare interrupted during {spec.name}; run the same command again to continue "
                "(finished models are reused, an interrupted one resumes from its last epoch)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
            message = " ".join(str(exc).split()) or type(exc).__name__
            if not isinstance(exc, FocusNetError):
                message = f"{type(exc).__name__}: {message}"
            entry.update(status="failed", error=message)
            (out_dir / "logs" / f"{spec.name}.log").write_text("".join(traceback.format_exception(exc)))
            say(f"{prefix}: FAILED: {message} (traceback: {out_dir / 'logs' / (spec.name + '.log')}); going on")
        write_json(state_path, state)

    comparison = collect(specs, configs, state, base, config_path, profile, out_dir)
    show_table = show or (lambda text: print(text, flush=True))
    write_outputs(comparison, specs, configs, out_dir, say, gallery_limit, show_table)
    return comparison


def _train_and_evaluate(config: TrainConfig, run_dir: Path, entry: dict, state: dict, state_path: Path,
                        say: Callable[[str], None], prefix: str) -> None:
    run = RunDir(run_dir)
    if run.has_summary():
        say(f"{prefix}: finished earlier; reusing {run_dir}")
    else:
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
        start = time.perf_counter()
        try:
            if run.file(RunDir.LAST_CKPT).is_file():
                say(f"{prefix}: resuming {run_dir} from its last checkpoint")
                tr.resume(run_dir, [f"num_threads={config.num_threads}"] if config.num_threads else [])
            else:
                if run_dir.exists() and any(run_dir.iterdir()):  # started, but no epoch finished: keep it aside
                    aside = run_dir.with_name(f"{run_dir.name}.incomplete-{time.strftime('%Y%m%d-%H%M%S')}")
                    run_dir.rename(aside)
                    say(f"{prefix}: an earlier attempt finished no epoch; moved it to {aside}")
                what = f"{config.model} ({config.preset or 'no preset'}) at {config.size}x{config.size}"
                budget = f", at most {config.max_minutes:g} min" if config.max_minutes else ""
                say(f"{prefix}: training {what}, {config.epochs} epochs{budget}")
                tr.train(config)
        finally:
            entry["train_seconds"] = float(entry.get("train_seconds", 0.0)) + time.perf_counter() - start
            write_json(state_path, state)
    summary = run.read_eval_summary("test")
    if summary is None:
        say(f"{prefix}: evaluating the test split at model and original resolution")
        summary = ev.evaluate_run(run_dir, split="test", threshold=config.threshold, overwrite=True)
    res = summary.get("original_resolution") or summary["model_resolution"]
    entry.update(status="done", error=None)
    say(f"{prefix}: test Dice {res['mean']['dice']:.4f} (per-image mean), Jaccard {res['mean']['jaccard']:.4f}; "
        f"training {entry['train_seconds'] / 60:.1f} min")
