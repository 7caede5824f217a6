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

Example:
    >>> comparison = run_compare("configs/isic2018_focusnetpp.yaml",
    ...                          ["focusnetpp", "unet", "attention_unet"], profile="quick",
    ...                          out="runs/compare-isic")  # doctest: +SKIP
    >>> [m["status"] for m in comparison["models"]]  # doctest: +SKIP
    ['done', 'done', 'done']
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

import focusnet
from focusnet.atomic import atomic_write
from focusnet.compare import figures, report, tables
from focusnet.compare.profiles import describe_profile, describe_run, profile_overrides
from focusnet.compare.stats import compare_statistics
from focusnet.complexity import measure
from focusnet.engine import evaluate as ev
from focusnet.engine import train as tr  # compare's training step: train, resume and the checks before them
from focusnet.engine.config import expand_path, load_config
from focusnet.engine.plots import read_epoch_metrics
from focusnet.engine.rundir import EvalSummary, RunDir, torch_threads
from focusnet.errors import FocusNetError
from focusnet.models import list_models, registry
from focusnet.vocab import uses_cuda

__all__ = ["ModelSpec", "parse_model_specs", "run_compare", "DEFAULT_MODELS", "STATE_JSON", "COMPARISON_JSON"]

DEFAULT_MODELS = "focusnetpp,unet,attention_unet"
STATE_JSON = "compare.json"
COMPARISON_JSON = "comparison.json"
REPORT_HTML = "report.html"
# Keys that may differ between calls of the same comparison (they do not change the protocol).
_FREE_KEYS = ("accelerator", "devices", "num_nodes", "strategy", "num_threads", "num_workers",
              "progress_bar", "eval_batch_size", "out_dir")
_MODEL_KEYS = ("model", "preset", "model_kwargs")


# ------------------------------------------------------------------------------------ model specs
@dataclass(frozen=True)
class ModelSpec:
    """One model of a comparison: registered name, preset and extra constructor arguments.

    Example:
        >>> ModelSpec("focusnetpp", "lite").name, ModelSpec("unet", None, {"base_width": 8}).name
        ('focusnetpp-lite', 'unet-base_width8')
    """

    model: str
    preset: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Run name: ``model[-preset][-key value ...]`` (file-name safe)."""
        parts = [self.model] + ([self.preset] if self.preset else [])
        parts += [f"{k}{v}" for k, v in sorted(self.kwargs.items())]
        return re.sub(r"[^A-Za-z0-9_.-]+", "", "-".join(str(p) for p in parts)) or self.model

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "preset": self.preset, "kwargs": dict(self.kwargs)}


def parse_model_specs(text: str) -> list[ModelSpec]:
    """``"focusnetpp,focusnetpp:official,unet[base_width=8;dropout=0]"`` -> model specs.

    ``NAME[:PRESET][[KEY=VALUE;...]]``, comma-separated; values are read as YAML.

    Example:
        >>> [s.name for s in parse_model_specs("focusnetpp:lite, unet[base_width=4]")]
        ['focusnetpp-lite', 'unet-base_width4']
    """
    import yaml

    specs: list[ModelSpec] = []
    for part in _split_top(text):
        m = re.fullmatch(r"\s*([A-Za-z0-9_]+)\s*(?::\s*([A-Za-z0-9_]+))?\s*(?:\[(.*)\])?\s*", part)
        if not m:
            raise FocusNetError(f"--models: cannot read {part.strip()!r}; write NAME, NAME:PRESET or NAME[KEY=VALUE;...]")
        kwargs: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in (m.group(3) or "").split(";"))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip().isidentifier():
                raise FocusNetError(f"--models: {item!r} in {part.strip()!r} is not KEY=VALUE")
            kwargs[key.strip()] = yaml.safe_load(value)
        specs.append(ModelSpec(m.group(1), m.group(2), kwargs))
    if not specs:
        raise FocusNetError(f"--models: no models given; e.g. --models {DEFAULT_MODELS}")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FocusNetError(f"--models: {', '.join(dupes)} given twice")
    return specs


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [p for p in out if p.strip()]


def _accepted_kwargs(model: str) -> set[str] | None:
    """Keyword arguments the model's constructor accepts (None: any)."""
    sig = registry.model_signature(model)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return set(sig.parameters)


