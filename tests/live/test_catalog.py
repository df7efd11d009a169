"""The catalog built from the demo fab scene and its process model, used by the validator."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.live.catalog import Catalog
from twin.live.events import make_event
from twin.live.state import TwinState, apply
from twin.live.validate import validate

DEMO = Path(__file__).resolve().parents[2] / "scenes" / "demo-fab"


@pytest.fixture(scope="module")
def demo():
    if not (DEMO / "scene.yaml").exists():
        pytest.skip("scenes/demo-fab is not in this checkout")
    from twin.process import load_model
    from twin.scene.load import load_scene

    scene = load_scene(DEMO)
    model = load_model(scene.metadata["process_dir"])
    return scene, model, Catalog.from_scene(scene, model)


def test_catalog_matches_scene_and_model(demo):
    """Every tool/stocker, port, vehicle, segment and route step of the demo fab is in the catalog."""
    scene, model, cat = demo
    assert set(cat.equipment) == {n.id for n in scene.nodes(("tool", "stocker", "station"))}
    assert {t: f for t, f in cat.equipment.items() if f} == {n.id: n.family for n in scene.tools()}
    assert set(cat.ports) == set(scene.ports) | {n.id for n in scene.nodes("port")}
    assert cat.vehicles == {n.id for n in scene.nodes("vehicle")}
    assert cat.segments == {s: seg.length for s, seg in scene.segments.items()}
    for name, product in model.products.items():
        steps = model.routes[product.route].steps
        assert [s.number for s in cat.products[name]] == [s.number for s in steps]
        assert [s.is_delay for s in cat.products[name]] == [s.is_delay for s in steps]
    assert Catalog.from_dict(cat.to_dict()) == cat


def test_demo_lot_walks_its_route(demo):
    """A lot of the demo fab is accepted at tools of its steps' families and refused elsewhere."""
    scene, model, cat = demo
    product = sorted(cat.products)[0]
    route = [s for s in cat.products[product] if not s.is_delay][:3]
    s = TwinState(cat)
    seq = 0

    def send(type, subject, **data):
        nonlocal seq
        seq += 1
        e = make_event("mes", seq, 1000.0 + seq, type, subject, **data)
        reason = validate(e, s)
        if reason is None:
            apply(s, e)
        return reason

    assert send("lot.released", "LOT1", product=product) is None
    for step in route:
        right = sorted(n.id for n in scene.tools(step.family))[0]
        wrong = sorted(n.id for n in scene.tools() if n.family != step.family)[0]
        reason = send("lot.track_in", "LOT1", equipment=wrong, step=step.number)
        assert reason is not None and f"needs family {step.family}" in reason
        assert send("lot.track_in", "LOT1", equipment=right, step=step.number) is None
        assert send("lot.track_out", "LOT1", equipment=right, step=step.number) is None
    assert s.lots["LOT1"].moves == len(route)
    seg = sorted(cat.segments)[0]
    vid = sorted(cat.vehicles)[0]
    pos = make_event("amhs", 1, 2000.0, "vehicle.position", vid, segment=seg, offset=0.0, speed=1.0)
    assert validate(pos, s) is None
