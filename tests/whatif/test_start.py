"""The live twin state as a what-if start (twin.whatif.start) on a store the emulator made."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from twin.cli import main
from twin.errors import InputError
from twin.live.events import make_event
from twin.live.state import Equipment, apply
from twin.live.store import SQLiteStore
from twin.process.model import Dist, DownCalendar
from twin.process.toolmap import ToolIdMap, UnmappedToolError
from twin.whatif.reference import SimConfig, simulate
from twin.whatif.start import NEVER, _down_left, build_start, start_from_twin

DEMO = "scenes/demo-fab"
ACTIVE = ("queued", "processing", "hold")


@pytest.fixture(scope="module")
def demo():
    from twin.process import load_model
    from twin.scene.load import load_scene

    scene = load_scene(DEMO)
    return scene, load_model(scene.metadata["process_dir"])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store of 12 h of the demo fab: `twin emulate`, then `twin ingest`."""
    d = tmp_path_factory.mktemp("live")
    events, db = d / "events.jsonl", d / "twin.db"
    assert main(["emulate", DEMO, "--hours", "12", "--seed", "4", "--out", str(events)]) == 0
    assert main(["ingest", "--from", str(events), "--store", str(db), "--scene", DEMO]) == 0
    return db


@pytest.fixture(scope="module")
def states(store):
    """The twin state at several times of the run, just after its first breakdown, and now
    (the demo fab's first PMs come after 15 days: PMs are tested on a changed state)."""
    with SQLiteStore(store, readonly=True) as s:
        first = next(s.read()).time
        times = [first + h * 3600.0 for h in (1, 5, 9)]
        ev = next(
            (e for e in s.read(type="equipment.state") if e.data["state"] == "unscheduled_down"),
            None,
        )
        assert ev is not None, "no breakdown in the emulated run"
        times.append(ev.time + 1.0)
        return [s.state_at(t) for t in times] + [s.state_at()]


def test_tool_id_map_is_the_emulators(demo):
    """The emulator and the what-if start use one map: ToolIdMap.from_scene."""
    from twin.emulator.emulator import tool_map

    scene, model = demo
    m = ToolIdMap.from_scene(scene, model)
    assert tool_map(scene, model) == m.to_twin
    assert {v: k for k, v in m.to_engine.items()} == m.to_twin
    assert len(m) == sum(f.count for f in model.families.values() if not f.is_delay)


def test_every_active_lot_and_tool_appears(demo, states):
    """Every active lot of the twin is in the start at its step, processing ones on their
    tool's engine id, and every tool of the map has a ToolState; down tools stay down."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    seen = {"processing": 0, "down": 0}
    for state in states:
        start = start_from_twin(state, model, tm)
        active = {x.id: x for x in state.lots.values() if x.status in ACTIVE}
        assert active and {x.id for x in start.lots} == set(active)
        for ls in start.lots:
            lot = active[ls.id]
            assert ls.step == lot.step and ls.product == lot.product
            if lot.status == "processing":
                seen["processing"] += 1
                assert ls.status == "processing" and tm.to_twin[ls.tool] == lot.location
                assert 0 <= ls.until < 5 * 86400
            else:
                assert ls.status == "queued"
        assert set(start.tools) == set(tm.to_twin)
        for eid, ts in start.tools.items():
            e = state.equipment[tm.to_twin[eid]]
            if e.state == "unscheduled_down":
                seen["down"] += 1
                assert ts.down_until > 0 and ts.down_kind == "down"
            elif e.state in ("standby", "productive"):
                assert ts.down_until == 0
    assert seen["processing"] and seen["down"]  # the run covers both


def test_near_zero_day_run_reports_the_twins_wip(demo, states):
    """A run of a moment from the start reports the twin's WIP exactly (first WIP sample)."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    for state in states:
        start = start_from_twin(state, model, tm)
        r = simulate(model, SimConfig(days=1e-9, transport=False), start=start)
        assert r.wip_lots[0] == state.wip() == len(start.lots)