# ------------------------------------------------------------------------------------- protocol
def _model_config(base: Any, spec: ModelSpec, run_dir: Path) -> tuple[Any, list[str]]:
    """The config of one model: ``base`` with its model, preset and constructor arguments.

    The base config's ``model_kwargs`` belong to the base config's model; another model gets those
    its constructor accepts (e.g. ``bn_momentum`` for every BatchNorm model that takes it); the
    others are dropped and returned.
    """
    accepted = _accepted_kwargs(spec.model) if spec.model in _registered() else None
    inherited = dict(base.model_kwargs)
    dropped = []
    if spec.model != base.model and accepted is not None:
        dropped = sorted(k for k in inherited if k not in accepted)
        inherited = {k: v for k, v in inherited.items() if k in accepted}
    config = base.replace(model=spec.model, preset=spec.preset, model_kwargs={**inherited, **spec.kwargs}, out_dir=str(run_dir))
    return tr.resolve_model(config), dropped


def _registered() -> list[str]:
    return list_models()


def _protocol_key(config: Any) -> dict[str, Any]:
    d = config.to_dict()
    for key in _FREE_KEYS + _MODEL_KEYS:
        d.pop(key, None)
    return d


def _absolute_data(config: Any) -> Any:
    d = config.to_dict()["data"]
    if d.get("source"):
        d["source"] = str(Path(expand_path(d["source"])).resolve())
    d["cache_dir"] = str(Path(expand_path(d["cache_dir"])).resolve())
    if str(d.get("split", "")).lower().endswith(".json"):
        d["split"] = str(Path(expand_path(d["split"])).resolve())
    return config.replace(data=d)


