"""The wheel, installed outside the checkout, runs the twin on its embedded defaults."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the checkout with the wheel installed; its
    dependencies are this environment's (a .pth line), so nothing is downloaded but the
    wheel's build requirements."""
    tmp = tmp_path_factory.mktemp("wheel")
    # built from a copy of the sources: setuptools' build/ folder in the checkout may hold
    # files of an older layout, which would end up in the wheel
    src = tmp / "src"
    skip = shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__",
        ".hypothesis", ".pytest_cache", ".ruff_cache", "bench",
    )  # fmt: skip
    shutil.copytree(ROOT, src, symlinks=True, ignore=skip)
    wheel_cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist")]
    subprocess.run([*wheel_cmd, str(src)], check=True, timeout=600)
    (wheel,) = (tmp / "dist").glob("twin-*.whl")
    import zipfile

    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    # no generic top-level name that another project could also install
    assert tops == {"twin", "twin_api", "twin-0.1.0.dist-info"}, tops
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # this environment's packages after the fresh one's (a plain path: its .pth files, such as
    # the checkout's editable install, are not read)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    (venv / "bin" / "twin").write_text(
        f"#!{py}\nimport sys\nfrom twin.cli import main\nsys.exit(main())\n"
    )
    (venv / "bin" / "twin").chmod(0o755)
    return venv


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_carries_the_demo_fab_and_notebooks(installed: Path, tmp_path: Path) -> None:
    """Imported from the fresh environment (not the checkout), the package finds its shipped
    scene and notebooks, and `twin scene info demo-fab` works from an unrelated folder."""
    py = installed / "bin" / "python"
    probe = subprocess.run(
        [
            py,
            "-c",
            "import json, twin; from twin.notebook_commands import notebooks_dir;"
            "from twin.scene.load import builtin_scene;"
            "print(json.dumps([twin.__file__, str(builtin_scene('demo-fab')), str(notebooks_dir())]))",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    where, scene, notebooks = json.loads(probe.stdout)
    assert str(installed) in where and str(ROOT) not in where
    assert str(installed) in scene and str(installed) in notebooks
    info = subprocess.run(
        [installed / "bin" / "twin", "scene", "info", "demo-fab"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert info.returncode == 0, info.stderr
    assert "tools               30" in info.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_twin_up_from_the_wheel_answers_health(installed: Path, tmp_path: Path) -> None:
    """`twin up` from the installed wheel, in an unrelated folder, serves /health."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            installed / "bin" / "twin",
            "up",
            "--port",
            str(port),
            "--no-physics",
            "--store",
            str(tmp_path / "events.db"),
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(1)
        assert body is not None, (
            proc.poll(),
            proc.stdout.read() if proc.poll() is not None else "",
        )
        assert body.get("status") == "up", body
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