def test_held_lot_stays_held_and_in_the_wip(demo, states):
    """A held lot is in the start, in transport past any horizon (or until hold_until)."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    state = states[2].copy()
    lot = next(x for x in state.lots.values() if x.status == "queued")
    seq = max(state.last_seq.values()) + 1
    ev = make_event("qa", seq, state.clock, "lot.hold", lot.id, reason="inspect")
    apply(state, ev)
    live = build_start(state, model, tm)
    ls = next(x for x in live.start.lots if x.id == lot.id)
    assert ls.status == "transport" and ls.until == NEVER and live.counts["hold"] == 1
    assert any("held" in n for n in live.notes)
    r = simulate(model, SimConfig(days=1e-9), start=live.start)
    assert r.wip_lots[0] == state.wip()
    later = start_from_twin(state, model, tm, time=100.0, hold_until=3600.0)
    assert next(x for x in later.lots if x.id == lot.id).until == 3700.0


def test_processing_lot_just_tracked_in_has_its_whole_run_left(demo, states):
    """A lot tracked in at the twin's clock on a productive tool needs the step's whole mean
    run (load + processing + unload) from the start."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    state = states[-1].copy()
    lot = next(x for x in state.lots.values() if x.status == "processing")
    e = state.equipment[lot.location]
    e.state, e.reason, e.since = "productive", "processing", state.clock
    lot.updated = state.clock
    ls = next(x for x in start_from_twin(state, model, tm).lots if x.id == lot.id)
    step = model.route_of(lot.product).steps[model.route_of(lot.product).index_of(lot.step)]
    fam = model.families[step.family]
    assert ls.until == pytest.approx(step.mean_time(ls.wafers) + fam.load_time + fam.unload_time)


def test_down_time_left_is_the_repair_mean_whatever_the_time_down(demo):
    """Exponential repair is memoryless: the mean time left is MTTR at any time spent down;
    a constant repair has its mean minus the time spent left (0 when overdue)."""
    _, model = demo
    fam = next(f for f in model.families if any(a.kind == "down" for a in model.calendars_of(f)))
    att = next(a for a in model.calendars_of(fam) if a.kind == "down")
    for kind in ("exponential", "constant"):
        cal = DownCalendar(
            name=att.calendar,
            mttf=Dist(kind="exponential", mean=36000.0),
            mttr=Dist(kind=kind, mean=1800.0),
        )
        only = dataclasses.replace(model, downs={att.calendar: cal}, attachments=[att], pms={})
        for spent in (0.0, 600.0, 1e6):
            left = _down_left(only, fam, "down", spent)
            want = 1800.0 if kind == "exponential" else max(0.0, 1800.0 - spent)
            assert left == pytest.approx(want)
        assert _down_left(only, fam, "pm", 0.0) is None


def test_pm_and_setup_in_progress(demo, states):
    """A tool in a PM is down for the mean PM time left (uniform: the conditional mean); a lot
    whose tool is still in its setup needs the rest of the setup plus its whole run."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    state = states[-1].copy()
    litho = tm.to_twin["Litho_FE_3#1"]
    e = state.equipment[litho]
    e.state, e.reason, e.since = "scheduled_down", "pm", state.clock - 3600.0
    lot = next(x for x in state.lots.values() if x.status == "processing")
    t = state.equipment[lot.location]
    t.state, t.reason, t.since = "scheduled_down", "setup", state.clock - 60.0
    lot.updated = t.since
    start = start_from_twin(state, model, tm, time=50.0)
    ts = start.tools["Litho_FE_3#1"]
    pm = next(c for c in model.pms.values() if c.name.startswith("Litho_FE_3"))
    lo, hi = pm.duration.bounds(model.ptime_spread_mode)
    assert ts.down_kind == "pm" and ts.down_until == pytest.approx(50.0 + (lo + hi) / 2 - 3600.0)
    route = model.route_of(lot.product)
    step = route.steps[route.index_of(lot.step)]
    fam = model.families[step.family]
    setup = model.setup_time(t.setup, step.setup, step) if step.setup else 0.0
    ls = next(x for x in start.lots if x.id == lot.id)
    run = step.mean_time(ls.wafers) + fam.load_time + fam.unload_time
    assert ls.until == pytest.approx(50.0 + max(0.0, setup - 60.0) + run)


def test_unmapped_tools_and_lots_are_refused_with_the_first_ids(demo, states):
    """A tool of the twin that the map does not know is refused, listing the first ids (never
    dropped); so is a lot processing on one, or a lot of an unknown product."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    state = states[-1].copy()
    for k in range(12):
        state.equipment[f"GHOST-{k:02d}"] = Equipment(f"GHOST-{k:02d}", "Litho_FE_3")
    state.equipment["\ud800"] = Equipment("\ud800", "Litho_FE_3")
    with pytest.raises(UnmappedToolError) as exc:
        start_from_twin(state, model, tm)
    text = str(exc.value)
    assert len(exc.value.ids) == 13 and "13 twin tool ids" in text
    assert "'GHOST-00'" in text and "(and 3 more)" in text
    text.encode("utf-8")  # printable: the lone surrogate is escaped
    state = states[-1].copy()
    lot = next(x for x in state.lots.values() if x.status == "processing")
    lot.location = "NOWHERE-1"
    with pytest.raises(UnmappedToolError, match="NOWHERE-1"):
        start_from_twin(state, model, tm)
    state = states[-1].copy()
    lot = next(x for x in state.lots.values() if x.status in ACTIVE)
    lot.product = "part_Z"
    with pytest.raises(InputError, match=f"'{lot.id}' \\(product 'part_Z' is not in the model"):
        start_from_twin(state, model, tm)


