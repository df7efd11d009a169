"""Sources and the world link: in-process bus, JSONL replay at speed, following a growing file,
and poses/states pushed into an attached physics world."""

from __future__ import annotations

import threading
import time

import pytest

from twin.errors import InputError
from twin.live.sources import Bus, JsonlFileSource, JsonlSink
from twin.live.state import TwinState, apply_all
from twin.live.store import MemoryStore
from twin.live.sync import SyncConfig, Synchroniser


class RecordingWorld:
    """Implements the physics world protocol by remembering the last pose/state it was given."""

    def __init__(self):
        self.poses, self.states, self.calls = {}, {}, 0

    def set_vehicle_pose(self, vehicle_id, segment, offset):
        self.poses[vehicle_id] = (segment, offset)
        self.calls += 1

    def set_equipment_state(self, equipment_id, state):
        self.states[equipment_id] = state
        self.calls += 1


def test_bus_to_state_and_world(catalog, stream):
    """Events published on the bus by another thread reach the state; the world ends with every
    vehicle's last pose and every tool's last E10 state, pushed at most once per batch."""
    bus = Bus()
    world = RecordingWorld()
    sync = Synchroniser(MemoryStore(), catalog, world=world, cfg=SyncConfig(batch=500))

    def emulator():
        for e in stream:
            bus.publish(e)
        bus.close()

    threading.Thread(target=emulator).start()
    sync.run(bus)
    expect = apply_all(TwinState(catalog), stream)
    assert sync.state.fingerprint() == expect.fingerprint()
    for vid, v in expect.vehicles.items():
        if v.segment is not None:
            assert world.poses[vid] == (v.segment, v.offset)
    for eid, e in expect.equipment.items():
        if e.state is not None:
            assert world.states[eid] == e.state
    n_pose_state = sum(e.type in ("vehicle.position", "equipment.state") for e in stream)
    assert world.calls < n_pose_state  # coalesced per batch


def test_jsonl_replay_at_speed_factor(tmp_path, catalog):
    """At speed 100, events 30 s apart in fab time are delivered about 0.3 s apart."""
    from twin.live.events import make_event

    path = tmp_path / "e.jsonl"
    with JsonlSink(path) as sink:
        for i in range(4):
            sink.publish(
                make_event("mes", i + 1, 1000.0 + 30 * i, "vehicle.state", "V1", state="idle")
            )
    src = JsonlFileSource(path, speed=100.0)
    t0 = time.monotonic()
    got = []
    while not src.exhausted:
        got += [(time.monotonic() - t0, m) for m in src.receive(10, 1.0)]
    assert len(got) == 4
    assert got[-1][0] == pytest.approx(0.9, abs=0.25)
    assert got[1][0] - got[0][0] == pytest.approx(0.3, abs=0.15)
    assert got[2][1].origin.endswith("e.jsonl:3")


def test_follow_a_growing_file(tmp_path, catalog, stream):
    """A followed file is read as it grows, including a line written in two halves."""
    path = tmp_path / "live.jsonl"
    path.write_text("")
    src = JsonlFileSource(path, follow=True, poll=0.02)
    sync = Synchroniser(MemoryStore(), catalog)
    part = stream[:300]

    def writer():
        with path.open("a") as fh:
            for e in part[:-1]:
                fh.write(e.to_json() + "\n")
                fh.flush()
            text = part[-1].to_json()
            fh.write(text[:20])
            fh.flush()
            time.sleep(0.2)
            fh.write(text[20:] + "\n")

    th = threading.Thread(target=writer)
    th.start()
    sync.run(src, idle_exit=1.0)
    th.join()
    assert sync.pos == len(part) and sync.stats.rejected == 0
    assert sync.state.fingerprint() == apply_all(TwinState(catalog), part).fingerprint()


def test_missing_file_and_bad_speed_are_errors(tmp_path):
    """A file source names a missing file and refuses a speed that is not > 0."""
    with pytest.raises(InputError, match="no such file"):
        JsonlFileSource(tmp_path / "nope.jsonl")
    (tmp_path / "x.jsonl").write_text("")
    with pytest.raises(InputError, match="speed must be > 0"):
        JsonlFileSource(tmp_path / "x.jsonl", speed=0)
