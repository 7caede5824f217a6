"""Train a segmentation model with Lightning, then evaluate its best checkpoint on the test split.

:func:`train` writes one self-contained run folder, through :class:`~focusnet.engine.rundir.RunDir`
(which owns its layout and every read of it)::

    <run>/config.json, config.yaml   the resolved TrainConfig (paths absolute, preset resolved)
    <run>/environment.json           versions, devices, seed, command line, the prepared cache used
                                     (+ one entry per resume)
    <run>/split.json                 the train/val/test ids (from the prepared cache)
    <run>/best.ckpt, last.ckpt       full state (model, optimiser, scheduler, epoch, RNG): best by
                                     val_loss (the test split is never looked at), and last, every epoch
    <run>/progress.json              the last completed epoch
    <run>/weights/best.safetensors, last.safetensors (+ .json)   weights for use (focusnet.weights)
    <run>/logs/metrics.csv           per-epoch train_loss, val_loss, val_dice, lr (+ hparams.yaml)
    <run>/logs/train.log             the run's messages; logs/tensorboard/ when TensorBoard is installed
    <run>/curves.png                 loss and validation Dice per epoch
    <run>/summary.json               test-split metrics of best.ckpt (``focusnet score --json`` schema)

Data come from the prepared cache only, prepared (:func:`focusnet.data.cache.prepare`, a no-op when
the cache is up to date) and opened once per command; :func:`load_split_tensors` reads the splits.

:func:`resume` continues a run from its ``last.ckpt``; with the per-epoch reseeding of
:class:`~focusnet.engine.callbacks.StepSeed` the result is bit-identical to an uninterrupted run on
the same machine; :mod:`focusnet.engine.resume` holds what resuming needs besides the fit (the
config it continues with, the earlier ``metrics.csv`` rows). :mod:`focusnet.engine.trainer` builds
the Lightning ``Trainer``, its callbacks, loggers and data loaders.

Under DDP (``devices > 1`` or ``num_nodes > 1``; launched by Lightning itself, ``torchrun`` or SLURM)
every process runs this module; only global rank 0 writes the run folder and prepares the cache,
the others wait for it. Metrics come from the per-image counts of all processes.

Example:
    >>> from focusnet.engine.config import TrainConfig
    >>> config = TrainConfig(data={"source": "data/lesions"}, size=64, epochs=2, out_dir="runs/try")
    >>> run = train(config)  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

import focusnet
from focusnet.data.cache import open_cache
from focusnet.data.readers import data_set_name
from focusnet.data.splits import SPLIT_NAMES
from focusnet.diskspace import MARGIN_BYTES, ensure_free_space
from focusnet.engine.config import TrainConfig, expand_path
from focusnet.engine.plots import plot_training_curves
from focusnet.engine.resume import (
    RESUME_OVERRIDABLE,  # noqa: F401 - the old import path
    earlier_rows,
    merge_rows,
    resumed_config,
)
from focusnet.engine.rundir import CacheRecord, RunDir, ScoreSummary, build_model, prepare_data, torch_threads
from focusnet.engine.split_score import split_summary
from focusnet.engine.split_tensors import COMMAND_CACHE, SplitTensors, load_split_tensors
from focusnet.engine.trainer import (
    build_trainer,
    data_loader,
    global_rank,
    interrupted_message,
    is_distributed,
    launched_distributed,
    quiet_lightning,
    restore_determinism,
    sigint_handler,
)
from focusnet.errors import DOCS_CONFIG, DOCS_FORMAT, FocusNetError
from focusnet.models import list_presets
from focusnet.runtime import omp_wait_policy
from focusnet.weights import save_weights

__all__ = [
    "SplitTensors",
    "build_model",
    "default_run_dir",
    "load_split_tensors",
    "prepare_data",
    "prepare_run_dir",
    "read_config",
    "read_split",
    "resolve_model",
    "resume",
    "torch_threads",
    "train",
]

# The run folder's layout is RunDir's; these names stay for the code that reads them from here.
SUMMARY_JSON = RunDir.SUMMARY_JSON
BEST_CKPT = RunDir.BEST_CKPT
LAST_CKPT = RunDir.LAST_CKPT
LOG_DIR = RunDir.LOG_DIR
METRICS_CSV = RunDir.METRICS_CSV
TRAIN_LOG = RunDir.TRAIN_LOG
CURVES_PNG = RunDir.CURVES_PNG
WEIGHTS_DIR = RunDir.WEIGHTS_DIR
RUN_DIR_ENV = "FOCUSNET_RUN_DIR"  # rank 0 tells the processes Lightning launches where the run is

log = logging.getLogger("focusnet.train")


# ------------------------------------------------------------------------------------- run folder
def default_run_dir(prefix: str) -> Path:
    """``runs/<prefix>-YYYYmmdd-HHMMSS`` (relative to the working directory)."""
    return RunDir.default(prefix).path


def prepare_run_dir(run_dir: str | Path, keep: Iterable[str | Path] = ()) -> Path:
    """Create ``run_dir``, refusing an existing non-empty folder (runs are never overwritten).

    Args:
        run_dir: the run folder.
        keep: paths inside ``run_dir`` that may already exist (e.g. the data folder the demo
            generated there); anything else makes the folder count as used.
    """
    return RunDir(run_dir).create(keep).path


def _top_entry_inside(path: Path, folder: Path) -> Path | None:
    """The child of ``folder`` that contains ``path`` (or is it), if ``path`` is inside ``folder``."""
    try:
        rel = path.resolve().relative_to(folder.resolve())
    except ValueError:
        return None
    return folder.resolve() / rel.parts[0] if rel.parts else None


def read_config(run_dir: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` saved in a run folder."""
    return RunDir(run_dir).read_config()


