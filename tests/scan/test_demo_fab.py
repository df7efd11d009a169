"""The as-built check on the shipped demo fab, whose tools are mesh assets rather than boxes."""

from __future__ import annotations

import math

import pytest

from twin.datasets import PROJECT_ROOT
from twin.scan.align import AlignConfig, align_scan
from twin.scan.synth import Move, ScanConfig, synthesize

MOVES = [Move("LITH01", 0.25, -0.10, 2.0), Move("ETCH02", -0.10, 0.15, -3.0)]


@pytest.mark.slow
def test_demo_fab_moves_recovered():
    """Known moves of two asset-shaped tools are recovered; no other tool is flagged."""
    from twin.scene.load import load_scene

    scene = load_scene(PROJECT_ROOT / "scenes" / "demo-fab")
    config = ScanConfig(points=150_000, noise_mm=3.0, frame=(3.0, -2.0, 0.1, 20.0), seed=1)
    scan = synthesize(scene, config, MOVES)
    result = align_scan(scan.points, scene, AlignConfig())
    by_id = {t.id: t for t in result.tools}
    for m in MOVES:
        t = by_id[m.tool]
        assert t.status == "moved"
        assert math.hypot(t.dx - m.dx, t.dy - m.dy) < 0.03, t
        assert abs(t.dyaw_deg - m.dyaw) < 0.5, t
    others = [t for t in result.tools if t.id not in {m.tool for m in MOVES}]
    assert [t.id for t in others if t.status == "moved"] == []
    assert sum(t.status == "unobserved" for t in others) <= 2
