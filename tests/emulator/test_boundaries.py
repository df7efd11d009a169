"""Package boundaries: the live twin imports no simulator, and live <-> physics has no cycle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, json, pkgutil, sys
pkg = importlib.import_module({pkg!r})
for m in pkgutil.iter_modules(pkg.__path__):
    importlib.import_module({pkg!r} + "." + m.name)
print(json.dumps(sorted(n for n in sys.modules if n.startswith("twin."))))
"""


def _loaded(pkg: str) -> list[str]:
    """The twin modules loaded after importing ``pkg`` and every module in it (fresh process)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(pkg=pkg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _under(mods: list[str], *pkgs: str) -> list[str]:
    return [m for m in mods if any(m == p or m.startswith(p + ".") for p in pkgs)]


def test_live_imports_no_simulator():
    """Every module of twin.live loads without twin.whatif, twin.physics or twin.emulator."""
    mods = _loaded("twin.live")
    assert "twin.live.sync" in mods and "twin.live.events" in mods  # the probe did import
    assert _under(mods, "twin.whatif", "twin.physics", "twin.emulator") == []


def test_physics_does_not_import_live():
    """twin.physics takes its E10 words from twin.vocabulary, not from twin.live (no cycle)."""
    mods = _loaded("twin.physics")
    assert "twin.physics.world" in mods and "twin.vocabulary" in mods
    assert _under(mods, "twin.live", "twin.emulator") == []


def test_vocabulary_is_one_place():
    """The live schema re-exports the very objects of twin.vocabulary (one definition)."""
    from twin import vocabulary
    from twin.live import events

    for name in ("E10_STATES", "UP_STATES", "E10_TRANSITIONS", "VEHICLE_STATES"):
        assert getattr(events, name) is getattr(vocabulary, name)
