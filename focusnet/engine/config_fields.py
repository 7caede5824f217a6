"""How a config field is declared: what it accepts (:class:`Rule`) and its help text
(:func:`setting`), listed by :func:`settings`, checked by :func:`validate_fields`.

:mod:`focusnet.engine.config` declares its sections with these; the validator, the ``focusnet
train`` flags and ``docs/reference/config.md`` are generated from the declarations.

Example:
    >>> Rule.at_least(1).check("epochs", 3)
    3
    >>> BOOL.allowed
    'Must be true or false'
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from focusnet.errors import DOCS_CONFIG, FocusNetError
from focusnet.vocab import Vocabulary

__all__ = [
    "BOOL",
    "Rule",
    "Setting",
    "config_error",
    "documented",
    "is_int",
    "is_mapping",
    "section",
    "setting",
    "settings",
    "unknown_key_error",
    "validate_fields",
]


def config_error(message: str) -> FocusNetError:
    """A config error; the message ends with a pointer to the config reference page.

    Example:
        >>> str(config_error("epochs: must be an integer >= 1; got 0"))
        'epochs: must be an integer >= 1; got 0 (see docs/reference/config.md)'
    """
    return FocusNetError(message, see=DOCS_CONFIG)


def unknown_key_error(key: str, known: Iterable[str], section: str = "", context: str = "") -> FocusNetError:
    """The config error for an unknown key: the closest known key when one is close, else every known key.

    Args:
        key: the key as written (without its section).
        known: the keys that are valid where it was written.
        section: the section it was written in (``data``, ``augment``), empty at the top level.
        context: a note after the key, e.g. ``" (in override 'lr_schedul=cosine')"``.

    Example:
        >>> str(unknown_key_error("lr_schedul", ["lr", "lr_schedule", "epochs"]))
        "unknown config key 'lr_schedul'; did you mean 'lr_schedule'? (see docs/reference/config.md)"
        >>> str(unknown_key_error("flip", ["hflip", "vflip"], section="augment")).split("; ")[1]
        "did you mean 'augment.vflip' or 'augment.hflip'? (see docs/reference/config.md)"
    """
    names = sorted(known)
    prefix = f"{section}." if section else ""
    close = difflib.get_close_matches(key, names, n=2, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(repr(prefix + c) for c in close) + "?"
    else:
        hint = f"known keys{' in ' + section if section else ''}: {', '.join(names)}"
    return config_error(f"unknown config key {prefix + key!r}{context}; {hint}")


@dataclass(frozen=True)
class Rule:
    """What one config field accepts: a closed vocabulary, or a test and the words that state it.

    Every field of the config classes declares its rule and help text (:func:`setting`); the
    validator, the ``focusnet train`` flags and ``docs/reference/config.md`` are generated from them.

    Attributes:
        says: the condition in words (``"must be an integer >= 1"``); the error is
            ``"KEY: <says>; got VALUE"``. Unused with a vocabulary.
        test: the condition (None with a vocabulary).
        vocabulary: the allowed values; the error is ``"KEY: invalid value V; choose one of: ..."``
            and a deprecated spelling is replaced by its canonical one (with a warning).
        nullable: ``null`` (None) is allowed too.

    Example:
        >>> from focusnet.engine.config import OPTIMIZERS
        >>> Rule.one_of(OPTIMIZERS).allowed
        'Choose one of: adam, adamw, sgd'
        >>> Rule.at_least(1, nullable=True).check("num_threads", 0)
        Traceback (most recent call last):
        ...
        focusnet.errors.FocusNetError: num_threads: must be an integer >= 1; got 0 (see docs/reference/config.md)
    """

    says: str = ""
    test: Callable[[Any], bool] | None = None
    vocabulary: Vocabulary | None = None
    nullable: bool = False

    @classmethod
    def one_of(cls, values: Sequence[Any], name: str = "value") -> Rule:
        """One of a vocabulary's values (a plain tuple is made a vocabulary without aliases)."""
        return cls(vocabulary=values if isinstance(values, Vocabulary) else Vocabulary(name, values))

    @classmethod
    def at_least(cls, minimum: int, *, nullable: bool = False) -> Rule:
        """An integer (not a boolean) ``>= minimum``."""
        return cls(f"must be an integer >= {minimum}", lambda v: is_int(v) and v >= minimum, nullable=nullable)

    @classmethod
    def number_in(
        cls, low: float, high: float, *, low_open: bool = False, high_open: bool = False, nullable: bool = False
    ) -> Rule:
        """A finite number (not a boolean) in ``[low, high]``, either end open."""

        def test(v: Any) -> bool:
            if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)):
                return False
            x = cast(float, v)  # a Real: the comparisons as Python does them
            return (x > low if low_open else x >= low) and (x < high if high_open else x <= high)

        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        return cls(f"must be a number in {interval}", test, nullable=nullable)

    @classmethod
    def text(cls, says: str, *, nullable: bool = False) -> Rule:
        """A non-empty string."""
        return cls(says, lambda v: isinstance(v, str) and bool(v), nullable=nullable)

    def check(self, key: str, value: Any) -> Any:
        """``value`` (a vocabulary's canonical spelling of it), or :class:`FocusNetError` naming ``key``."""
        if value is None and self.nullable:
            return None
        if self.vocabulary is not None:
            return self.vocabulary.normalize(value, key=key, see=DOCS_CONFIG, stacklevel=4)
        if self.test is not None and not self.test(value):
            raise config_error(f"{key}: {self.says}; got {value!r}")
        return value

    @property
    def allowed(self) -> str:
        """What the field accepts, as one sentence (the *allowed* column of the config reference)."""
        text = f"choose one of: {self.vocabulary.listing()}" if self.vocabulary is not None else self.says
        if self.nullable and "null" not in text:
            text += ", or null"
        return text[:1].upper() + text[1:]


