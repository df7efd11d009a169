"""The emulator starts from the model's initial WIP (lot.placed), so the demo fab is alive at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin.cli import main
from twin.emulator.emulator import Emulator, EmulatorConfig
from twin.errors import InputError
from twin.live.catalog import Catalog
from twin.live.events import parse_event
from twin.live.sources import Message
from twin.live.store import SQLiteStore
from twin.live.sync import Synchroniser
from twin.process import load_model
from twin.scene.load import load_scene
from twin.service_commands import UP_SPEED

DEMO = Path(__file__).resolve().parents[2] / "scenes" / "demo-fab"
WALL_MINUTE = 60.0 * UP_SPEED["emulator"]  # fab s that `twin up` shows in its first wall minute


@pytest.fixture(scope="module")
def demo():
    return load_scene(DEMO), load_model(DEMO / "process")


@pytest.fixture(scope="module")
def first_hour(demo):
    """The demo fab's first wall minute of `twin up` (seed 0, as `twin up` defaults), emulated."""
    scene, model = demo
    emu = Emulator(scene, model, config=EmulatorConfig(seed=0, hours=WALL_MINUTE / 3600.0))
    return emu, list(emu.events())


def test_the_initial_wip_is_placed_first(demo, first_hour):
    """Every WIP.txt lot is announced by lot.placed at time 0, in file order, before anything else
    happens to it, at its CURSTEP, released no later than then."""
    _, model = demo
    emu, events = first_hour
    placed = [e for e in events if e.type == "lot.placed"]
    assert [e.subject for e in placed] == [w.id for w in model.wip] and len(placed) >= 10
    assert events[: len(placed)] == placed
    for e, w in zip(placed, model.wip, strict=True):
        assert e.time == emu.cfg.start and e.data["step"] == w.step
        assert e.data["product"] == w.product and 0 <= e.data["released"] <= e.time
    assert emu.kpis()["lots_placed"] == len(model.wip)


def test_a_lot_completes_within_the_first_wall_minute_of_twin_up(first_hour):
    """At `twin up`'s default speed the first lot.completed comes within one wall minute."""
    emu, events = first_hour
    done = [e for e in events if e.type == "lot.completed"]
    assert done, f"no lot completed within {WALL_MINUTE / 60:g} fab minutes"
    assert done[0].time - emu.cfg.start <= WALL_MINUTE
    assert emu.kpis()["lots_completed"] == len(done)


def test_ingest_accepts_the_stream_and_state_equals_a_replay(tmp_path, demo, first_hour):
    """The stream with placed lots goes through the synchroniser without a dead letter; the
    twin's KPIs are the emulator's, and its state equals a replay of the store."""
    scene, model = demo
    emu, events = first_hour
    catalog = Catalog.from_scene(scene, model)
    with SQLiteStore(tmp_path / "twin.db") as store:
        sync = Synchroniser(store, catalog)
        sync.process([Message(e.to_json()) for e in events])
        assert store.dead_letter_count() == 0 and store.count() == len(events)
        kpis, mine = sync.state.kpis(), emu.kpis()
        assert kpis["wip"] == mine["wip"] and kpis["lots_completed"] == mine["lots_completed"]
        assert kpis["lots_completed"] > 0
        assert sync.state.fingerprint() == store.replay(catalog).fingerprint()
        lot = sync.state.lots[events[0].subject]
        assert lot.released == events[0].data["released"]


def test_without_initial_wip_the_fab_starts_empty(demo):
    """initial_wip=False: no lot is placed and nothing completes in the first fab hour."""
    scene, model = demo
    emu = Emulator(scene, model, config=EmulatorConfig(seed=0, hours=1.0, initial_wip=False))
    events = list(emu.events())
    assert not any(e.type in ("lot.placed", "lot.completed") for e in events)
    assert emu.kpis()["lots_placed"] == 0 and emu.kpis()["wip"] == emu.kpis()["lots_released"]


def test_cli_places_the_wip_unless_told_not_to(tmp_path, capsys):
    """`twin emulate` places the initial WIP by default and reports it; --no-wip starts empty."""
    for flags, placed in (([], 17), (["--no-wip"], 0)):
        out = tmp_path / f"s{placed}.jsonl"
        args = ["emulate", str(DEMO), "--hours", "0.25", "--out", str(out), "--json", *flags]
        assert main(args) == 0
        kpis = json.loads(capsys.readouterr().out)
        types = [parse_event(line).type for line in out.read_text().splitlines()]
        assert kpis["lots_placed"] == types.count("lot.placed") == placed


@pytest.mark.parametrize("bad", [None, 1, "yes", 0.0])
def test_initial_wip_must_be_a_bool(demo, bad):
    """EmulatorConfig.initial_wip accepts only True or False, and the error names it."""
    scene, model = demo
    with pytest.raises(InputError, match="initial_wip"):
        Emulator(scene, model, config=EmulatorConfig(initial_wip=bad))
