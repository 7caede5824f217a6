"""RunDir, the run folder's one owner: the layout train writes, what evaluate/compare/load_model read
back, the prepared cache recorded at training time (prepared once per command), and run folders
without that record (written before it existed) still loading as before."""
from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch

from focusnet.engine import rundir as rundir_mod
from focusnet.engine.config import TrainConfig
from focusnet.engine.rundir import CacheRecord, RunDir
from focusnet.errors import FocusNetError
from tests.helpers import TINY_FOCUSNETPP, tiny_train_config

TINY = TINY_FOCUSNETPP
ROOT = Path(__file__).resolve().parents[2]


def _config(source: Path, work: Path, **changes) -> TrainConfig:
    return tiny_train_config(source, work / "run", work / "prepared", **changes)


class _CountPrepare:
    """Counts the calls of focusnet.data.cache.prepare made through the run folder's code."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = rundir_mod.prepare

        def counting(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(rundir_mod, "prepare", counting)


@pytest.fixture(scope="module")
def trained(lesions, tmp_path_factory) -> dict:
    """A 1-epoch tiny run on 12 synthetic lesions, and how often training called prepare."""
    from focusnet.engine.train import train

    source = lesions
    work = tmp_path_factory.mktemp("work")
    with pytest.MonkeyPatch.context() as mp:
        counter = _CountPrepare(mp)
        run = train(_config(source, work))
    return {"run": run, "prepares": counter.calls, "source": source, "work": work}


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval"))
    return copy


def _without_cache_record(run: Path) -> None:
    """The environment.json the release before the record wrote: the same, without its "data" entry."""
    path = run / RunDir.ENVIRONMENT_JSON
    env = json.loads(path.read_text())
    env.pop(RunDir.DATA_KEY)
    for entry in env.get("resumes", []):
        entry.pop(RunDir.DATA_KEY, None)
    path.write_text(json.dumps(env))


# -------------------------------------------------------------------------- what train writes
def test_train_writes_the_layout_and_prepares_once(trained):
    run = RunDir(trained["run"])
    assert trained["prepares"] == 1  # one prepare per command (it listed the source three times before)
    for name in (RunDir.CONFIG_JSON, RunDir.CONFIG_YAML, RunDir.ENVIRONMENT_JSON, RunDir.SPLIT_JSON, RunDir.SUMMARY_JSON,
                 RunDir.BEST_CKPT, RunDir.LAST_CKPT, RunDir.PROGRESS_JSON, RunDir.METRICS_CSV, RunDir.TRAIN_LOG,
                 RunDir.CURVES_PNG, RunDir.BEST_WEIGHTS):
        assert run.file(name).is_file(), name
    assert not run.file(RunDir.EVAL_DIR).exists()


def test_run_folder_reads_back_through_rundir(trained):
    from focusnet.data.cache import MANIFEST

    run = RunDir(trained["run"])
    config = run.read_config()
    assert config.model_kwargs == TINY and config.size == 32 and config.out_dir == str(run.path)
    split = run.read_split()
    assert sorted(split) == ["test", "train", "val"] and all(split.values())

    record = run.cache_record()
    assert isinstance(record, CacheRecord)
    assert (Path(record.cache) / MANIFEST).is_file()
    assert Path(record.cache).parent == trained["work"] / "prepared"
    assert record.format == "folder" and Path(record.source) == trained["source"].resolve()
    assert record.count == 12 and record.splits == {k: len(v) for k, v in split.items()}

    assert run.checkpoint_epoch(RunDir.BEST_CKPT) == 0 and run.checkpoint_epoch(RunDir.LAST_CKPT) == 0
    model, epoch = run.load_checkpoint(RunDir.BEST_CKPT)
    assert epoch == 0 and not model.training
    weights, _ = run.read_checkpoint(RunDir.BEST_CKPT)
    assert weights.keys() == model.state_dict().keys()
    assert run.weights_file() == run.best_weights and run.interrupted_note() is None

    summary = run.read_summary()
    assert summary["count"] == len(split["test"]) == len(summary["per_image"])
    assert run.read_eval_summary("test") is None and run.eval_summaries() == []


def test_readers_use_the_recorded_cache_without_preparing(trained, tmp_path, monkeypatch):
    from focusnet.engine.evaluate import evaluate_run, load_eval_data
    from focusnet.weights import load_model

    run = RunDir(_copy(trained["run"], tmp_path))
    counter = _CountPrepare(monkeypatch)
    cache = run.prepared_cache()
    assert cache.path == Path(run.cache_record().cache)
    data = load_eval_data(run.path, "test")
    assert data.ids == run.read_split()["test"]
    summary = evaluate_run(run.path, split="test", original_resolution=False)
    assert summary["data"].startswith(f"cache {cache.path}")
    assert run.read_eval_summary("test") == json.loads(json.dumps(summary))
    assert run.eval_summaries() == [run.eval_dir("test") / RunDir.SUMMARY_JSON]
    assert load_model(run.path).focusnet_config.model == "focusnetpp"
    assert counter.calls == 0  # the cache is not guessed, nor prepared again


# ----------------------------------------------------------------- run folders of the last release
def test_folder_without_the_cache_record_falls_back_to_preparing(trained, tmp_path, monkeypatch):
    from focusnet.engine.evaluate import evaluate_run

    recorded = RunDir(trained["run"]).cache_record()
    run = RunDir(_copy(trained["run"], tmp_path))
    _without_cache_record(run.path)
    assert run.cache_record() is None
    counter = _CountPrepare(monkeypatch)
    assert run.prepared_cache().path == Path(recorded.cache)  # prepare finds the same cache up to date
    assert counter.calls == 1
    old = evaluate_run(run.path, split="test", original_resolution=False)
    assert counter.calls == 2  # as before the record: evaluate prepares (a no-op) once
    new_run = RunDir(_copy(trained["run"], tmp_path / "new"))
    new = evaluate_run(new_run.path, split="test", original_resolution=False)
    assert counter.calls == 2
    assert old["model_resolution"]["per_image"] == new["model_resolution"]["per_image"]


def test_recorded_cache_that_is_gone_is_prepared_again(trained, tmp_path, monkeypatch):
    run = RunDir(_copy(trained["run"], tmp_path))
    env = json.loads(run.file(RunDir.ENVIRONMENT_JSON).read_text())
    env[RunDir.DATA_KEY]["cache"] = str(tmp_path / "deleted-cache")
    run.file(RunDir.ENVIRONMENT_JSON).write_text(json.dumps(env))
    counter = _CountPrepare(monkeypatch)
    assert run.prepared_cache().path == Path(RunDir(trained["run"]).cache_record().cache)
    assert counter.calls == 1


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # a copy of the run: Lightning notices the move
def test_resume_uses_the_recorded_cache_and_records_it_again(trained, tmp_path, monkeypatch):
    from focusnet.engine.train import resume

    run = RunDir(_copy(trained["run"], tmp_path))
    (run.path / RunDir.SUMMARY_JSON).unlink()
    counter = _CountPrepare(monkeypatch)
    resume(run.path, ["epochs=2"])
    assert counter.calls == 0
    env = run.read_environment()
    assert len(env["resumes"]) == 1 and env["resumes"][0][RunDir.DATA_KEY] == env[RunDir.DATA_KEY]
    assert run.checkpoint_epoch(RunDir.LAST_CKPT) == 1 and run.has_summary()


def test_hand_made_folder_of_the_last_release_layout(trained, tmp_path):
    """config.json, split.json, environment.json without "data", best.ckpt: evaluate reads it."""
    from focusnet.engine.evaluate import evaluate_checkpoint

    source = RunDir(trained["run"])
    run = RunDir(tmp_path / "old")
    run.path.mkdir()
    for name in (RunDir.CONFIG_JSON, RunDir.SPLIT_JSON, RunDir.ENVIRONMENT_JSON, RunDir.BEST_CKPT):
        shutil.copy(source.file(name), run.file(name))
    _without_cache_record(run.path)
    assert run.weights_file() == run.file(RunDir.BEST_CKPT)
    note = run.interrupted_note()
    assert note is not None and "no epoch finished" in note and "start a new run" in note
    result = evaluate_checkpoint(run.path, split="test")
    assert result["per_image"] == source.read_summary()["per_image"]


# ---------------------------------------------------------------------------------- unit level
def test_create_refuses_a_used_folder_and_keeps_what_is_allowed(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.create().path.is_dir()
    (run.path / "data").mkdir()
    RunDir(run.path).create(keep=[run.path / "data"])  # allowed: nothing else there
    (run.path / "notes.txt").write_text("x")
    with pytest.raises(FocusNetError, match="not empty .*notes.txt.*never overwritten"):
        RunDir(run.path).create(keep=[run.path / "data"])
    (tmp_path / "file").write_text("")
    with pytest.raises(FocusNetError, match="not a folder"):
        RunDir(tmp_path / "file").check_unused()
    assert RunDir.default("unet").path.parent == Path("runs")


def test_environment_records_the_latest_cache(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_environment() == {} and run.cache_record() is None
    first = CacheRecord("/c/one", "folder", "/data", 4, {"train": 2, "val": 1, "test": 1})
    run.record_environment({"resumed": False}, cache=first)
    assert run.cache_record() == first
    run.record_environment({"resumed": True})  # a resume that recorded no cache keeps the earlier one
    assert run.cache_record() == first
    second = CacheRecord("/c/two", "folder", "/data", 4, {"train": 2, "val": 1, "test": 1})
    run.record_environment({"resumed": True}, cache=second)
    env = run.read_environment()
    assert env["resumed"] is False and [r["resumed"] for r in env["resumes"]] == [True, True]
    assert run.cache_record() == second
    run.file(RunDir.ENVIRONMENT_JSON).write_text("{not json")
    assert run.cache_record() is None
    assert CacheRecord.from_dict({"cache": 3}) is None and CacheRecord.from_dict(None) is None


def test_config_split_and_checkpoint_errors(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(FocusNetError, match="config.json: not found; is .* a run folder"):
        run.read_config()
    with pytest.raises(FocusNetError, match="split.json: not found"):
        run.read_split()
    run.write_split({"train": ["a"], "val": []})
    with pytest.raises(FocusNetError, match="expected the keys train, val, test"):
        run.read_split()
    config = TrainConfig(model="unet", model_kwargs={"base_width": 4}, size=32)
    run.write_config(config)
    assert run.read_config().to_dict() == config.to_dict() and run.file(RunDir.CONFIG_YAML).read_text().startswith("model: unet")
    # a file of the run given for the run names the folder to give instead; another file says what is expected
    with pytest.raises(FocusNetError, match=f"config.yaml: a file, not a run folder .*; give its folder, {tmp_path}$"):
        RunDir(run.file(RunDir.CONFIG_YAML)).read_config()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(FocusNetError, match="notes.txt: a file, not a run folder .*; give a run folder$"):
        RunDir(tmp_path / "other" / "notes.txt").read_config()
    run.file(RunDir.BEST_CKPT).write_bytes(b"not a checkpoint")
    assert run.checkpoint_epoch() is None
    with pytest.raises(FocusNetError, match="not a focusnet checkpoint or cannot be read safely"):
        run.read_checkpoint()
    with pytest.raises(FocusNetError, match="last.ckpt: checkpoint not found"):
        run.load_checkpoint(RunDir.LAST_CKPT)
    torch.save({"state_dict": {"model.nothing": torch.zeros(1)}, "epoch": 3}, run.file(RunDir.LAST_CKPT))
    assert run.checkpoint_epoch(RunDir.LAST_CKPT) == 3
    with pytest.raises(FocusNetError, match="weights do not fit the model in"):
        run.load_checkpoint(RunDir.LAST_CKPT)


def test_interrupted_note_counts_the_finished_epochs(tmp_path):
    run = RunDir(tmp_path)
    assert run.interrupted_note() is None  # not a run folder
    run.write_config(TrainConfig())
    run.file(RunDir.PROGRESS_JSON).write_text(json.dumps({"epochs_done": 2, "max_epochs": 5}))
    run.file(RunDir.LAST_CKPT).write_bytes(b"")
    note = run.interrupted_note()
    assert "2 of 5 epochs finished" in note and "focusnet train --resume" in note and RunDir.BEST_WEIGHTS in note
    run.best_weights.parent.mkdir()
    run.best_weights.write_bytes(b"")
    assert run.interrupted_note() is None


def test_readers_import_nothing_from_train():
    """evaluate, predict, load_model and the run folder read through RunDir, not engine.train;
    compare imports it for its training step only."""
    def imported(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        return names

    readers = ["focusnet/engine/evaluate.py", "focusnet/engine/predict.py", "focusnet/engine/backends.py",
               "focusnet/engine/rundir.py",
               *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "focusnet/weights").glob("*.py"))]
    assert len(readers) > 4
    for rel in readers:
        assert "focusnet.engine.train" not in imported(ROOT / rel), rel
    text = (ROOT / "focusnet/compare/runner.py").read_text()
    assert "_checkpoint_epoch" not in text and "tr.read_split" not in text and "tr.SUMMARY_JSON" not in text