def _changed_keys(now: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """Keys whose (plain JSON) values differ between two protocols."""
    return sorted(k for k in now.keys() | before.keys() if now.get(k) != before.get(k))


# ------------------------------------------------------------------------------------ state file
def _read_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FocusNetError(f"{path}: unreadable ({exc}); it is not a focusnet compare folder, or it was damaged: use another --out") from None
    if not isinstance(state, dict) or state.get("kind") != "focusnet-compare":
        raise FocusNetError(f"{path}: not written by focusnet compare; use another --out")
    return state


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """NaN -> None, recursively (strict JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# ------------------------------------------------------------------------------------- the run
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
    base = _absolute_data(load_config(config_path, all_overrides))
    out_dir = Path(out) if out is not None else Path("runs") / f"compare-{config_path.stem}-{profile}"
    runs_dir = out_dir / "runs"

    # Everything that can fail on bad input fails here, before anything is written or trained.
    configs = {s.name: _model_config(base, s, runs_dir / s.name) for s in specs}
    for config, _ in configs.values():
        tr.check_model_input(config)  # unknown keyword arguments, a size the model cannot take -> FocusNetError now
    if out_dir.exists() and not out_dir.is_dir():
        raise FocusNetError(f"--out: {out_dir} exists and is not a folder")
    state_path = out_dir / STATE_JSON
    state = _read_state(state_path)
    protocol = _protocol_key(base)
    if state is None:
        if out_dir.is_dir() and any(out_dir.iterdir()):
            raise FocusNetError(f"--out: {out_dir} is not empty and holds no {STATE_JSON}; give a new or empty folder")
        state = {"kind": "focusnet-compare", "version": 1, "config_file": str(config_path), "profile": profile,
                 "overrides": list(overrides), "protocol": protocol, "models": {}}
    elif changed := _changed_keys(protocol, state.get("protocol") or {}):
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
    _write_json(state_path, state)

    # What runs, from the resolved config: the profile's notes describe the profile before the overrides.
    say(f"focusnet compare: {describe_run(base, [s.name for s in specs])}; folder {out_dir}")
    say(f"  profile {describe_profile(profile, overrides)}")
    for i, spec in enumerate(specs, 1):
        entry = state["models"][spec.name]
        config, dropped = configs[spec.name]
        prefix = f"[{i}/{len(specs)}] {spec.name}"
        if dropped:
            say(f"{prefix}: model_kwargs {', '.join(dropped)} of the config's model do not apply to {spec.model}; left out")
        try:
            # Training's own lines (model summary, epochs, Lightning's bar) are progress: stderr, so that
            # stdout holds only the results table.
            with contextlib.redirect_stdout(sys.stderr):
                _train_and_evaluate(config, runs_dir / spec.name, entry, state, state_path, say, prefix)
        except KeyboardInterrupt:
            _write_json(state_path, state)
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
        _write_json(state_path, state)

    comparison = _collect(specs, configs, state, base, config_path, profile, out_dir)
    _write_outputs(comparison, specs, configs, out_dir, say, gallery_limit, show or (lambda text: print(text, flush=True)))
    return comparison


def _train_and_evaluate(config: Any, run_dir: Path, entry: dict, state: dict, state_path: Path,
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
                say(f"{prefix}: training {config.model} ({config.preset or 'no preset'}) at {config.size}x{config.size}, "
                    f"{config.epochs} epochs" + (f", at most {config.max_minutes:g} min" if config.max_minutes else ""))
                tr.train(config)
        finally:
            entry["train_seconds"] = float(entry.get("train_seconds", 0.0)) + time.perf_counter() - start
            _write_json(state_path, state)
    summary = run.read_eval_summary("test")
    if summary is None:
        say(f"{prefix}: evaluating the test split at model and original resolution")
        summary = ev.evaluate_run(run_dir, split="test", threshold=config.threshold, overwrite=True)
    res = summary.get("original_resolution") or summary["model_resolution"]
    entry.update(status="done", error=None)
    say(f"{prefix}: test Dice {res['mean']['dice']:.4f} (per-image mean), Jaccard {res['mean']['jaccard']:.4f}; "
        f"training {entry['train_seconds'] / 60:.1f} min")


# ------------------------------------------------------------------------------------- results
def _collect(specs: Sequence[ModelSpec], configs: dict, state: dict, base: Any, config_path: Path,
             profile: str, out_dir: Path) -> dict[str, Any]:
    models, split_info = [], None
    for spec in specs:
        entry = state["models"][spec.name]
        config = configs[spec.name][0]
        run_dir = out_dir / "runs" / spec.name
        run = RunDir(run_dir)
        row: dict[str, Any] = {"name": spec.name, "model": spec.model, "preset": config.preset,
                               "status": entry["status"], "error": entry.get("error"), "run_dir": str(run_dir)}
        try:
            kwargs = config.model_args()
            m = measure(spec.model, size=config.size, in_channels=kwargs.pop("in_channels"), **kwargs)
        except Exception:  # noqa: BLE001 - a model that cannot be built has failed already
            m = None
        row.update(params=m["params"] if m else None, gmacs=round(m["macs"] / 1e9, 4) if m else None, gmacs_size=config.size)
        row.update(train_seconds=round(float(entry.get("train_seconds", 0.0)), 1))
        if entry["status"] == "done":
            summary = _eval_summary(run)
            row["summary"] = summary.get("original_resolution") or summary["model_resolution"]
            row["summary_model_res"] = summary["model_resolution"]
            row["metrics_resolution"] = "original" if summary.get("original_resolution") else "model"
            metrics_csv = run.file(RunDir.METRICS_CSV)
            metrics = read_epoch_metrics(metrics_csv) if metrics_csv.is_file() else {}
            row["curves"] = {k: {str(e): v for e, v in sorted(metrics.get(k, {}).items())}
                             for k in ("train_loss", "val_loss", "val_dice")}
            row["epochs_run"] = len(metrics.get("train_loss", {}))
            # numbered from 0 like every epoch focusnet shows (metrics.csv, curves, best.json); a key of "curves"
            row["best_epoch"] = run.checkpoint_epoch(RunDir.BEST_CKPT)
            split = run.read_split()
            if split_info is None:
                split_info = split
            elif split_info != split:
                row.update(status="failed", error=f"{run.file(RunDir.SPLIT_JSON)}: another split than the other models'; delete this run and compare again")
        models.append(row)

    s = base.size
    split_name = base.data.split
    sizes = "/".join(str(len(split_info[k])) for k in ("train", "val", "test")) if split_info else "?"
    done = [m for m in models if m["status"] == "done"]
    reference = next((m["name"] for m in models if m["model"] == "focusnetpp"), None)
    resolution = ("each image's original resolution (probabilities resized back, bilinear)"
                  if done and all(m["metrics_resolution"] == "original" for m in done) else f"{s}x{s} (model input)")
    comparison: dict[str, Any] = {
        "title": f"focusnet compare: {Path(base.data.source or '?').name}, {profile} profile",
        "dataset": base.data.format,
        "reference": reference,
        "protocol": {
            "run": describe_run(base, [m["name"] for m in models]),  # what ran, after profile and overrides
            "data": str(base.data.source),
            "format": base.data.format,
            "split": f"{split_name} ({sizes} train/val/test), split seed {base.data.split_seed}",
            "test_images": len(split_info["test"]) if split_info else None,
            "resolution": f"models trained and run at {s}x{s}; metrics at {resolution}",
            "threshold": f"foreground where probability > {base.threshold}",
            "aggregation": ("per-image mean ± population std (each image weighs the same); pooled = from the "
                            "confusion counts summed over the test images; empty-mask rule: 0/0 counts as 1"),
            "selection": "best epoch by validation loss (val split; epochs numbered from 0); test split used once, at the end",
            "loss": f"ALL-HL {base.loss}",
            "optimizer": f"{base.optimizer} lr {base.lr:g}, betas {list(base.betas)}, eps {base.eps:g}, weight decay {base.weight_decay:g}",
            "schedule": f"{base.lr_schedule}, {base.epochs} epochs" + (f", at most {base.max_minutes:g} min per model" if base.max_minutes else ""),
            "batch_size": base.batch_size,
            "augmentation": base.to_dict()["augment"],
            "normalization": base.normalization,
            "seed": base.seed,
            "profile": describe_profile(profile, state.get("overrides") or []),
            "config": str(config_path),
            "overrides": " ".join(state.get("overrides") or []) or "none",
            "training_time": "wall time of the training attempts compare ran (evaluation excluded)",
            "versions": _versions(),
            "hardware": _hardware(base),
        },
        "models": models,
    }
    comparison["stats"] = compare_statistics(comparison)
    return _clean(comparison)


def _eval_summary(run: RunDir) -> EvalSummary:
    """The run's evaluation of the test split (written by :func:`_train_and_evaluate`)."""
    summary = run.read_eval_summary("test")
    if summary is None:
        raise FocusNetError(f"{run.eval_dir('test')}: no evaluation of the test split; compare again to write it")
    return summary


def _versions() -> dict[str, str]:
    import lightning

    return {"focusnet": getattr(focusnet, "__version__", "?"), "torch": torch.__version__,
            "lightning": lightning.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _hardware(config: Any) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() and uses_cuda(config.accelerator) else "no GPU used"
    threads = config.num_threads or torch.get_num_threads()
    return f"{cpu} ({os.cpu_count()} logical CPUs, {threads} torch threads); {gpu}"


# ------------------------------------------------------------------------------------- outputs
def _cases(comparison: dict, configs: dict, out_dir: Path) -> list[dict[str, Any]]:
    """Every test image with its truth and each done model's mask, at model resolution."""
    done = [m for m in comparison["models"] if m["status"] == "done"]
    if not done:
        return []
    first = Path(done[0]["run_dir"])
    data = ev.load_eval_data(first, "test")
    images = data.images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    truths = (data.masks[:, 0] > 0.5).numpy()
    cases = [{"id": i, "image": images[k], "truth": truths[k], "predictions": {}, "dice": {}} for k, i in enumerate(data.ids)]
    for m in done:
        config = configs[m["name"]][0]
        dice = {r["id"]: r["dice"] for r in m["summary"]["per_image"]}
        model, _ = ev.load_best_model(Path(m["run_dir"]), torch.device("cpu"))
        model.eval()
        with torch_threads(config.num_threads), torch.inference_mode():
            for start in range(0, len(cases), 16):
                probs = torch.sigmoid(model(data.images[start:start + 16]).float())[:, 0]
                for k, p in enumerate((probs > config.threshold).numpy()):
                    cases[start + k]["predictions"][m["name"]] = p
        for case in cases:
            case["dice"][m["name"]] = dice.get(case["id"], float("nan"))
        del model
    return cases


def _write_outputs(comparison: dict, specs: Sequence[ModelSpec], configs: dict, out_dir: Path,
                   say: Callable[[str], None], gallery_limit: int, show: Callable[[str], None]) -> None:
    _write_json(out_dir / COMPARISON_JSON, comparison)
    written = tables.write_tables(comparison, out_dir / "tables")
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    done = [m for m in comparison["models"] if m["status"] == "done"]
    colors = figures.model_colors(m["name"] for m in comparison["models"])
    figs: dict[str, Path] = {}
    cases = _cases(comparison, configs, out_dir)
    if done:
        ref = next((m for m in done if m["name"] == comparison["reference"]), done[0])
        dice_by_id = {r["id"]: r["dice"] for r in ref["summary"]["per_image"] if r["dice"] is not None}
        picks = figures.select_cases(dice_by_id, per_group=2)
        names = [m["name"] for m in done]
        figs[f"Best, median and worst test images of {ref['name']} (model resolution)"] = figures.qualitative_grid(
            cases, picks, names, fig_dir / "qualitative", colors=colors)[0]
        figs["Training and validation curves"] = figures.training_curves(comparison, fig_dir / "curves")[0]
        figs["Per-image Dice on the test split"] = figures.dice_distributions(comparison, fig_dir / "dice_distribution")[0]
    report_path = report.write_report(
        comparison,
        out_dir / REPORT_HTML,
        tables_markdown=tables.to_markdown(comparison, footer=False),
        paper_markdown=tables.paper_reference_markdown(comparison["dataset"]) or None,
        figures=figs,
        cases=cases,
        max_gallery=gallery_limit,
    )
    failed = [m["name"] for m in comparison["models"] if m["status"] != "done"]
    show(tables.to_markdown(comparison, footer=False))  # the result: stdout; progress and paths: stderr
    say(f"focusnet compare: tables {out_dir / 'tables'} ({len(written)} files), figures {fig_dir} "
        f"({sum(1 for _ in fig_dir.glob('*.p*'))} files), report {report_path}"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""))
