"""Rework, sampling and scrap rates from lots' paths, and transport times from carrier transfers,
on hand-built event logs; hostile events of these types are counted, never fatal."""

from __future__ import annotations

import copy
import json
import math

import pytest

from tests.calibrate.util import LITHO, T0, Log
from twin.calibrate import calibrate
from twin.calibrate import stats as st
from twin.calibrate.report import as_json, as_text
from twin.process import load_model

MODEL = load_model("scenes/demo-fab/process")
TOOLS = {f"T_{name}": name for name in MODEL.families}


def _model(rework: float = 0.2, sampling: float = 50.0):
    """The demo model with a rework rate on r_A step 5 (back to 4) and sampling on step 3."""
    model = copy.deepcopy(MODEL)
    steps = {s.number: s for s in model.routes["r_A"].steps}
    steps[5].rework_prob, steps[5].rework_step = rework, 4
    steps[3].sampling_percent = sampling
    return model


def _path(log: Log, lot: str, numbers: list[int], t: float, released: bool = True) -> float:
    """The lot tracks in and out of each step of r_A in ``numbers``, 100 s apart."""
    steps = {s.number: s for s in MODEL.routes["r_A"].steps}
    if released:
        log.add(t, "lot.released", lot, product="part_A", priority=10)
    for n in numbers:
        tool = f"T_{steps[n].family}"
        log.add(t + 1, "lot.track_in", lot, equipment=tool, step=n)
        log.add(t + 50, "lot.track_out", lot, equipment=tool, step=n)
        t += 100
    return t


def _cal(log: Log, model, equipment=TOOLS, **kw):
    evs = log.sorted()
    return calibrate(evs, model, equipment, since=evs[0].time, until=evs[-1].time, **kw)


def test_rework_rate_from_lots_going_back():
    """100 lots pass step 5, 20 of them go back to step 4 and pass 5 again (no second trial):
    rework_rate 20/100 with the Clopper-Pearson interval; not drift at design 0.2."""
    log = Log()
    t = 0.0
    for k in range(100):
        seq = [1, 2, 3, 4, 5, 4, 5, 6] if k < 20 else [1, 2, 3, 4, 5, 6]
        t = _path(log, f"L{k}", seq, t)
    p = _cal(log, _model()).by_name()["rework_rate:r_A/5"]
    assert (p.n, p.estimate) == (100, 0.2) and p.interval == "clopper-pearson"
    assert p.ci == pytest.approx(st.proportion_interval(20, 100)[1]) and not p.drift
    p = _cal(log, _model(rework=0.1)).by_name()["rework_rate:r_A/5"]
    assert p.drift and p.ci[0] > 0.1


def test_rework_event_counts_once():
    """A lot.rework event after the track-out and the track-in back at step 4 are one rework."""
    log = Log()
    t = _path(log, "R", [1, 2, 3, 4, 5], 0.0)
    log.add(t, "lot.rework", "R", step=4, reason="overlay")
    _path(log, "R", [4, 5, 6], t + 10, released=False)
    p = _cal(log, _model()).by_name()["rework_rate:r_A/5"]
    assert (p.n, p.estimate) == (1, 1.0)
    assert p.thin  # 1 pass x 0.2 expects 0.2 reworks: below 10


def test_sampling_rate_from_lots_skipping_a_step():
    """100 released lots reach step 3; 30 skip it (2 -> 4): sampling_rate 70/100, drift from
    the design 50 %; a lot released before the window (path unknown) is no trial."""
    log = Log()
    t = 0.0
    for k in range(100):
        t = _path(log, f"L{k}", [1, 2, 4, 5] if k < 30 else [1, 2, 3, 4, 5], t)
    _path(log, "OLD", [4, 5], t, released=False)
    cal = _cal(log, _model(), products={"OLD": "part_A"})
    p = cal.by_name()["sampling_rate:r_A/3"]
    assert (p.n, p.estimate) == (100, 0.7) and p.drift
    assert p.ci == pytest.approx(st.proportion_interval(70, 100)[1])


def test_first_steps_skipped_after_release_are_counted():
    """A lot released in the window whose first track-in is past a sampled step skipped it."""
    log = Log()
    t = 0.0
    for k in range(40):
        t = _path(log, f"L{k}", [4] if k % 2 else [3, 4], t)
    p = _cal(log, _model(sampling=50.0)).by_name()["sampling_rate:r_A/3"]
    assert (p.n, p.estimate) == (40, 0.5) and not p.drift


