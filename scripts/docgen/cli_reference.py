"""``docs/reference/cli.md``: every ``focusnet`` command and option, from
:func:`focusnet.cli.build_parser` (a new subcommand appears as soon as it is registered)."""
from __future__ import annotations

import argparse

from .common import GENERATED, anchor, md_cell


def _usage(prog: str, parser: argparse.ArgumentParser) -> str:
    parts = [prog]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:
            if isinstance(action, argparse._SubParsersAction):
                parts.append("COMMAND ...")
                continue
            name = action.metavar or action.dest.upper()
            parts.append({"?": f"[{name}]", "*": f"[{name} ...]", "+": f"{name} [{name} ...]"}.get(action.nargs, name))
            continue
        boolean = isinstance(action, argparse.BooleanOptionalAction)
        flag = action.option_strings[-1] if boolean else action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            flag = "--[no-]" + action.option_strings[0][2:]
        if action.nargs == 0:
            text = flag
        else:
            text = f"{flag} {_metavar(action)}"
        parts.append(text if action.required else f"[{text}]")
    return " ".join(parts)


def _metavar(action: argparse.Action) -> str:
    if action.metavar:
        return str(action.metavar)
    if action.choices:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest.upper()


def _default(action: argparse.Action) -> str:
    if action.required or action.default in (None, argparse.SUPPRESS) or action.nargs == 0 and action.default is False:
        return ""
    if isinstance(action, argparse.BooleanOptionalAction):
        return "yes" if action.default else "no"
    if isinstance(action.default, list) and not action.default:
        return ""
    return f"`{action.default}`"


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | default | description |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            flags = ", ".join(action.option_strings)
            name = f"`{flags}`" if action.nargs == 0 else f"`{flags} {_metavar(action)}`"
        else:
            name = f"`{action.metavar or action.dest}`"
            if action.nargs in ("?", "*"):
                name += " (optional)"
        description = action.help or ""
        if action.choices and action.nargs != 0:
            description += f" One of: {', '.join(f'`{c}`' for c in action.choices)}."
        if action.required and action.option_strings:
            description = "**required.** " + description
        rows.append(f"| {name} | {_default(action)} | {md_cell(description.strip())} |")
    return rows


def cli_reference() -> str:
    """``docs/reference/cli.md``: the parser of :mod:`focusnet.cli`, command by command."""
    from focusnet.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {ca.dest: ca.help for ca in sub._choices_actions}
    lines = [
        "# Command-line reference",
        "",
        GENERATED,
        "",
        f"{parser.description} Every command exits with code 2 and one line `focusnet: error: ...` when its "
        "input is wrong (the line names the file or key, the fix and, where one exists, the documentation "
        "page); `focusnet --debug COMMAND ...` shows the traceback instead. `focusnet COMMAND --help` prints "
        "the same information as this page.",
        "",
        "```text",
        _usage("focusnet", parser),
        "```",
        "",
        *_argument_rows(parser),
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for name in sub.choices:
        lines.append(f"| [`{name}`](#{anchor('focusnet ' + name)}) | {md_cell(helps.get(name, ''))} |")
    for name, sp in sub.choices.items():
        lines += ["", f"## focusnet {name}", ""]
        summary = helps.get(name) or ""
        lines += [summary[:1].upper() + summary[1:] + ("." if summary and not summary.endswith(".") else ""), ""]
        if sp.description:
            lines += [sp.description, ""]
        lines += ["```text", _usage(f"focusnet {name}", sp), "```", ""]
        lines += _argument_rows(sp)
    return "\n".join(lines) + "\n"