def read_split(run_dir: str | Path) -> dict[str, list[str]]:
    """The ``{"train": [...], "val": [...], "test": [...]}`` ids saved in a run folder."""
    return RunDir(run_dir).read_split()


# ------------------------------------------------------------------------------------------- data
def _resolve_data(config: TrainConfig) -> TrainConfig:
    """``config`` with ``data.source`` and ``data.cache_dir`` expanded and absolute (checked)."""
    d = config.data
    if d.source is None:
        raise FocusNetError(f"data.source: not set; give the {data_set_name(d.format)} folder (data.source=PATH)",
                            see=DOCS_FORMAT.get(d.format))
    source = Path(expand_path(d.source))
    if not source.is_dir():
        raise FocusNetError(f"data.source: {source} is not a folder; give the {data_set_name(d.format)} folder",
                            see=DOCS_FORMAT.get(d.format))
    cache_dir = Path(expand_path(d.cache_dir))
    split = d.split
    if split.lower().endswith(".json"):
        split = str(Path(expand_path(split)).resolve())
    data = {
        **config.to_dict()["data"],
        "source": str(source.resolve()),
        "cache_dir": str(cache_dir.resolve()),
        "split": split,
    }
    return config.replace(data=data)


def resolve_model(config: TrainConfig) -> TrainConfig:
    """``config`` with the model name checked and ``preset=None`` replaced by the model's default preset."""
    presets = list_presets(config.model)  # FocusNetError for an unknown model
    if config.preset is None:
        return config.replace(preset=presets[0]) if presets else config
    if not presets:
        raise FocusNetError(f"preset: model {config.model!r} has no presets; set preset to null")
    if config.preset not in presets:
        raise FocusNetError(
            f"preset: unknown preset {config.preset!r} for model {config.model!r}; choose one of: {', '.join(presets)}"
        )
    return config


