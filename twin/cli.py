"""The `twin` command line: one sub-command group per concept.

Each group lives next to the code it drives (``twin/<concept>/commands.py``) and exposes
``register(subparsers)``; a registered command sets ``func`` on its parser, which receives the
parsed arguments and returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from twin.errors import TwinError

# Modules that contribute command groups, in the order `twin --help` lists them.
COMMAND_MODULES = [
    "twin.datasets.commands",
    "twin.scene.commands",
    "twin.whatif.commands",
    "twin.live.commands",
    "twin.emulator.commands",
    "twin.live.store_commands",
    "twin.live.schema_commands",
    "twin.calibrate.commands",
    "twin.forecast.commands",
    "twin.physics.commands",
    "twin.scan.commands",
    "twin.service_commands",
    "twin.notebook_commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twin",
        description="A live, physical, queryable digital twin of a semiconductor wafer fab.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # that concept has no commands yet
            raise
        module.register(sub)
    return parser


def _version() -> str:
    from twin import __version__

    return f"twin {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(func(args) or 0)
    except TwinError as exc:
        print(f"twin: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _broken_pipe()


def _broken_pipe() -> int:
    """The reader of stdout went away (`twin ... | head`): end quietly, as `yes | head` does.

    stdout is pointed at /dev/null so that the interpreter's final flush of the rest of the
    buffer raises nothing more.
    """
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
