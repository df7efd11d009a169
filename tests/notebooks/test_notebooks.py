"""The notebooks run top to bottom at reduced size; their 3D view renders offline in Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# matplotlib figures and camera images each notebook shows (01: without the SMAT2022 plan)
MIN_PICTURES = {"01-explore-scene": 4, "02-live-twin": 2, "03-what-if": 1, "04-forecast": 2}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_the_notebooks_are_committed_without_outputs() -> None:
    """The four notebooks exist, are valid nbformat 4, and carry no outputs or counts."""
    assert [p.name for p in NOTEBOOKS] == [
        "01-explore-scene.ipynb",
        "02-live-twin.ipynb",
        "03-what-if.ipynb",
        "04-forecast.ipynb",
    ]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), path
        assert any("assert " in c.source for c in code), f"{path.name} asserts nothing"
        assert str(ROOT) not in path.read_text(encoding="utf-8")  # no path of this machine


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cell of the notebook runs without error at reduced size (its asserts hold)."""
    with contextlib.ExitStack() as stack:
        _run_notebook(path, tmp_path, monkeypatch, stack)


@contextlib.contextmanager
def running_twin(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`twin up` (the demo fab with its emulator feed) on a free port, fed at 600x so that a
    fab hour takes seconds; yields its url and an admin token."""
    from tests.services.conftest import free_port
    from tests.services.test_cli import start, wait_healthy

    port, token = free_port(), "notebook-" + "0123456789abcdef" * 2
    env = {"TWIN_TOKENS": json.dumps({token: ["admin"]})}
    proc = start(["up", "--port", str(port), "--speed", "600", "--no-physics",
                  "--store", str(tmp_path / "twin-up.db")], env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, token=token)
        yield {"url": url, "token": token}
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _run_notebook(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack) -> None:
    from nbclient import NotebookClient

    # the kernel spec runs "python": make it this venv's python, and pass the size parameter
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TWIN_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("TWIN_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.delenv("TWIN_RAY_ADDRESS", raising=False)
    if path.stem.startswith("02"):  # it connects to a running twin through twin.client
        twin = stack.enter_context(running_twin(tmp_path))
        monkeypatch.setenv("TWIN_URL", twin["url"])
        monkeypatch.setenv("TWIN_TOKEN", twin["token"])
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=200,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    shown = [o["data"] for c in nb.cells for o in c.get("outputs", []) if "data" in o]
    pictures = sum("image/png" in d for d in shown)
    assert pictures >= MIN_PICTURES[path.stem], f"{path.stem} shows {pictures} pictures"
    if path.stem.startswith("01"):  # the interactive 3D view, with plotly.js for offline use
        assert any("application/vnd.plotly.v1+json" in d or "text/html" in d for d in shown)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_3d_view_renders_offline_in_chromium(tmp_path: Path) -> None:
    """The 3D view page needs no network: headless Chromium (networking off) draws the boxes."""
    from PIL import Image

    from twin.notebook import family_colours, scene_figure, write_html
    from twin.scene.load import load_scene

    scene = load_scene(ROOT / "scenes" / "demo-fab")
    html = write_html(scene_figure(scene), tmp_path / "view.html")
    text = html.read_text(encoding="utf-8")
    assert '<script src="http' not in text and "<script src='http" not in text  # plotly inlined
    png = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--enable-unsafe-swiftshader",  # software WebGL, which plotly's 3D view needs
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000", f"--screenshot={png}", "--window-size=1200,800",
            html.as_uri(),
        ],
        check=True, capture_output=True, timeout=100,
    )  # fmt: skip
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=float)
    assert pixels.shape == (800, 1200, 3)
    assert pixels.std() > 10, "the page is blank"
    # the WebGL scene (left of the legend) holds the family colours: the boxes were drawn
    plot = pixels[60:, :1000].reshape(-1, 3)
    colours = [
        tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in family_colours(scene).values()
    ]
    near = np.zeros(len(plot), dtype=bool)
    for rgb in colours:
        near |= np.abs(plot - np.array(rgb)).max(axis=1) < 40
    assert near.mean() > 0.02, f"only {near.mean():.1%} of the 3D view shows tool colours"
