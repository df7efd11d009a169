"""The reference engine's public hooks (schedule, on_arrive, on_start), as the emulator uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.process import load_model
from twin.whatif.reference import SimConfig
from twin.whatif.reference.engine import CALL, Engine

DEMO = Path(__file__).resolve().parents[2] / "scenes" / "demo-fab" / "process"


@pytest.fixture(scope="module")
def model():
    return load_model(DEMO)


def _cfg(**kw) -> SimConfig:
    return SimConfig(days=1.0, seed=5, transport=False, **kw)


def _run(engine: Engine) -> list[tuple]:
    res = engine.run()
    r = res.lots
    return list(zip(r.id, r.completion, r.queue_time, strict=True))


def test_an_engine_without_hooks_has_no_wrappers(model):
    """Unset hooks cost nothing: no per-instance wrappers exist until set_hooks installs them."""
    eng = Engine(model, _cfg())
    assert "_arrive" not in vars(eng) and "_start" not in vars(eng)
    eng.set_hooks(on_start=lambda *a: None)
    assert "_start" in vars(eng) and "_arrive" not in vars(eng)


def test_declining_hooks_change_nothing(model):
    """Hooks that take no lot and only watch leave every lot's record bit for bit the same."""
    plain = _run(Engine(model, _cfg()))
    seen = {"arrive": 0, "start": 0}

    def on_arrive(lot, t):
        seen["arrive"] += 1
        return False

    def on_start(tool, lots, st, t):
        seen["start"] += 1

    eng = Engine(model, _cfg())
    eng.set_hooks(on_arrive=on_arrive, on_start=on_start)
    assert _run(eng) == plain
    assert len(plain) > 0 and seen["arrive"] > len(plain) and seen["start"] > 0


def test_on_start_sees_the_run_just_started(model):
    """on_start(tool, lots, step, t) comes after the run is on the tool: jobs[-1] holds the lots."""
    calls = []

    def on_start(tool, lots, st, t):
        job = tool.jobs[-1]
        calls.append((job.lots is lots, job.start == t, job.step is st, job.end >= t + job.setup))

    eng = Engine(model, _cfg())
    eng.set_hooks(on_start=on_start)
    eng.run()
    assert calls and all(all(c) for c in calls)


def test_schedule_calls_back_in_time_order_after_engine_events(model):
    """schedule(t, fn) calls fn(t) at t, in time order, after the engine's events at t."""
    eng = Engine(model, _cfg())
    got: list[tuple[str, float]] = []
    pending_at_call: list[int] = []

    def callback(now: float, name: str) -> None:
        got.append((name, now))
        pending_at_call.append(sum(1 for e in eng.heap if e[0] <= now and e[1] != CALL))

    for name, t in (("b", 7200.0), ("a", 3600.0), ("c", 7200.0), ("zero", 0.0)):
        eng.schedule(t, lambda now, name=name: callback(now, name))
    order = []
    for t in eng.steps():
        order.append(t)
    assert got == [("zero", 0.0), ("a", 3600.0), ("b", 7200.0), ("c", 7200.0)]
    assert pending_at_call == [0, 0, 0, 0]  # nothing of the engine's own left at that time
    assert order == sorted(order) and order[-1] <= eng.end


def test_a_lot_taken_by_on_arrive_waits_until_handed_back(model):
    """on_arrive returning True holds the lot; arrive(lot, t) hands it back later (hook again)."""
    plain = dict((i, c) for i, c, _ in _run(Engine(model, _cfg())))
    eng = Engine(model, _cfg())
    held: dict[str, int] = {}

    def on_arrive(lot, t):
        k = (lot.id, lot.idx)
        if k in held:
            return False  # second time: the lot joins its queue
        held[k] = 1
        eng.arrive(lot, t + 600.0)  # every step 10 min later
        return True

    eng.set_hooks(on_arrive=on_arrive)
    late = dict((i, c) for i, c, _ in _run(eng))
    assert held and len(late) <= len(plain)
    assert sum(late.values()) / len(late) > sum(plain[i] for i in late) / len(late)


def test_steps_stop_at_the_horizon(model):
    """steps() yields nothing past the end of the horizon and leaves later events in the heap."""
    eng = Engine(model, SimConfig(days=0.25, seed=1, transport=False))
    last = 0.0
    for t in eng.steps():
        last = t
    assert last <= eng.end and (not eng.heap or eng.heap[0][0] > eng.end)
