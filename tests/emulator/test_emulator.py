"""The fab emulator: deterministic, valid, replayable streams with OHT-moved carriers."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from twin.emulator.emulator import GRID, Emulator, EmulatorConfig, load_emulator, tool_map
from twin.errors import InputError
from twin.live.catalog import Catalog
from twin.live.events import parse_event
from twin.live.sources import JsonlSink
from twin.live.state import TwinState, apply
from twin.live.validate import validate
from twin.process import load_model
from twin.scene.load import load_scene
from twin.whatif.reference import tool_ids

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenes" / "demo-fab"


@pytest.fixture(scope="module")
def demo():
    return load_scene(DEMO), load_model(DEMO / "process")


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory) -> Path:
    """The demo fab's process, cut to 5 non-batch steps per route at a fifth of the process
    time, lots released every 30 min and no initial WIP: lots finish within the hour."""
    d = tmp_path_factory.mktemp("fastproc")
    for f in (DEMO / "process").iterdir():
        shutil.copy(f, d / f.name)
    for name in ("route_A.txt", "route_B.txt"):
        head, *rows = (d / name).read_text().splitlines()
        keep = [r.split("\t") for r in rows if "Diffusion" not in r.split("\t")[3]][:5]
        for k, c in enumerate(keep):
            c[1] = str(k + 1)
            c[5], c[6] = str(float(c[5]) / 5), str(float(c[6]) / 5)  # PTIME, PTIME2
        (d / name).write_text("\n".join([head, *("\t".join(c) for c in keep)]) + "\n")
    (d / "WIP.txt").write_text((d / "WIP.txt").read_text().splitlines()[0] + "\n")
    order = (d / "order.txt").read_text().replace("\t144.0\t", "\t30.0\t")
    (d / "order.txt").write_text(order)
    return d


@pytest.fixture(scope="module")
def fast_run(demo, fast_model, tmp_path_factory):
    """Two and a half hours of the fast fab written to JSONL: (emulator, events, file, KPIs)."""
    scene, _ = demo
    model = load_model(fast_model)
    path = tmp_path_factory.mktemp("emu") / "stream.jsonl"
    emu = Emulator(scene, model, seed=3, hours=2.5)
    with JsonlSink(path) as sink:
        events = []

        class Tee:
            def publish(self, ev):
                events.append(ev)
                sink.publish(ev)

        kpis = emu.run(Tee())
    return emu, events, path, kpis


def test_tool_map_follows_families(demo):
    """Every engine tool maps to a distinct scene tool of the same family."""
    scene, model = demo
    m = tool_map(scene, model)
    assert sorted(m) == sorted(tool_ids(model))
    assert len(set(m.values())) == len(m)
    for eid, tid in m.items():
        assert scene.node(tid).family == eid.split("#")[0]


def test_tool_map_rejects_count_mismatch(demo):
    """A family whose STNQTY differs from the scene's tool count is named in one error."""
    scene, model = demo
    fams = dict(model.families)
    fams["Litho_FE_3"] = dataclasses.replace(fams["Litho_FE_3"], count=5)
    fams["TF_FE_2"] = dataclasses.replace(fams["TF_FE_2"], count=1)
    with pytest.raises(InputError) as exc:
        tool_map(scene, dataclasses.replace(model, families=fams))
    assert len(exc.value.problems) == 2
    assert "Litho_FE_3" in str(exc.value) and "TF_FE_2" in str(exc.value)


def test_bad_config_lists_every_problem(demo):
    """A bad emulator config is one error listing each bad field."""
    scene, model = demo
    with pytest.raises(InputError) as exc:
        Emulator(scene, model, config=EmulatorConfig(hours=-1, seed=-2, position_every=0))
    assert len(exc.value.problems) == 3


def test_same_seed_same_bytes(demo, tmp_path):
    """The same seed gives a byte-identical JSONL stream; another seed a different one."""
    scene, model = demo
    paths = []
    for i, seed in enumerate((5, 5, 6)):
        p = tmp_path / f"s{i}.jsonl"
        with JsonlSink(p) as sink:
            Emulator(scene, model, seed=seed, hours=2.0).run(sink)
        paths.append(p.read_bytes())
    assert paths[0] == paths[1]
    assert paths[0] != paths[2]
    assert paths[0].count(b"\n") > 100