def test_scrap_rate_per_product():
    """10 lots scrapped and 40 completed: scrap_rate 10/50 against the model's 0, drift."""
    log = Log()
    for k in range(50):
        log.add(k * 10.0, "lot.released", f"L{k}", product="part_A", priority=10)
        log.add(k * 10.0 + 5, "lot.scrap" if k < 10 else "lot.completed", f"L{k}")
    params = _cal(log, MODEL).by_name()
    p = params["scrap_rate:part_A"]
    assert (p.n, p.estimate, p.design) == (50, 0.2, 0.0) and p.drift
    q = params["scrap_rate:part_B"]
    assert q.n == 0 and q.thin and not q.drift


def test_transport_times_by_area_and_overall():
    """40 stocker -> Litho transfers of 200 + k s: transport:stocker>Litho is their mean with no
    design (never drift); transport:all has the model's 300 s design and drifts."""
    log = Log()
    for k in range(40):
        t = k * 1000.0
        log.add(t, "carrier.transfer_requested", f"C{k}", transfer=f"T{k}", **{"from": "STK.P1",
                "to": "LITH01.P1"}, lot=f"L{k}")  # fmt: skip
        log.add(t + 200 + k, "carrier.delivered", f"C{k}", transfer=f"T{k}", vehicle="V1")
    eq = {**LITHO, "STK1": None}
    ports = {"STK.P1": "STK1", "LITH01.P1": "LITH01"}
    params = _cal(log, MODEL, eq, ports=ports).by_name()
    p = params["transport:stocker>Litho"]
    assert p.n == 40 and p.estimate == pytest.approx(219.5) and math.isnan(p.design)
    assert not p.drift and p.as_dict()["design"] is None
    a = params["transport:all"]
    assert a.design == 300.0 and a.n == 40 and a.drift and a.ci[1] < 300


def test_hostile_events_of_the_new_types_are_counted_not_fatal():
    """Garbage in the new fields (lone surrogates, huge numbers, deep nesting, wrong types,
    deliveries before their request, negative and extreme times) never crashes calibration;
    what cannot be read is left out and counted, and both reports print."""
    log = Log()
    deep: object = "x"
    for _ in range(100):
        deep = {"a": deep}
    add = log.add
    for k in range(35):
        _path(log, f"L{k}", [1, 2, 3, 4], k * 1000.0)
    add(10, "carrier.delivered", "C", transfer="\ud800", vehicle="V")  # before its request
    add(20, "carrier.transfer_requested", "C", transfer="\ud800", **{"from": "\ud800" * 5000,
        "to": "9" * 400})  # fmt: skip
    add(30, "carrier.transfer_requested", "C", transfer=deep, **{"from": 1, "to": None})
    add(40, "carrier.transfer_failed", "C", transfer=2**63)
    add(50, "lot.rework", "\ud800", step=2**63 - 1)
    add(60, "lot.rework", "L3", step=-5, reason=deep)
    add(70, "lot.scrap", "nobody")
    add(80, "lot.track_in", "L1", equipment="T_WE_FE_5", step=-(2**63))
    add(90, "lot.track_out", "L1", equipment="T_WE_FE_5", step=1e308)
    add(95, "equipment.state", "T_Implant_FE_7", state="scheduled_down", reason=deep)
    add(96, "equipment.state", "T_Implant_FE_7", state="scheduled_down", reason="setup",
        setup="\ud800")  # fmt: skip
    add(97, "lot.released", "\udfff", product="\ud800", wafers=10**30)
    add(-1e12, "lot.completed", "L2")  # far before the window: outside it
    add(1e12, "carrier.delivered", "C", transfer="T")  # far after
    cal = calibrate(log.sorted(), _model(), TOOLS, since=T0, until=T0 + 1e6)
    text = as_text(cal)
    doc = json.loads(as_json(cal))
    assert "rework_rate:r_A/5" in text and doc["parameters"]
    assert cal.skipped["carrier.transfer_requested events whose data lack the fields "
                       "calibration reads"] == 1  # fmt: skip
    assert cal.skipped["deliveries without a request in the window"] >= 1
    assert cal.skipped["carrier.transfer_failed events whose data lack the fields "
                       "calibration reads"] == 1  # fmt: skip
