"""`twin notebook` finds the notebooks and builds a JupyterLab command that works."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from twin.errors import TwinError
from twin.notebook_commands import NOTEBOOKS, _notebook, lab_command, notebooks_dir, register

ROOT = Path(__file__).resolve().parents[2]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="twin")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_print_names_the_lab_command_and_each_notebook(capsys: pytest.CaptureFixture) -> None:
    """`twin notebook --print` prints the JupyterLab command on notebooks/ and every notebook."""
    args = _parse(["notebook", "--print", "--no-browser", "--port", "8899"])
    assert _notebook(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert "-m jupyterlab" in out[0] and str(ROOT / "notebooks") in out[0]
    assert "--no-browser --port=8899" in out[0]
    assert [Path(line.strip()).name for line in out[1:]] == list(NOTEBOOKS)
    assert notebooks_dir() == ROOT / "notebooks"


def test_as_root_it_adds_allow_root_once_and_passes_extra_arguments_on() -> None:
    """As root JupyterLab needs --allow-root: it is added (once, also when the user gave it);
    not as root it is not; arguments after -- reach JupyterLab in order."""
    folder = ROOT / "notebooks"
    root = lab_command(folder, extra=["--", "--ip=0.0.0.0", "--ServerApp.token=x"], as_root=True)
    assert root[-3:] == ["--allow-root", "--ip=0.0.0.0", "--ServerApp.token=x"]
    given = lab_command(folder, extra=["--allow-root"], as_root=True)
    assert given.count("--allow-root") == 1
    assert "--allow-root" not in lab_command(folder, as_root=False)
    args = _parse(["notebook", "--print", "--", "--ip=127.0.0.2"])
    assert args.lab_args[-1] == "--ip=127.0.0.2"


HAS_LAB = importlib.util.find_spec("jupyterlab") is not None


@pytest.mark.skipif(not HAS_LAB, reason="JupyterLab (the 'lab' extra) is not installed")
def test_lab_command_runs_in_this_environment() -> None:
    """The command's Python has JupyterLab: `python -m jupyterlab --version` succeeds."""
    cmd = lab_command(ROOT / "notebooks")
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    done = subprocess.run(
        [*cmd[:3], "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip()[0].isdigit()


@pytest.mark.skipif(HAS_LAB, reason="JupyterLab is installed: the command would start it")
def test_without_jupyterlab_it_says_which_extra_to_install() -> None:
    """Without JupyterLab, `twin notebook` fails with the pip extra and the command to run."""
    with pytest.raises(TwinError, match=r"twin\[notebook,lab\].*-m jupyterlab"):
        _notebook(_parse(["notebook"]))