def test_every_event_validates(demo, fast_model, fast_run):
    """Every emitted event passes the validator against the scene and process model, in order."""
    scene, _ = demo
    emu, events, _, _ = fast_run
    state = TwinState(Catalog.from_scene(scene, load_model(fast_model)))
    rejected = []
    for ev in events:
        reason = validate(ev, state)
        if reason:
            rejected.append((ev, reason))
        else:
            apply(state, ev)
    assert rejected == []
    types = {ev.type for ev in events}
    assert {"lot.completed", "carrier.delivered", "vehicle.position", "equipment.state"} <= types
    times = [ev.time for ev in events]
    assert times == sorted(times)
    assert all((t * GRID).is_integer() for t in times)
    for src in ("mes", "amhs"):
        seqs = [ev.seq for ev in events if ev.source == src]
        assert seqs == list(range(1, len(seqs) + 1))


def test_replay_reproduces_kpis_exactly(demo, fast_model, fast_run):
    """The JSONL stream replayed into a fresh twin gives the emulator's own KPIs, exactly."""
    scene, _ = demo
    _, _, path, kpis = fast_run
    state = TwinState(Catalog.from_scene(scene, load_model(fast_model)))
    for line in path.read_text().splitlines():
        apply(state, parse_event(line))
    got = state.kpis()
    assert kpis["lots_completed"] > 0 and kpis["wip"] > 0
    assert got["lots_completed"] == kpis["lots_completed"]
    assert got["wip"] == kpis["wip"]
    assert got["utilisation_by_family"] == kpis["utilisation_by_family"]  # exact floats
    assert max(kpis["utilisation_by_family"].values()) > 0.2
    assert kpis["lots_released"] + kpis["lots_placed"] == kpis["lots_completed"] + kpis["wip"]


def test_transfers_and_vehicles(demo, fast_run):
    """Each transfer goes requested -> assigned -> picked up -> delivered in time order by one
    vehicle; positions lie on the rail; a lot is tracked in at the tool its carrier went to."""
    scene, _ = demo
    emu, events, _, _ = fast_run
    steps: dict[str, list] = defaultdict(list)
    for ev in events:
        if ev.type.startswith("carrier."):
            steps[ev.data["transfer"]].append(ev)
    order = [
        "carrier.transfer_requested",
        "carrier.vehicle_assigned",
        "carrier.picked_up",
        "carrier.delivered",
    ]
    done = 0
    for evs in steps.values():
        kinds = [e.type for e in evs]
        assert kinds == order[: len(kinds)]
        assert [e.time for e in evs] == sorted(e.time for e in evs)
        assert len({e.data["vehicle"] for e in evs[1:]}) <= 1
        done += len(kinds) == 4
    assert done >= 20
    assert len(steps) - done <= len(emu.veh)  # only the moves still under way at the end
    for ev in events:
        if ev.type == "vehicle.position":
            seg = scene.segment(ev.data["segment"])
            assert 0.0 <= ev.data["offset"] <= seg.length + 1e-9
            assert 0.0 <= ev.data["speed"] <= 1.5 + 1e-9  # the demo OHT's max speed
    # carrier delivered to a port of tool X, then the lot is tracked in at X
    dest = {}
    requested = {}
    for ev in events:
        if ev.type == "carrier.transfer_requested":
            requested[ev.data["transfer"]] = ev.data["to"]
        elif ev.type == "carrier.delivered":
            dest[ev.subject] = requested[ev.data["transfer"]]
        elif ev.type == "lot.track_in":
            port = dest.get(f"C-{ev.subject}")
            assert port is not None
            assert scene.ports[port].tool == ev.data["equipment"]


