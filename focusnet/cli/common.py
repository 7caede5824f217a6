"""What several commands share: flags that set a config key (choices and help from the key's
declaration), the allowed values of a config key, and KEY=VALUE overrides after the flags.

Example:
    >>> config_choices("channels")
    (1, 3)
"""
from __future__ import annotations

import argparse

from focusnet.engine.config import TrainConfig, settings

__all__ = ["allow_late_overrides", "config_choices", "config_flag"]


def config_flag(p: argparse.ArgumentParser, flag: str, key: str, **kwargs: object) -> None:
    """A flag that sets config key ``key``: its choices and help come from the key's declaration
    (:func:`focusnet.engine.config.settings`); a deprecated spelling is replaced, with a warning."""
    setting = settings(TrainConfig)[key]
    default = setting.default if not isinstance(setting.default, bool) else str(setting.default).lower()
    text = setting.help.replace("``", "").rstrip(".")
    extra: dict = {"default": None, "help": f"{text} (default: the config's, else {default})"}
    if setting.choices is not None:
        extra.update(choices=setting.choices, type=setting.choices.argparse_type(flag))
    p.add_argument(flag, **{**extra, **kwargs})


def allow_late_overrides(p: argparse.ArgumentParser) -> None:
    """KEY=VALUE overrides may also follow the flags (argparse alone takes positionals only before them)."""
    parse_known = p.parse_known_args

    def parse_known_args(args=None, namespace=None):  # noqa: ANN001, ANN202 - argparse's signature
        ns, extras = parse_known(args, namespace)
        late = [e for e in extras if "=" in e and not e.startswith("-")]
        ns.overrides = list(getattr(ns, "overrides", None) or []) + late
        return ns, [e for e in extras if e not in late]

    p.parse_known_args = parse_known_args  # type: ignore[method-assign]  # wrapped on purpose


def config_choices(key: str) -> tuple:
    """The allowed values of config key ``key`` (``focusnet prepare`` takes the same as the config)."""
    return tuple(settings(TrainConfig)[key].choices or ())
