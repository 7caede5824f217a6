"""One declarative vocabulary (issue 16): argparse, the config validator and the generated config
reference all list exactly the values of ``focusnet.vocab`` / the config's declared rules; the
older precision and device spellings still work, with a warning naming the new one."""
from __future__ import annotations

import argparse
import importlib.util
import pickle
import re
import sys
from pathlib import Path

import pytest

from focusnet.cli import build_parser
from focusnet.compare.profiles import PROFILES
from focusnet.data.splits import SPLIT_NAMES
from focusnet.engine.config import AugmentConfig, DataConfig, TrainConfig, load_config, settings
from focusnet.errors import FocusNetError
from focusnet.vocab import BACKENDS, BENCHMARK_PRECISIONS, DEVICES, FORMATS, MASK_RULES, PRECISIONS, Vocabulary, show

REPO = Path(__file__).resolve().parents[1]
SECTIONS = {"": TrainConfig, "data.": DataConfig, "augment.": AugmentConfig}
CLOSED = [(prefix, name, s) for prefix, cls in SECTIONS.items() for name, s in settings(cls, prefix).items() if s.choices]


def _subparser(command: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _flag(command: str, flag: str) -> argparse.Action:
    return next(a for a in _subparser(command)._actions if flag in a.option_strings)


def _make(prefix: str, name: str, value: object) -> object:
    if prefix == "data.":
        return TrainConfig(data={name: value})
    if prefix == "augment.":
        return TrainConfig(augment={name: value})
    return TrainConfig(**{name: value})


def _listed(message: str) -> list[str]:
    """The values after "choose one of: " in an error message or a docs cell."""
    found = re.search(r"[Cc]hoose one of: (.*?)(?: \(see [^)]*\))?(?: \|.*)?$", message)
    assert found, message
    return found.group(1).split(", ")


# ------------------------------------------------------------------------- one definition
def test_the_shared_vocabularies_are_defined_once_and_imported_everywhere() -> None:
    from focusnet.data import cache, readers
    from focusnet.data.cache import build
    from focusnet.engine import benchmark, config, scoring

    assert scoring.MASK_RULES is readers.MASK_RULES is build.MASK_RULES is config.MASK_RULES is MASK_RULES
    assert readers.FORMATS is cache.FORMATS is config.FORMATS is FORMATS
    assert config.PRECISIONS is PRECISIONS and config.ACCELERATORS is DEVICES
    assert benchmark.PRECISIONS is BENCHMARK_PRECISIONS and benchmark.BACKENDS is BACKENDS
    assert MASK_RULES == ("binary", "nonzero", "half")
    assert PRECISIONS == ("32-true", "bf16-mixed", "16-mixed") and BENCHMARK_PRECISIONS == ("32-true", "bf16-mixed")
    assert DEVICES == ("cpu", "cuda", "mps", "auto")


# ------------------------------------------------------------------------------- argparse
@pytest.mark.parametrize(
    ("command", "flag", "vocabulary"),
    [
        ("train", "--precision", PRECISIONS),
        ("train", "--accelerator", DEVICES),
        ("benchmark", "--precision", BENCHMARK_PRECISIONS),
        ("score", "--mask-rule", MASK_RULES),
        ("prepare", "--mask-rule", MASK_RULES),
        ("prepare", "--format", FORMATS),
        ("predict", "--backend", BACKENDS),
        ("evaluate", "--split", SPLIT_NAMES),
        ("compare", "--profile", tuple(PROFILES)),
    ],
)
def test_argparse_choices_are_the_vocabulary(command: str, flag: str, vocabulary: Vocabulary) -> None:
    assert tuple(_flag(command, flag).choices) == tuple(vocabulary)


def test_prepare_takes_the_configs_channels_and_normalizations() -> None:
    for key, flag in (("channels", "--channels"), ("normalization", "--normalization")):
        assert tuple(_flag("prepare", flag).choices) == tuple(settings(TrainConfig)[key].choices)


def test_train_flags_carry_the_configs_help_text() -> None:
    for key in ("precision", "accelerator", "devices", "num_nodes", "seed"):
        action = _flag("train", "--" + key.replace("_", "-"))
        words = settings(TrainConfig)[key].help.replace("``", "").rstrip(".")
        assert action.help.startswith(words), (key, action.help)


# ---------------------------------------------------------------------------- the validator
@pytest.mark.parametrize(("prefix", "name", "setting"), CLOSED, ids=[s.key for _, _, s in CLOSED])
def test_the_validator_lists_and_accepts_exactly_the_vocabulary(prefix: str, name: str, setting) -> None:
    with pytest.raises(FocusNetError) as info:
        _make(prefix, name, "no-such-value")
    message = str(info.value)
    assert message.startswith(f"{setting.key}: invalid value 'no-such-value'; choose one of: "), message
    assert message.endswith("(see docs/reference/config.md)"), message
    assert _listed(message) == [show(v) for v in setting.choices]
    for value in setting.choices:
        config = _make(prefix, name, value)
        section = getattr(config, prefix[:-1]) if prefix else config
        assert getattr(section, name) == value


# ------------------------------------------------------------------------------ the docs
def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs_vocab", REPO / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def test_the_config_reference_lists_exactly_the_vocabulary() -> None:
    generated = _gen_docs().config_reference()
    committed = (REPO / "docs" / "reference" / "config.md").read_text()
    for text in (generated, committed):
        rows = {line.split(" | ")[0].strip("| `"): line for line in text.splitlines() if line.startswith("| `")}
        for _, _, setting in CLOSED:
            allowed = rows[setting.key].split(" | ")[2]
            assert _listed(allowed) == [show(v) for v in setting.choices], (setting.key, allowed)
        for prefix, cls in SECTIONS.items():  # every declared field has its row, and its rule's words
            for s in settings(cls, prefix).values():
                assert s.key in rows, s.key
                if not isinstance(s.default, (DataConfig, AugmentConfig)):
                    assert rows[s.key].split(" | ")[2] == s.rule.allowed, s.key


# ---------------------------------------------------------------------- the older spellings
@pytest.mark.parametrize(("old", "new"), [("fp32", "32-true"), ("bf16", "bf16-mixed"), ("32", "32-true"), (32, "32-true")])
def test_an_old_precision_spelling_still_works_and_warns(old: str, new: str) -> None:
    with pytest.warns(FutureWarning, match=f"precision {old!r} is deprecated; write '{new}'"):
        assert TrainConfig(precision=old).precision == new
    with pytest.warns(FutureWarning, match=f"'{new}'"):
        assert TrainConfig.from_dict({"precision": old}).to_dict()["precision"] == new


def test_an_old_spelling_on_the_command_line_still_parses_and_warns(tmp_path: Path) -> None:
    parser = build_parser()
    with pytest.warns(FutureWarning, match="--precision 'bf16' is deprecated; write 'bf16-mixed'"):
        args = parser.parse_args(["train", "c.yaml", "--precision", "bf16"])
    assert args.precision == "bf16-mixed"
    with pytest.warns(FutureWarning, match="--accelerator 'gpu' is deprecated; write 'cuda'"):
        assert parser.parse_args(["train", "c.yaml", "--accelerator", "gpu"]).accelerator == "cuda"
    with pytest.warns(FutureWarning, match="--precision 'fp32' is deprecated; write '32-true'"):
        assert parser.parse_args(["benchmark", "--precision", "fp32"]).precision == "32-true"
    for command in (["benchmark"], ["predict", "m", "x.png", "out"], ["evaluate", "run"]):
        with pytest.warns(FutureWarning, match="--device 'gpu' is deprecated; write 'cuda'"):
            assert parser.parse_args([*command, "--device", "gpu"]).device == "cuda"
    assert parser.parse_args(["benchmark"]).precision == "32-true"
    with pytest.raises(SystemExit):  # benchmark runs no float16
        parser.parse_args(["benchmark", "--precision", "16-mixed"])
    config = tmp_path / "c.yaml"
    config.write_text("precision: '32'\naccelerator: gpu\n")
    with pytest.warns(FutureWarning):
        loaded = load_config(config)
    assert (loaded.precision, loaded.accelerator) == ("32-true", "cuda")
    with pytest.warns(FutureWarning, match="precision 32 is deprecated"):  # YAML reads precision=32 as a number
        assert load_config(config, ["precision=32", "accelerator=cpu"]).precision == "32-true"


def test_the_benchmark_takes_the_old_precision_with_a_warning() -> None:
    from focusnet.engine.benchmark import run_benchmark

    # the spelling is resolved before any worker starts: repeats=0 stops it right after
    with pytest.warns(FutureWarning, match="'32-true'"), pytest.raises(FocusNetError, match="repeats >= 1"):
        run_benchmark([("unet", None)], precision="fp32", repeats=0)
    with pytest.raises(FocusNetError, match=r"unknown precision '16-mixed'; choose one of: 32-true, bf16-mixed$"):
        run_benchmark([("unet", None)], precision="16-mixed")


# ----------------------------------------------------------------------------- Vocabulary
def test_vocabulary_is_a_strict_tuple_that_pickles() -> None:
    colours = Vocabulary("colour", ("red", 1), aliases={"rouge": "red"})
    assert colours == ("red", 1) and pickle.loads(pickle.dumps(colours)).aliases == {"rouge": "red"}
    with pytest.raises(FocusNetError, match=r"^unknown colour True; choose one of: red, 1$"):
        colours.normalize(True)  # True == 1, but a boolean is not the number
    with pytest.raises(ValueError, match="not a value"):
        Vocabulary("colour", ("red",), aliases={"vert": "green"})


def test_registry_accessors_give_the_constructor_and_its_signature() -> None:
    from focusnet.models.registry import model_constructor, model_signature

    assert model_constructor("focusnetpp").__module__ == "focusnet.models.focusnetpp"
    assert {"preset", "in_channels"} <= set(model_signature("focusnetpp").parameters)
    with pytest.raises(FocusNetError, match="unknown model 'unet3'"):
        model_signature("unet3")