def test_paced_run_follows_speed(demo):
    """At --speed X the stream takes (span of event times) / X of wall-clock time."""
    scene, model = demo
    times = []

    class Clock:
        def publish(self, ev):
            times.append((time.monotonic(), ev.time))

    Emulator(scene, model, seed=1, hours=0.02).run(Clock(), speed=30.0)
    (w0, t0), (w1, t1) = times[0], times[-1]
    assert t1 - t0 > 60
    assert (w1 - w0) == pytest.approx((t1 - t0) / 30.0, abs=0.3)
    for w, t in times:
        assert w - w0 >= (t - t0) / 30.0 - 0.01  # never ahead of the paced fab clock


@pytest.mark.parametrize("batch", [1, 25])
def test_cli_emulate_into_mosquitto_and_ingest(broker, tmp_path, batch):
    """`twin emulate --mqtt` into a real broker (one event per message, or JSON arrays of
    ``batch``), `twin ingest --from mqtt://` stores it all, and `twin state` reports the
    emulator's KPIs."""
    py = sys.executable
    url = f"mqtt://127.0.0.1:{broker.port}/twin/+/events/#"
    store = tmp_path / "twin.db"
    # open the ingest client's persistent session first: the broker queues the stream for it
    # until the ingest process connects (after the emulator has finished)
    from twin.live.mqtt import MqttConfig, MqttSource

    MqttSource(MqttConfig.from_url(url, client_id="emu-test")).close()
    emu = subprocess.run(
        [py, "-m", "twin.cli", "emulate", str(DEMO), "--hours", "1.5", "--seed", "4",
         "--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-batch", str(batch), "--json",
         "--no-end-to-end"],  # ingest runs after: nothing would confirm
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert emu.returncode == 0, emu.stderr
    kpis = json.loads(emu.stdout)
    ingest = subprocess.run(
        [py, "-m", "twin.cli", "ingest", "--from", url, "--store", str(store), "--scene",
         str(DEMO), "--idle-exit", "3", "--client-id", "emu-test"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    st = subprocess.run(
        [py, "-m", "twin.cli", "state", "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert st.returncode == 0, st.stderr
    state = json.loads(st.stdout)
    assert state["events_stored"] == kpis["events"]
    assert state["dead_letters"] == 0
    assert state["wip"] == kpis["wip"] > 0
    assert state["lots_completed"] == kpis["lots_completed"]
    assert state["utilisation_by_family"] == kpis["utilisation_by_family"]


def test_cli_emulate_file_and_errors(tmp_path, capsys):
    """`twin emulate --out` writes the stream; bad options are one error listing each."""
    from twin.cli import main

    out = tmp_path / "s.jsonl"
    assert main(["emulate", str(DEMO), "--hours", "0.5", "--out", str(out), "--json"]) == 0
    kpis = json.loads(capsys.readouterr().out)
    assert len(out.read_text().splitlines()) == kpis["events"] > 0
    bad = ["--hours", "-1", "--speed", "fast", "--seed", "-1", "--mqtt-batch", "0"]
    assert main(["emulate", str(DEMO), *bad]) == 1
    err = capsys.readouterr().err
    assert "--speed" in err and "--hours" in err and "--seed" in err and "--mqtt-batch" in err


def test_scene_without_process_is_refused(tmp_path):
    """A scene that names no process model cannot be emulated; the error says what to pass."""
    scene_dir = tmp_path / "fab"
    shutil.copytree(DEMO, scene_dir, ignore=shutil.ignore_patterns("process"))
    text = (scene_dir / "scene.yaml").read_text().replace("process: process\n", "")
    (scene_dir / "scene.yaml").write_text(text)
    with pytest.raises(InputError, match="--process"):
        load_emulator(str(scene_dir))


def test_stop_ends_run_with_consistent_kpis(demo):
    """A run stopped early reports KPIs of exactly the events it published."""
    scene, model = demo
    got = []

    class Sink:
        def publish(self, ev):
            got.append(ev)

    emu = Emulator(scene, model, seed=2, hours=2.0)
    kpis = emu.run(Sink(), stop=lambda: len(got) >= 60)
    assert len(got) == kpis["events"] == 60
    state = TwinState(Catalog.from_scene(scene, model))
    for ev in got:
        apply(state, ev)
    assert state.kpis()["utilisation_by_family"] == kpis["utilisation_by_family"]
    assert state.kpis()["wip"] == kpis["wip"]