def check_model_input(config: TrainConfig) -> None:
    """Build ``config``'s model on the meta device and run one ``size x size`` input through it.

    Catches, before any data is prepared or a run folder is made, a ``size`` (or ``warmup_size``) the
    model cannot take (``size=50`` where the model needs a multiple of 16) and bad ``model_kwargs``; costs no memory
    and almost no time (meta tensors hold no data).

    Raises:
        FocusNetError: naming the ``size`` (or ``warmup_size``) key and a size that works, or the bad keyword
            argument.
    """
    with torch.device("meta"):
        model = build_model(config)
    sizes = {"size": config.size}
    if config.warmup_size is not None:
        sizes["warmup_size"] = config.warmup_size
    for key, side in sizes.items():
        with torch.device("meta"):
            x = torch.empty(1, config.channels, side, side)
        try:
            with torch.no_grad():
                model.eval()(x)
        except FocusNetError as exc:
            found = re.search(r"divisible by (\d+)", str(exc))
            if not found:
                raise
            k = int(found.group(1))
            lower, upper = max(k, side // k * k), -(-side // k) * k
            fits = f"{key}={lower} or {key}={upper}" if lower != upper else f"{key}={lower}"
            raise FocusNetError(
                f"{key}: {side} does not fit {config.model}, whose input side must be a multiple of {k}; set {fits}",
                see=DOCS_CONFIG,
            ) from None
        except Exception:  # noqa: BLE001 - an operator without a meta kernel: the real run will tell
            return


# ------------------------------------------------------------------------------------------ train
def _environment(config: TrainConfig, run_dir: Path, resumed: bool) -> dict:
    import lightning  # heavy: only training needs it

    cuda = torch.cuda.is_available()
    env = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "resumed": resumed,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "cwd": os.getcwd(),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "focusnet": getattr(focusnet, "__version__", None),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "numpy": __import__("numpy").__version__,
        "cuda": torch.version.cuda if cuda else None,
        "devices": (
            [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda
            else [platform.processor() or "cpu"]
        ),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": omp_wait_policy(),
        "accelerator": config.accelerator,
        "requested_devices": config.devices,
        "num_nodes": config.num_nodes,
        "precision": config.precision,
        "seed": config.seed,
        "deterministic": config.deterministic,
    }
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent).stdout.strip()
        env["git_commit"] = commit or None
    except Exception:  # noqa: BLE001 - git is optional
        env["git_commit"] = None
    return env


def checkpoint_bytes(model: nn.Module) -> int:
    """Estimated disk space of a run's checkpoints: best, last and the temporary file each is written
    to before renaming, each holding the parameters and buffers (4 bytes a value) and Adam's two moments."""
    values = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    return 3 * values * 4 * 3


def _ensure_space_for_run(model: nn.Module, run_dir: Path) -> None:
    ensure_free_space(run_dir, checkpoint_bytes(model) + MARGIN_BYTES, "the run's checkpoints and logs")


def train(config: TrainConfig) -> Path:
    """Train ``config.model`` on ``config.data`` and evaluate the best checkpoint on the test split.

    Everything that can fail on bad input (config, model, data, run folder) fails before training.
    Like ``focusnet train``, building the model applies :func:`focusnet.runtime.tune_cpu_allocator`
    (freed memory kept for reuse until the process exits; ``FOCUSNET_ALLOCATOR_TUNING=0`` keeps
    glibc's default; ``docs/how-to/speed.md``).

    Returns:
        The run folder.

    Example:
        >>> from focusnet.engine.config import load_config
        >>> run = train(load_config("configs/demo.yaml", ["epochs=1"]))  # doctest: +SKIP
    """
    config.validate()
    with torch_threads(config.num_threads):
        return _run(config, resume_dir=None)


def resume(run_dir: str | Path, overrides: Sequence[str] = ()) -> Path:
    """Continue the run in ``run_dir`` from its ``last.ckpt`` (same config; ``epochs`` etc. may change).

    Raises:
        FocusNetError: not a run folder, no ``last.ckpt``, or an override of a key that would make
            it a different run.
    """
    run_dir = Path(run_dir)
    config = resumed_config(run_dir, overrides)
    with torch_threads(config.num_threads):
        return _run(config, resume_dir=run_dir)