def test_tool_map_refuses_a_family_that_does_not_fit(demo):
    """A family with more tools in the twin than its STNQTY is named, never truncated."""
    scene, model = demo
    tools = {n.id: n.family for n in scene.nodes("tool")}
    fam = next(iter(tools.values()))
    tools["EXTRA-1"] = fam
    with pytest.raises(InputError, match=f"family {fam}: the process model has"):
        ToolIdMap.from_families(tools, model)


def test_bad_start_parameters_are_one_error(demo, states):
    """A non-finite start time and a negative hold are listed in one error."""
    scene, model = demo
    with pytest.raises(InputError) as exc:
        build_start(states[0], model, ToolIdMap.from_scene(scene, model), time=math.nan,
                    hold_until=-1.0)  # fmt: skip
    assert len(exc.value.problems) == 2


def test_cli_runs_a_scenario_file_from_the_live_state(store, capsys):
    """`twin whatif run SCENE --start live --store DB --at T` runs the scenario file from the
    state as of T and says what it started from."""
    with SQLiteStore(store, readonly=True) as s:
        state = s.state_at(next(s.read()).time + 5 * 3600.0)
    from twin.live.events import format_time

    at = format_time(state.clock)
    argv = ["whatif", "run", DEMO, "--scenarios", f"{DEMO}/scenarios.yaml", "--start", "live",
            "--store", str(store), "--at", at, "--days", "0.5", "-r", "1", "--workers", "1",
            "--json", "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    argv.remove("--dry-run")
    assert main(argv) == 0
    out = capsys.readouterr()
    assert f"{state.wip()} lots" in out.err and "live start (as of" in out.err
    assert json.loads(out.out[out.out.index("{") :])["scenarios"]


@pytest.mark.parametrize(
    "at, says",
    [
        ("garbage", "is not ISO 8601"),
        ("1e20", "must be epoch seconds from 0"),
        ("\ud800", "is not ISO 8601"),
        ("nan", "must be epoch seconds from 0"),
        ("-inf", "must be epoch seconds from 0"),
        ("2020-01-01T00:00:00Z", "is before the first event"),
        ("2027-01-01T00:00:00+02:00", "must be UTC"),
        ("[" * 10_000, "is not ISO 8601"),
    ],
)
def test_hostile_at_is_one_clear_error(store, capsys, at, says):
    """A hostile --at (garbage, huge, a lone surrogate, before the first event) is one error."""
    argv = ["whatif", "run", DEMO, "--start", "live", "--store", str(store), f"--at={at}",
            "--days", "0.1", "-r", "1", "--workers", "1", "-q"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert says in err and err.count("  - ") == 1
    err.encode("utf-8")


def test_start_options_that_do_not_fit_are_refused(store, tmp_path, capsys):
    """--start live needs an existing --store; --store and --at need --start live."""
    base = ["whatif", "run", DEMO, "--days", "0.1", "-r", "1", "-q"]
    for extra, says in (
        (["--start", "live"], "--start live needs --store"),
        (["--start", "live", "--store", str(tmp_path / "none.db")], "no such event store"),
        (["--start", "live", "--store", "\ud800.db"], "no such event store"),
        (["--store", str(store)], "--store goes with --start live"),
        (["--at", "12"], "--at goes with --start live"),
    ):
        assert main(base + extra) == 1
        assert says in capsys.readouterr().err


def test_processing_counts_from_the_end_of_the_setup(demo, states):
    """A lot whose run began with a setup has worked since the setup ended (the tool turned
    productive then), not since its track-in; a later state change is capped at the longest
    setup."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    state = states[-1].copy()
    lot = next(x for x in state.lots.values() if x.status == "queued")
    route = model.route_of(lot.product)
    step = next(s for s in route.steps if s.setup)
    fam = model.families[step.family]
    tool = tm.to_twin[f"{step.family}#1"]
    lot.status, lot.step, lot.location = "processing", step.number, tool
    e = state.equipment[tool]
    for since, worked in ((1200.0, 1200.0), (3000.0, 2400.0 - 1800.0)):
        lot.updated = state.clock - 2400.0  # tracked in 40 min ago
        e.state, e.reason, e.since = "productive", "processing", lot.updated + since
        ls = next(x for x in start_from_twin(state, model, tm).lots if x.id == lot.id)
        run = step.mean_time(ls.wafers) + fam.load_time + fam.unload_time
        assert ls.until == pytest.approx(max(0.0, run - worked)), since


def test_mean_option_keeps_one_time_for_every_replication(demo, states):
    """down_left/work_left/transport_left="mean" is the start before the draws: no time left
    to draw, the mean in down_until/until; the default draws around the same means."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    state = states[3]  # just after a breakdown
    mean = build_start(state, model, tm, down_left="mean", work_left="mean",
                       transport_left="mean")  # fmt: skip
    drawn = build_start(state, model, tm)
    assert not any(ts.down_left for ts in mean.start.tools.values())
    assert not any(ls.until_left for ls in mean.start.lots)
    downs = [k for k, ts in drawn.start.tools.items() if ts.down_left]
    assert downs and all(mean.start.tools[k].down_until > 0 for k in downs)
    busy = [ls for ls in drawn.start.lots if ls.status == "processing"]
    assert busy and all(len(ls.until_left) == 1 for ls in busy)
    until = {ls.id: ls.until for ls in mean.start.lots}
    assert all(ls.until == pytest.approx(until[ls.id]) for ls in busy)
    assert any("drawn per replication" in n for n in drawn.notes)


def test_times_spent_count_up_to_now(demo, states):
    """now=T (a state as of T, its last event before T): a processing lot has worked, and a
    down tool been down, T - clock longer than at the clock."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    state = states[-1]
    kw = {"down_left": "mean", "work_left": "mean"}
    at_clock = build_start(state, model, tm, **kw).start
    later = build_start(state, model, tm, now=state.clock + 120.0, **kw).start
    before = {ls.id: ls.until for ls in at_clock.lots if ls.status == "processing"}
    moved = [ls.until for ls in later.lots if ls.id in before and before[ls.id] > 120.0]
    assert moved and all(
        ls.until == pytest.approx(before[ls.id] - 120.0)
        for ls in later.lots
        if ls.id in before and before[ls.id] > 120.0
    )


def test_lot_between_steps_may_still_be_in_transport(demo, states):
    """A twin without carriers: a lot tracked out just now is in transport (its arrival
    drawn from the transport time); one tracked out long ago is in its queue."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    state = states[-1].copy()
    state.carriers = {}
    lots = [x for x in state.lots.values() if x.status == "queued" and x.moves > 0]
    fresh, old = lots[0], lots[1]
    fresh.updated, old.updated = state.clock, state.clock - 3600.0
    start = start_from_twin(state, model, tm)
    got = {ls.id: ls for ls in start.lots}
    assert got[fresh.id].status == "transport" and got[fresh.id].until_left
    assert got[old.id].status == "queued"
    r = simulate(model, SimConfig(days=1e-9), start=start)
    assert r.wip_lots[0] == state.wip()
    mean = start_from_twin(state, model, tm, transport_left="mean")
    assert all(ls.status != "transport" for ls in mean.lots)


def test_hostile_start_options_are_one_error(demo, states):
    """An unknown down_left/work_left/transport_left (a lone surrogate too) and a now that is
    NaN or before the state's clock are listed in one error."""
    scene, model = demo
    tm = ToolIdMap.from_scene(scene, model)
    with pytest.raises(InputError) as exc:
        build_start(states[0], model, tm, down_left="\ud800", work_left=None,
                    transport_left=["draw"], now=math.nan)  # fmt: skip
    assert len(exc.value.problems) == 4
    str(exc.value).encode("utf-8", "backslashreplace")
    with pytest.raises(InputError, match="at or after the state's clock"):
        build_start(states[0], model, tm, now=states[0].clock - 1.0)
    with pytest.raises(InputError, match="at or after the state's clock"):
        build_start(states[0], model, tm, now=1e300)
