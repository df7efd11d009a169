"""The calibrated SMT2020 folder carries the new estimates where the format has a field."""

from __future__ import annotations

import shutil

import pytest

from tests.calibrate.test_flow import TOOLS, _path
from tests.calibrate.test_maintenance import IMPLANT, PM_MEAN, _pm_log, _setup_log
from tests.calibrate.util import DEMO, LITHO, Log
from twin.calibrate import calibrate
from twin.calibrate.write import write_calibrated
from twin.process import load_model

MODEL = load_model(DEMO / "process")


def _write(log: Log, model, folder, out, equipment, **kw):
    evs = log.sorted()
    cal = calibrate(evs, model, equipment, since=evs[0].time, until=evs[-1].time, **kw)
    return cal, load_model(write_calibrated(model, cal, folder, out))


def test_pm_setup_and_transport_written(tmp_path):
    """PM duration x 1.5 -> pmcal MTTR and MTTR2 x the factor; setups x 1.2 -> setup.txt STIME
    x the factor; transfers of 600 s -> fromto DTIME x 2; untouched calendars as designed."""
    log = _pm_log([1.5 * PM_MEAN] * 12)
    for e in _setup_log([1.2 * 1800.0] * 12).events:
        log.add(e.time - log.events[0].time + 10, e.type, e.subject, **e.data)
    for k in range(40):
        log.add(k * 1000.0 + 5, "carrier.transfer_requested", f"C{k}", transfer=f"T{k}",
                **{"from": "A", "to": "B"})  # fmt: skip
        log.add(k * 1000.0 + 605, "carrier.delivered", f"C{k}", transfer=f"T{k}")
    cal, out = _write(log, MODEL, DEMO / "process", tmp_path / "o", {**LITHO, **IMPLANT})
    f = cal.by_name()["pm_duration:Litho_FE_3"].factor
    assert f == pytest.approx(1.5)
    pm, d = out.pms["Litho_FE_3_MN"].duration, MODEL.pms["Litho_FE_3_MN"].duration
    assert (pm.mean, pm.spread) == pytest.approx((d.mean * f, d.spread * f))
    assert out.pms["Diffusion_FE_1_MN"] == MODEL.pms["Diffusion_FE_1_MN"]
    g = cal.by_name()["setup_time:Implant_FE_7"].factor
    assert g == pytest.approx(1.2)
    assert out.setup_times[(None, "SU_L1")] == pytest.approx(1800.0 * g)
    assert out.transport.mean == pytest.approx(600.0)
    assert out.transport.spread == pytest.approx(MODEL.transport.spread * 2.0)


def test_rework_and_sampling_rates_written(tmp_path):
    """Estimated rates on enough data replace REWORK and StepPercent of their step (percent);
    other steps keep theirs; processing estimates below 0 (49 s runs against 120 s of load and
    unload) write nothing (the folder loads)."""
    folder = tmp_path / "process"
    shutil.copytree(DEMO / "process", folder)
    route = folder / "route_A.txt"
    lines = route.read_text().splitlines()
    head = lines[0].split("\t")
    for i, line in enumerate(lines[1:], start=1):
        parts = line.split("\t")
        if parts[1] == "5":
            parts[head.index("RWKSTEP")], parts[head.index("REWORK")] = "4", "20"
        if parts[1] == "3":
            parts[head.index("StepPercent")] = "50"
        lines[i] = "\t".join(parts)
    route.write_text("\n".join(lines) + "\n")
    model = load_model(folder)
    log = Log()
    t = 0.0
    for k in range(100):
        seq = (
            [1, 2, 4, 5, 6]
            if k < 30
            else [1, 2, 3, 4, 5, 4, 5, 6]
            if k < 60
            else [1, 2, 3, 4, 5, 6]
        )
        t = _path(log, f"L{k}", seq, t)
    cal, out = _write(log, model, folder, tmp_path / "o", TOOLS)
    steps = {s.number: s for s in out.routes["r_A"].steps}
    assert cal.by_name()["rework_rate:r_A/5"].estimate == pytest.approx(0.3)
    assert steps[5].rework_prob == pytest.approx(0.3) and steps[5].rework_step == 4
    assert steps[3].sampling_percent == pytest.approx(70.0)
    assert steps[4].sampling_percent == 100.0 and steps[4].rework_prob == 0.0
