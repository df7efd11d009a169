"""`twin ... | head` ends quietly: a closed stdout is not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TWIN = [sys.executable, "-m", "twin.cli"]


@pytest.mark.parametrize(
    "argv",
    [
        ["scene", "check", "scenes/demo-fab", "--json"],
        ["emulate", "scenes/demo-fab", "--hours", "2", "--out", "-"],
        ["datasets", "list", "--json"],
    ],
    ids=["scene-check", "emulate", "datasets-list"],
)
def test_a_reader_that_goes_away_ends_the_command_quietly(argv: list[str]) -> None:
    """Piped into a reader that takes one line and closes, the command prints no traceback and
    exits with 141 (128 + SIGPIPE) or 0."""
    twin = subprocess.Popen(
        [*TWIN, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert twin.stdout is not None
    first = twin.stdout.readline()
    twin.stdout.close()  # what `head -1` does after its line
    _, err = twin.communicate(timeout=120)
    assert first.strip()
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()[-2000:]
    assert twin.returncode in (0, 141), (twin.returncode, err.decode()[-2000:])
