"""The run folder: its layout, and every read and write of it, in one place.

:func:`focusnet.engine.train.train` writes a run folder through :class:`RunDir`; ``evaluate``,
``predict`` (through :func:`focusnet.weights.load_model`), ``compare`` and ``load_model`` read it
through :class:`RunDir`::

    <run>/config.json, config.yaml   the resolved TrainConfig (paths absolute, preset resolved)
    <run>/environment.json           versions, devices, seed, command line, the prepared cache used
                                     ("data"; one entry per resume under "resumes")
    <run>/split.json                 the train/val/test ids (from the prepared cache)
    <run>/best.ckpt, last.ckpt       full training state; best by the monitored metric, last every epoch
    <run>/progress.json              the last completed epoch
    <run>/weights/best.safetensors, last.safetensors (+ .json)   weights for use (focusnet.weights)
    <run>/logs/metrics.csv, logs/train.log, curves.png            per-epoch metrics, messages, plot
    <run>/summary.json               test-split metrics of best.ckpt (``focusnet score --json`` schema)
    <run>/eval/<split>/              what ``focusnet evaluate`` writes

Folders written before the prepared cache was recorded still load: :meth:`RunDir.prepared_cache`
then prepares (a no-op when up to date) and opens the cache of the run's config, as before.

Example:
    >>> run = RunDir("runs/demo-20250101-120000")
    >>> run.file(RunDir.BEST_CKPT).name
    'best.ckpt'
"""
from __future__ import annotations

import contextlib
import json
import shlex
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch
import yaml
from torch import nn

from focusnet.atomic import atomic_write
from focusnet.data.cache import MANIFEST, PreparedDataset, open_cache, prepare
from focusnet.data.splits import SPLIT_NAMES
from focusnet.engine.config import TrainConfig, expand_path
from focusnet.errors import FocusNetError
from focusnet.metrics import ScoreSummary
from focusnet.models import create_model

__all__ = ["CacheRecord", "EvalSummary", "RunDir", "ScoreSummary", "build_model", "prepare_data", "torch_threads"]

_MODEL_PREFIX = "model."  # the LightningModule stores the network as `model`


class EvalSummary(TypedDict, total=False):
    """``eval/<split>/summary.json``, written by :func:`focusnet.engine.evaluate.evaluate_run`."""

    split: str
    threshold: float
    empty_score: float | None
    empty_rule: str
    aggregation: str
    run: str
    model: str
    preset: str | None
    weights: str
    weights_sha256: str
    settings: dict[str, Any]
    data: str
    count: int
    model_resolution: ScoreSummary
    original_resolution: ScoreSummary | None
    files: list[str]
    reused: bool


@dataclass(frozen=True)
class CacheRecord:
    """The prepared cache a run trained on, as ``environment.json`` records it (key ``data``).

    Attributes:
        cache: the cache folder (absolute).
        format: the data set format.
        source: the data set folder the cache was made from.
        count: images in the cache.
        splits: images per split.
    """

    cache: str
    format: str
    source: str
    count: int
    splits: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, cache: PreparedDataset) -> CacheRecord:
        """The record of an opened cache."""
        settings = cache.manifest.get("settings", {})
        return cls(str(cache.path.resolve()), str(settings.get("format")), str(settings.get("source")), len(cache),
                   {k: len(v) for k, v in cache.splits.items()})

    @classmethod
    def from_dict(cls, data: Any) -> CacheRecord | None:
        """The record in ``data``, or None when it is not one (a hand-edited or foreign file)."""
        if not isinstance(data, dict) or not isinstance(data.get("cache"), str):
            return None
        splits = data.get("splits")
        splits = splits if isinstance(splits, dict) else {}
        count = data.get("count")
        count = count if isinstance(count, int) else 0
        return cls(data["cache"], str(data.get("format")), str(data.get("source")), count, dict(splits))


# ----------------------------------------------------------------------------------- helpers
def build_model(config: TrainConfig) -> nn.Module:
    """``create_model(config.model, in_channels=..., preset=..., **config.model_kwargs)``."""
    try:
        return create_model(config.model, **config.model_args())
    except TypeError as exc:
        raise FocusNetError(f"model_kwargs: {exc}") from None