def setting(default: Any = dataclasses.MISSING, *, rule: Rule, help: str, factory: Any = dataclasses.MISSING) -> Any:
    """A config field that carries its :class:`Rule` and help text (``dataclasses.field`` metadata).

    Example:
        >>> setting(3, rule=Rule.one_of((1, 3), "channel count"), help="3 (RGB) or 1 (grey).").metadata["help"]
        '3 (RGB) or 1 (grey).'
    """
    return field(default=default, default_factory=factory, metadata={"rule": rule, "help": help})


@dataclass(frozen=True)
class Setting:
    """One declared config field, as :func:`settings` lists it.

    Attributes:
        key: dotted key (``"data.mask_rule"``).
        default: the default value (a section's default instance for ``data`` and ``augment``).
        rule: what it accepts.
        help: one-paragraph description (reST inline markup).
    """

    key: str
    default: Any
    rule: Rule
    help: str

    @property
    def choices(self) -> Vocabulary | None:
        """The allowed values when they are a closed set (argparse ``choices``)."""
        return self.rule.vocabulary


def settings(cls: type, prefix: str = "") -> dict[str, Setting]:
    """The declared fields of a config class, by name, in declaration order.

    Example:
        >>> from focusnet.engine.config import DataConfig, TrainConfig
        >>> settings(TrainConfig)["precision"].choices
        ('32-true', 'bf16-mixed', '16-mixed')
        >>> settings(DataConfig, "data.")["mask_rule"].key
        'data.mask_rule'
    """
    out = {}
    for f in dataclasses.fields(cls):
        factory = cast(Callable[[], Any], f.default_factory)  # set wherever default is not
        default = f.default if f.default is not dataclasses.MISSING else factory()
        out[f.name] = Setting(prefix + f.name, default, f.metadata["rule"], f.metadata["help"])
    return out


def validate_fields(obj: Any, prefix: str) -> None:
    """Check every declared field of ``obj`` in order, writing back canonical spellings."""
    for f in dataclasses.fields(obj):
        value = f.metadata["rule"].check(prefix + f.name, getattr(obj, f.name))
        if dataclasses.is_dataclass(value):  # a section (data, augment): its own fields too
            cast(Any, value).validate()
        setattr(obj, f.name, value)


def documented(cls: type) -> type:
    """Append the fields' help as the docstring's ``Attributes:`` section (``help(cls)`` shows it)."""
    lines = [f"        {f.name}: {f.metadata['help']}" for f in dataclasses.fields(cls)]
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Attributes:\n" + "\n".join(lines) + "\n    "
    return cls


def is_int(value: Any) -> bool:
    """An integer that is not a boolean.

    Example:
        >>> is_int(3), is_int(True), is_int(3.0)
        (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def section(cls: type, key: str, value: Any) -> Any:
    """Build a nested section (``data``, ``augment``) from a mapping, refusing unknown keys."""
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    if not isinstance(value, dict):
        raise config_error(f"{key}: must be a mapping of settings; got {value!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    for k in value:
        if k not in known:
            raise unknown_key_error(str(k), known, section=key)
    return cls(**value)


#: A boolean (YAML ``true``/``false``).
BOOL = Rule("must be true or false", lambda v: isinstance(v, bool))


def is_mapping(value: Any) -> bool:
    """A mapping with string keys (``model_kwargs``, ``loss``).

    Example:
        >>> is_mapping({"reduction": "batch"}), is_mapping({1: 2})
        (True, False)
    """
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)
