"""The command line reads the same everywhere: every option has help, sub-command groups are
labelled alike, positional names follow one convention."""

from __future__ import annotations

import argparse

from twin.cli import build_parser


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def test_every_option_and_argument_has_help() -> None:
    """No option or positional argument of any command is without a help text (a hidden one is
    marked argparse.SUPPRESS on purpose)."""
    missing = []
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help:
                missing.append(
                    f"twin {' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
                )
    assert not missing, "options without help:\n" + "\n".join(missing)


def test_subcommand_groups_are_labelled_alike() -> None:
    """The top level lists COMMAND; every group below it lists SUBCOMMAND."""
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert action.metavar == ("COMMAND" if not path else "SUBCOMMAND"), path


def test_positional_arguments_are_named_in_capitals_and_scenes_are_src() -> None:
    """Positional arguments show as capitals (SRC, MODEL, STORE...), and a scene source is SRC."""
    bad = []
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            if action.option_strings or isinstance(action, argparse._SubParsersAction):
                continue
            shown = action.metavar or action.dest
            if isinstance(shown, str) and not shown.replace("-", "_").replace(" ", "").isupper():
                bad.append(f"twin {' '.join(path)}: {shown}")
    assert not bad, "positional names not in capitals:\n" + "\n".join(bad)
