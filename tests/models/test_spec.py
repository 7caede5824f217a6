"""Model specs (``NAME[:PRESET][[KEY=VALUE;...]]``): the one grammar ``compare`` and ``benchmark`` read."""
from __future__ import annotations

import pytest

from focusnet.compare.specs import parse_model_specs as compare_specs
from focusnet.complexity import count_parameters
from focusnet.errors import FocusNetError
from focusnet.models import create_model
from focusnet.models.spec import ModelSpec, split_model_specs


@pytest.mark.parametrize(
    "text",
    [
        "unet",
        "focusnetpp:lite",
        "focusnetpp:lite[norm=instance]",
        "focusnetpp:lite[enc_blocks=[1,1,1,2,2];norm=instance]",
        "unet[base_width=8;dropout=0.25]",
        "focusnetpp[bottleneck_dropout=0;deep_supervision=true]",
        'unet[name="a;b"]',  # a value with the separator in it is quoted
    ],
)
def test_text_round_trips(text: str) -> None:
    spec = ModelSpec.parse(text)
    assert ModelSpec.parse(spec.text) == spec
    assert hash(ModelSpec.parse(spec.text)) == hash(spec)


def test_values_are_yaml_and_nested_brackets_split_right() -> None:
    spec = ModelSpec.parse(" focusnetpp : lite [ norm = instance ; enc_blocks=[1, 1, 1, 2, 2]; deep_supervision=true ] ")
    assert (spec.model, spec.preset) == ("focusnetpp", "lite")
    assert dict(spec.kwargs) == {"norm": "instance", "enc_blocks": [1, 1, 1, 2, 2], "deep_supervision": True}
    assert spec.text == "focusnetpp:lite[deep_supervision=true;enc_blocks=[1,1,1,2,2];norm=instance]"
    assert [s.strip() for s in split_model_specs("a[x=[1,2]], b:c ,, d")] == ["a[x=[1,2]]", "b:c", "d"]


def test_a_quote_inside_a_plain_value_is_a_character() -> None:
    """As in YAML: ``it's`` is a plain value, and the ``;`` after it still separates (it used to open a
    quote that swallowed the rest of the spec into one value)."""
    spec = ModelSpec.parse("unet[name=it's;base_width=4]")
    assert spec.kwargs == {"name": "it's", "base_width": 4}
    assert ModelSpec.parse(spec.text) == spec
    assert ModelSpec.parse("unet[name= 'a;b' ;base_width=4]").kwargs == {"name": "a;b", "base_width": 4}


def test_create_kwargs_build_the_model() -> None:
    spec = ModelSpec.parse("unet[base_width=4]")
    assert spec.create_kwargs() == {"base_width": 4}
    narrow, default = create_model(spec.model, **spec.create_kwargs()), create_model("unet")
    # a narrower U-Net: parameters fall with the width (quadratically in the convolutions)
    assert count_parameters(narrow) * 16 < count_parameters(default)
    assert ModelSpec.parse("focusnetpp:lite").create_kwargs() == {"preset": "lite"}


@pytest.mark.parametrize(
    ("text", "message"),
    [("un et", "cannot read"), ("a:b:c", "cannot read"), ("unet[base_width]", "is not KEY=VALUE"),
     ("unet[1x=2]", "is not KEY=VALUE"), ("unet[base_width=[1,]]]", "cannot read")],
)
def test_bad_text_names_the_option_and_the_part(text: str, message: str) -> None:
    with pytest.raises(FocusNetError, match=message) as info:
        ModelSpec.parse(text, option="--models")
    assert str(info.value).startswith("--models:")


def test_compare_and_benchmark_read_the_same_spec() -> None:
    from focusnet.bench.specs import parse_model_specs as bench_specs

    text = "focusnetpp:lite[norm=instance], unet[base_width=8]"
    ours, theirs = compare_specs(text), bench_specs(text)
    assert [(s.model, s.preset, dict(s.kwargs)) for s in ours] == [(s.model, s.preset, dict(s.kwargs)) for s in theirs]
    assert [s.text for s in ours] == [s.label for s in theirs]
