"""`twin notebook`: open the project's notebooks in JupyterLab (`notebook` and `lab` extras)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from twin.errors import TwinError

NOTEBOOKS = (
    "01-explore-scene.ipynb",
    "02-live-twin.ipynb",
    "03-what-if.ipynb",
    "04-forecast.ipynb",
)


def register(sub: Any) -> None:
    nb = sub.add_parser(
        "notebook",
        help="open the exploration and what-if notebooks in JupyterLab",
        description="Start JupyterLab on the project's notebooks/ folder (01 explore a scene, "
        "02 the live twin, 03 what-if, 04 calibrate, forecast and backtest). Needs the 'notebook' and 'lab' extras: "
        "pip install 'twin[notebook,lab]'.",
    )
    nb.add_argument("--print", action="store_true", help="print the command instead of running it")
    nb.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    nb.add_argument("--port", type=int, help="port for JupyterLab (default: its own, 8888)")
    nb.add_argument(
        "lab_args",
        nargs=argparse.REMAINDER,
        metavar="-- JUPYTERLAB_ARGS",
        help="anything after -- is passed on to JupyterLab (e.g. -- --ip=0.0.0.0)",
    )
    nb.set_defaults(func=_notebook)


def notebooks_dir() -> Path:
    """The notebooks folder of the checkout this package runs from."""
    from twin.notebook import project_root

    try:
        folder = project_root(Path(__file__).parent) / "notebooks"
    except FileNotFoundError:
        folder = Path(__file__).resolve().parent / "notebooks"  # installed: package data
    missing = [n for n in NOTEBOOKS if not (folder / n).is_file()]
    if missing:
        raise TwinError(
            f"notebooks not found in {folder} (missing {', '.join(missing)}); they ship with "
            "the twin package: reinstall it (pip install --force-reinstall twin)"
        )
    return folder


def lab_command(
    folder: Path,
    *,
    no_browser: bool = False,
    port: int | None = None,
    extra: list[str] | None = None,
    as_root: bool | None = None,
) -> list[str]:
    """The command that opens JupyterLab on ``folder`` with this Python's environment.

    Run as root (usual in a fresh container) JupyterLab refuses to start without
    ``--allow-root``, so it is added then (``as_root``: default, whether this process is root).
    """
    cmd = [sys.executable, "-m", "jupyterlab", str(folder)]
    if no_browser:
        cmd.append("--no-browser")
    if port is not None:
        cmd.append(f"--port={port}")
    extra = [a for a in (extra or []) if a != "--"]
    if as_root is None:
        as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if as_root and "--allow-root" not in extra:
        cmd.append("--allow-root")
    return cmd + extra


def _notebook(args: argparse.Namespace) -> int:
    folder = notebooks_dir()
    cmd = lab_command(folder, no_browser=args.no_browser, port=args.port, extra=args.lab_args)
    if "--allow-root" in cmd and "--allow-root" not in (args.lab_args or []):
        print("twin notebook: running as root, so JupyterLab gets --allow-root", file=sys.stderr)
    if args.print:
        print(shlex.join(cmd))
        for name in NOTEBOOKS:
            print(f"  {folder / name}")
        return 0
    if importlib.util.find_spec("jupyterlab") is None:
        raise TwinError(
            "JupyterLab is not installed in this environment: pip install 'twin[notebook,lab]' "
            f"(then: {shlex.join(cmd)})"
        )
    return subprocess.call(cmd)