def _run(config: TrainConfig, resume_dir: Path | None) -> Path:
    import lightning as L  # heavy: only training needs it

    config = resolve_model(config.validate())
    rank0 = global_rank() == 0
    distributed = is_distributed(config)
    if resume_dir is None:
        config = _resolve_data(config)
        # Everything that can fail on bad input happens before the run folder is created.
        check_model_input(config)  # size and model_kwargs, before the cache and the run folder
        L.seed_everything(config.seed, workers=True, verbose=False)
        model = build_model(config)
        if config.out_dir is not None:
            run_dir = Path(config.out_dir)
        elif os.environ.get(RUN_DIR_ENV):
            run_dir = Path(os.environ[RUN_DIR_ENV])
        elif distributed and not rank0 or launched_distributed():
            raise FocusNetError(
                "out_dir: give --out when launching with torchrun or SLURM, so every process uses the same run folder"
            )
        else:
            run_dir = default_run_dir(config.model)
        run = RunDir(run_dir)
        if rank0:
            assert config.data.source is not None  # _resolve_data checked it
            keep = [k for k in (_top_entry_inside(Path(config.data.source), run_dir),
                                _top_entry_inside(Path(config.data.cache_dir), run_dir)) if k is not None]
            run.check_unused(keep)
            _ensure_space_for_run(model, run_dir)
            cache = open_cache(prepare_data(config)["cache"])  # this command's one prepare (bad data fails here)
            split = {k: list(cache.splits.get(k, [])) for k in SPLIT_NAMES}
            run.create(keep)
            config = config.replace(out_dir=str(run_dir.resolve()))
            run.write_split(split)
            run.write_config(config)
            run.record_environment(_environment(config, run_dir, resumed=False), cache=CacheRecord.of(cache))
            run.mark_ready()
        else:
            run.wait_ready()
            config = run.read_config()
            split = run.read_split()
            cache = run.prepared_cache(config)
        ckpt_path = None
    else:
        run = RunDir(resume_dir.resolve())
        L.seed_everything(config.seed, workers=True, verbose=False)
        model = build_model(config)
        split = run.read_split()
        cache = run.prepared_cache(config)  # the one the run trained on (prepared again only when gone)
        if rank0:
            _ensure_space_for_run(model, run.path)
            run.write_config(config)
            run.record_environment(_environment(config, run.path, resumed=True), cache=CacheRecord.of(cache))
        ckpt_path = str(run.file(LAST_CKPT))
    os.environ[RUN_DIR_ENV] = str(run.path)  # inherited by the processes Lightning launches
    token = COMMAND_CACHE.set(cache)
    try:
        return _fit(config, run, model, split, ckpt_path, rank0, distributed)
    finally:
        COMMAND_CACHE.reset(token)