def prepare_data(config: TrainConfig, progress: bool = False) -> dict:
    """Prepare (or find up to date) the cache of ``config.data``; returns ``prepare``'s summary."""
    d = config.data
    if d.source is None:  # the callers check it first, with their own words
        raise FocusNetError("data.source: not set; give the data set folder (data.source=PATH)")
    return prepare(
        d.format,
        expand_path(d.source) if d.source else d.source,
        expand_path(d.cache_dir),
        size=config.size,
        channels=config.channels,
        normalization=config.normalization,
        mask_rule=d.mask_rule,
        split=d.split,
        seed=d.split_seed,
        fold=d.fold,
        progress=progress,
        skip_bad=d.skip_bad,
        **d.reader_options(),
    )


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run with ``torch.set_num_threads(num_threads)`` (None: unchanged), restoring the old value."""
    old = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _write_json(path: Path, data: object) -> None:
    atomic_write(path, json.dumps(data, indent=2) + "\n")


# ----------------------------------------------------------------------------------- RunDir
class RunDir:
    """One run folder: where each file is, and how it is read and written.

    Example:
        >>> run = RunDir("runs/try")
        >>> run.eval_dir("test").as_posix()
        'runs/try/eval/test'
    """

    CONFIG_JSON = "config.json"
    CONFIG_YAML = "config.yaml"
    ENVIRONMENT_JSON = "environment.json"
    SPLIT_JSON = "split.json"
    SUMMARY_JSON = "summary.json"
    BEST_CKPT = "best.ckpt"
    LAST_CKPT = "last.ckpt"
    PROGRESS_JSON = "progress.json"
    LOG_DIR = "logs"
    METRICS_CSV = f"{LOG_DIR}/metrics.csv"
    TRAIN_LOG = f"{LOG_DIR}/train.log"
    CURVES_PNG = "curves.png"
    WEIGHTS_DIR = "weights"
    BEST_WEIGHTS = f"{WEIGHTS_DIR}/best.safetensors"
    EVAL_DIR = "eval"
    READY = ".ready"  # rank 0 has written the folder; the other processes may read it
    DATA_KEY = "data"  # the CacheRecord's key in environment.json

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """``path / name`` (``name``: one of the layout constants, or a path inside the run)."""
        return self.path / name

    def _missing(self, name: str) -> FocusNetError:
        if self.path.is_file():  # a file of a run given for the run, e.g. runs/x/config.yaml
            parent = RunDir(self.path.parent)
            fix = f"give its folder, {parent.path}" if parent.file(name).is_file() else "give a run folder"
            return FocusNetError(f"{self.path}: a file, not a run folder made by `focusnet train`; {fix}")
        return FocusNetError(f"{self.file(name)}: not found; is {self.path} a run folder made by `focusnet train`?")

    # ------------------------------------------------------------------------------ creation
    @classmethod
    def default(cls, prefix: str) -> RunDir:
        """``runs/<prefix>-YYYYmmdd-HHMMSS`` (relative to the working directory)."""
        return cls(Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")

    def check_unused(self, keep: Iterable[str | Path] = ()) -> None:
        """Refuse a folder that exists and holds anything but ``keep`` (creates nothing)."""
        if self.path.exists() and not self.path.is_dir():
            raise FocusNetError(f"{self.path}: exists and is not a folder; choose a new run folder with --out")
        if self.path.is_dir():
            allowed = {Path(k).resolve() for k in keep}
            used = sorted(p.name for p in self.path.iterdir() if p.resolve() not in allowed)
            if used:
                raise FocusNetError(
                    f"{self.path}: run folder already exists and is not empty ({', '.join(used[:3])}"
                    f"{', ...' if len(used) > 3 else ''}); runs are never overwritten, choose a new folder with --out"
                )

    def create(self, keep: Iterable[str | Path] = ()) -> RunDir:
        """Create the folder, refusing a used one (see :meth:`check_unused`)."""
        self.check_unused(keep)
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def mark_ready(self) -> None:
        """Tell the other processes of a distributed run that the folder is written."""
        self.file(self.READY).write_text("")

    def wait_ready(self, timeout: float = 3600.0) -> None:
        """Wait until rank 0 has called :meth:`mark_ready`."""
        start = time.monotonic()
        while not self.file(self.READY).exists():
            if time.monotonic() - start > timeout:
                raise FocusNetError(f"{self.file(self.READY)}: rank 0 did not prepare the run within {timeout:.0f} s")
            time.sleep(0.5)

    # ----------------------------------------------------------------------- config and split
    def read_config(self) -> TrainConfig:
        """The :class:`TrainConfig` saved in the run."""
        path = self.file(self.CONFIG_JSON)
        if not path.is_file():
            raise self._missing(self.CONFIG_JSON)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise FocusNetError(f"{path}: not valid JSON ({exc})") from None
        return TrainConfig.from_dict(data)

    def write_config(self, config: TrainConfig) -> None:
        """``config.json`` and ``config.yaml``: the same resolved config."""
        data = config.to_dict()
        _write_json(self.file(self.CONFIG_JSON), data)
        atomic_write(self.file(self.CONFIG_YAML), yaml.safe_dump(data, sort_keys=False))

    def read_split(self) -> dict[str, list[str]]:
        """The ``{"train": [...], "val": [...], "test": [...]}`` ids saved in the run."""
        path = self.file(self.SPLIT_JSON)
        if not path.is_file():
            raise self._missing(self.SPLIT_JSON)
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or any(k not in data for k in SPLIT_NAMES):
            raise FocusNetError(f"{path}: expected the keys {', '.join(SPLIT_NAMES)}")
        return {k: [str(i) for i in data[k]] for k in SPLIT_NAMES}

    def write_split(self, split: dict[str, list[str]]) -> None:
        _write_json(self.file(self.SPLIT_JSON), split)

    # ------------------------------------------------------------------ environment and data
    def read_environment(self) -> dict[str, Any]:
        """``environment.json`` ({} when absent)."""
        path = self.file(self.ENVIRONMENT_JSON)
        return json.loads(path.read_text()) if path.is_file() else {}

    def record_environment(self, env: dict[str, Any], cache: CacheRecord | None = None) -> None:
        """Write ``env`` (with the prepared cache used) to ``environment.json``; a resume's goes under ``resumes``."""
        entry = {**env, self.DATA_KEY: asdict(cache)} if cache is not None else dict(env)
        data = self.read_environment()
        if data:
            data.setdefault("resumes", []).append(entry)
        else:
            data = entry
        _write_json(self.file(self.ENVIRONMENT_JSON), data)

    def cache_record(self) -> CacheRecord | None:
        """The prepared cache the run last trained on (None: a folder from before it was recorded)."""
        try:
            env = self.read_environment()
        except (OSError, json.JSONDecodeError):
            return None
        if not isinstance(env, dict):
            return None
        entries = [env] + [r for r in env.get("resumes", []) if isinstance(r, dict)]
        records = [CacheRecord.from_dict(e.get(self.DATA_KEY)) for e in entries]
        return next((r for r in reversed(records) if r is not None), None)

    def prepared_cache(self, config: TrainConfig | None = None) -> PreparedDataset:
        """The run's prepared cache, opened: the recorded one while it exists; otherwise (an older
        run folder, or a deleted cache) the cache of the run's config, prepared if needed (a no-op
        when up to date, see :func:`focusnet.data.cache.prepare`)."""
        record = self.cache_record()
        if record is not None and (Path(record.cache) / MANIFEST).is_file():
            with contextlib.suppress(FocusNetError):  # e.g. made by an older cache version: prepare again
                return open_cache(record.cache)
        config = config if config is not None else self.read_config()
        if config.data.source is None:
            raise FocusNetError(f"{self.file(self.CONFIG_JSON)}: data.source is not set; cannot find the run's data")
        return open_cache(prepare_data(config)["cache"])

    # ------------------------------------------------------------------------- checkpoints
    def checkpoint(self, name: str = BEST_CKPT) -> Path:
        """The path of checkpoint ``name`` (a file name in the run, or an absolute path)."""
        return Path(name) if Path(name).is_absolute() else self.file(name)

    def checkpoint_epoch(self, name: str = BEST_CKPT) -> int | None:
        """The epoch a checkpoint was saved at (numbered from 0), None when unreadable."""
        try:
            epoch = torch.load(self.checkpoint(name), map_location="cpu", weights_only=True).get("epoch")
        except Exception:  # noqa: BLE001 - only informative
            return None
        return int(epoch) if isinstance(epoch, int) else None

    def read_checkpoint(self, name: str = BEST_CKPT) -> tuple[dict[str, torch.Tensor], int | None]:
        """``(model state dict, epoch or None)`` of a checkpoint, read with ``weights_only=True``."""
        path = self.checkpoint(name)
        if not path.is_file():
            raise FocusNetError(f"{path}: checkpoint not found; did training finish?")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
            first = (str(exc).strip().splitlines() or [""])[0]
            raise FocusNetError(
                f"{path}: not a focusnet checkpoint or cannot be read safely ({type(exc).__name__}: {first}); "
                "use the run's weights/best.safetensors or best.ckpt written by focusnet train"
            ) from None
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise FocusNetError(f"{path}: not a Lightning checkpoint or state dict")
        weights = {k[len(_MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(_MODEL_PREFIX)} or state
        return weights, ckpt.get("epoch") if isinstance(ckpt.get("epoch"), int) else None

    def load_checkpoint(self, name: str = BEST_CKPT, config: TrainConfig | None = None) -> tuple[nn.Module, int | None]:
        """``(the run's model with the checkpoint's weights, in eval mode on the CPU, its epoch or None)``."""
        config = config if config is not None else self.read_config()
        weights, epoch = self.read_checkpoint(name)
        model = build_model(config)
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise FocusNetError(
                f"{self.checkpoint(name)}: weights do not fit the model in {self.file(self.CONFIG_JSON)} "
                f"({str(exc).splitlines()[0]})"
            ) from None
        return model.eval(), epoch

    # ----------------------------------------------------------------------------- weights
    @property
    def best_weights(self) -> Path:
        """``weights/best.safetensors``."""
        return self.file(self.BEST_WEIGHTS)

    def weights_file(self) -> Path:
        """The best weights: ``weights/best.safetensors`` when present, else ``best.ckpt``."""
        if self.best_weights.is_file():
            return self.best_weights
        ckpt = self.file(self.BEST_CKPT)
        if not ckpt.is_file():
            raise FocusNetError(f"{ckpt}: checkpoint not found; did training finish an epoch?")
        return ckpt

    def progress(self) -> tuple[int, int] | None:
        """``(epochs done, max epochs)`` from ``progress.json``; None when absent or unreadable."""
        try:
            data = json.loads(self.file(self.PROGRESS_JSON).read_text())
            return int(data["epochs_done"]), int(data["max_epochs"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def interrupted_note(self) -> str | None:
        """One line when training stopped before its last epoch (no ``weights/best.safetensors``).

        Says how many epochs finished (from ``progress.json``) and how to finish the run; None for a
        finished run. Epochs are counted, and numbered from 0 as in ``logs/metrics.csv``.
        """
        if self.best_weights.is_file() or not self.file(self.CONFIG_JSON).is_file():
            return None
        progress = self.progress()
        finished = f"{progress[0]} of {progress[1]} epochs finished" if progress is not None else "no epoch finished"
        fix = (f"finish it with `focusnet train --resume {shlex.quote(str(self.path))}`"
               if self.file(self.LAST_CKPT).is_file() else "start a new run (no last.ckpt to resume from)")
        return f"{self.path}: training was interrupted ({finished}), so it has no {self.BEST_WEIGHTS} yet; {fix}"

    # --------------------------------------------------------------------------- summaries
    def has_summary(self) -> bool:
        """Whether training finished and scored the test split (``summary.json``)."""
        return self.file(self.SUMMARY_JSON).is_file()

    def read_summary(self) -> ScoreSummary:
        path = self.file(self.SUMMARY_JSON)
        if not path.is_file():
            raise self._missing(self.SUMMARY_JSON)
        return json.loads(path.read_text())

    def write_summary(self, summary: ScoreSummary) -> None:
        _write_json(self.file(self.SUMMARY_JSON), summary)

    def eval_dir(self, split: str) -> Path:
        """``eval/<split>``: where ``focusnet evaluate`` writes."""
        return self.path / self.EVAL_DIR / split

    def read_eval_summary(self, split: str) -> EvalSummary | None:
        """``eval/<split>/summary.json``, None when the split was not evaluated."""
        path = self.eval_dir(split) / self.SUMMARY_JSON
        return json.loads(path.read_text()) if path.is_file() else None

    def eval_summaries(self) -> list[Path]:
        """Every ``eval/<split>/summary.json``, sorted."""
        return sorted((self.path / self.EVAL_DIR).glob(f"*/{self.SUMMARY_JSON}"))