def _fit(config: TrainConfig, run: RunDir, model: nn.Module, split: dict[str, list[str]], ckpt_path: str | None,
         rank0: bool, distributed: bool) -> Path:
    """Fit on train/val, then score the best weights on the test split; the folder's training files."""
    from focusnet.engine.module import SegmentationModule  # imports Lightning, which only training needs

    run_dir = run.path

    # Lightning's CSV logger deletes an existing metrics.csv: keep the earlier epochs' rows.
    earlier = earlier_rows(run_dir, Path(ckpt_path)) if ckpt_path is not None and rank0 else []

    # Only train and val are loaded for fitting; model selection (best.ckpt) sees val_loss only.
    data = load_split_tensors(config, split, parts=("train", "val"))
    module = SegmentationModule.from_config(model, config)
    with quiet_lightning(run_dir / TRAIN_LOG if rank0 else None), restore_determinism():
        trainer = build_trainer(config, run_dir, distributed)
        resuming = f", resuming {ckpt_path}" if ckpt_path else ""
        log.info("training %s (%s) in %s%s", config.model, config.preset, run_dir, resuming)
        sigint = sigint_handler()
        try:
            trainer.fit(
                module,
                data_loader(data["train"], config, train=True, distributed=distributed),
                data_loader(data["val"], config, train=False, distributed=distributed),
                ckpt_path=ckpt_path,
                weights_only=True,
            )
        except SystemExit:  # Lightning's answer to Ctrl-C: sys.exit(1) after its teardown
            if not trainer.interrupted:
                raise
        finally:
            sigint_handler(sigint)  # Lightning ignores SIGINT from the first Ctrl-C on
        if trainer.interrupted:
            raise KeyboardInterrupt(interrupted_message(run_dir))
        if not (run_dir / BEST_CKPT).is_file():
            raise FocusNetError(f"{run_dir}: training produced no {BEST_CKPT} (was val_loss NaN?)")
        del data
        if trainer.is_global_zero:
            if earlier:
                merge_rows(run_dir / METRICS_CSV, earlier)
            _save_weights(module.model, config, run_dir / WEIGHTS_DIR / "last", trainer, "last")
        if not split["test"]:
            if trainer.is_global_zero:
                module.model.load_state_dict(run.read_checkpoint(BEST_CKPT)[0])
                _save_weights(module.model, config, run_dir / WEIGHTS_DIR / "best", trainer, "best",
                              epoch=run.checkpoint_epoch(BEST_CKPT))
                _plot(config, run_dir)
                log.warning(
                    "the split has no test images; no summary.json (score the val split with `focusnet evaluate`)"
                )
            return run_dir
        # The test split is loaded for the first time now, and scored with the best weights.
        test = load_split_tensors(config, split, parts=("test",))["test"]
        test_loader = data_loader(test, config, train=False, distributed=distributed)
        trainer.test(module, test_loader, ckpt_path=str(run_dir / BEST_CKPT), verbose=False, weights_only=True)
        if trainer.is_global_zero:
            best_epoch = run.checkpoint_epoch(BEST_CKPT)
            _save_weights(module.model, config, run_dir / WEIGHTS_DIR / "best", trainer, "best", epoch=best_epoch)
            summary = _summary(module, test, config, run_dir, best_epoch)
            run.write_summary(summary)
            _plot(config, run_dir)
            log.info("test Dice %.4f (per-image mean, %d images)", summary["mean"]["dice"], summary["count"])
    return run_dir


def _save_weights(
    model: nn.Module, config: TrainConfig, stem: Path, trainer, which: str, epoch: int | None = None
) -> None:
    kwargs = config.model_args()
    epoch = epoch if epoch is not None else trainer.current_epoch - 1
    extra = {"run": str(stem.parent.parent), "which": which, "epoch": epoch}
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in ("val_loss", "val_dice")}
    if which == "last" and metrics:
        extra.update(metrics)
    channels_last = torch.channels_last
    was_cl = next(model.parameters()).is_contiguous(memory_format=channels_last) if config.channels_last else False
    # torch's stubs omit Module.to's memory_format keyword (here and below)
    if was_cl:
        model = model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    save_weights(model, stem, config.model, kwargs, config.preprocessing(), threshold=config.threshold, extra=extra)
    if was_cl:
        model.to(memory_format=channels_last)  # type: ignore[call-overload]


def _summary(module, test: SplitTensors, config: TrainConfig, run_dir: Path, epoch: int | None) -> ScoreSummary:
    counts, index = module.test_counts, module.test_index
    if counts is None or len(index) != len(test) or not torch.equal(index, torch.arange(len(test))):
        raise FocusNetError(f"{run_dir}: the test evaluation did not cover every test image once")
    processes = int(module.trainer.world_size) if module.trainer is not None else 1
    return split_summary(counts, test.ids, config, run_dir, BEST_CKPT, epoch, "test", processes)


def _plot(config: TrainConfig, run_dir: Path) -> None:
    metrics_csv = run_dir / METRICS_CSV
    if metrics_csv.is_file():
        title = f"{config.model} ({config.preset}) - {run_dir.name}"
        plot_training_curves(metrics_csv, run_dir / CURVES_PNG, title=title)
