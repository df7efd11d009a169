"""Calibration benchmark: seconds to calibrate from N days of fab events in an SQLite store.

    .venv/bin/python bench/bench_calibrate.py [--fab demo|hvlm] [--days 30] [--seed 0] [--store DB]

The events are the MES part of the stream (lot releases, track-in/out, completions, E10
equipment states) that the reference engine produces for the model (``--fab hvlm``: SMT2020 HVLM from
TWIN_DATASETS, with its initial WIP; ``--fab demo``: the demo fab), written to a store with the
tool -> family catalog recorded, as ``twin ingest`` leaves it. The emulator's AMHS events are
not generated (calibration reads only transfer requests and deliveries of them, about one of
each per move; the reference engine has no vehicles). Prints a
table: events, track-outs, the time to generate and store them, and the time of
``calibrate_store`` (read + estimate), wall and CPU. Target: <= 60 s for 30 days of HVLM.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.calibrate import calibrate_store  # noqa: E402
from twin.live.catalog import Catalog  # noqa: E402
from twin.live.events import Event  # noqa: E402
from twin.live.store import SQLiteStore  # noqa: E402
from twin.process import load_model  # noqa: E402
from twin.whatif.reference import SimConfig  # noqa: E402
from twin.whatif.reference.engine import ARRIVE, Engine  # noqa: E402

EPOCH = 1_767_225_600.0


def events_of(model, days: float, seed: int, wip: bool) -> tuple[list[Event], dict[str, str]]:
    """The MES events of one reference-engine run, and its tool -> family map."""
    out: list[Event] = []
    tools: dict[str, str] = {}

    def obs(kind: str, t: float, **f) -> None:
        n = len(out) + 1
        time_ = EPOCH + t
        if kind in ("track_in", "track_out"):
            tools[f["tool"]] = f["family"]
            data = {"equipment": f["tool"], "step": int(f["step"])}
            out.append(Event(f"mes:{n}", "mes", n, time_, f"lot.{kind}", f["lot"], data))
        elif kind == "tool_state":
            tools[f["tool"]] = f["family"]
            data = {"state": f["state"], "reason": f["reason"]}
            out.append(Event(f"mes:{n}", "mes", n, time_, "equipment.state", f["tool"], data))
        elif kind == "lot_released":
            data = {"product": f["product"], "priority": int(f["priority"])}
            out.append(Event(f"mes:{n}", "mes", n, time_, "lot.released", f["lot"], data))
        elif kind == "lot_completed":
            out.append(Event(f"mes:{n}", "mes", n, time_, "lot.completed", f["lot"], {}))

    class _Engine(Engine):  # E10 around setups as the emulator reports them (emulator.py)
        def _arrive(self, lot, t):
            if type(lot) is not tuple:
                return super()._arrive(lot, t)
            tool, job = lot  # the end of a setup: productive, unless the tool went down
            if job in tool.jobs and tool.state == ("scheduled_down", "setup"):
                if tool.down_until <= t:
                    self._state(tool, t, "productive", "processing")

        def _start(self, tool, lots, st, t):
            if tool.state[0] not in ("productive", "standby"):  # ready between two runs
                tool.state = ("standby", "ready")
            super()._start(tool, lots, st, t)
            job = tool.jobs[-1]
            if job.setup > 0:
                self._push(t + job.setup, ARRIVE, (tool, job))

    cfg = SimConfig(days=days, seed=seed, initial_wip=wip, wip_sample_days=days)
    _Engine(model, cfg, None, obs).run()
    out.sort(key=lambda e: (e.time, e.seq))
    return out, tools


def false_drift(model, args) -> None:
    """The false-drift rate per kind of parameter: the design model against its own engine."""
    from collections import Counter

    from twin.calibrate import calibrate

    tests: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    for seed in range(args.false_drift):
        events, tools = events_of(model, args.days, seed, wip=args.fab == "hvlm")
        cal = calibrate(events, model, tools, since=events[0].time, until=events[-1].time)
        for p in cal.parameters:
            if not p.thin:
                tests[p.kind] += 1
                flagged[p.kind] += p.drift
                if p.drift:
                    print(f"  seed {seed}: {p.name} x {p.factor:.4f} (n {p.n})")
    for kind in tests:
        print(
            f"{args.fab}, {args.days:g} d, {args.false_drift} seeds, {kind}: {flagged[kind]} "
            f"of {tests[kind]} flagged, false-drift rate {flagged[kind] / tests[kind]:.1%}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fab", choices=("demo", "hvlm"), default="demo")
    ap.add_argument("--days", type=float, default=30.0, help="fab days of events")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--false-drift",
        type=int,
        metavar="K",
        help="instead: K runs (seeds 0..K-1) of the design model; print the share of "
        "parameters flagged as drift, per kind (expected about 5 %%)",
    )
    ap.add_argument(
        "--store",
        metavar="DB",
        help="keep the store at DB (written if it does not exist; if it does, only "
        "calibrate_store is timed on it, so a loaded machine can be measured again)",
    )
    args = ap.parse_args()
    if args.fab == "hvlm":
        from twin.datasets import hvlm_dir

        path = hvlm_dir()
    else:
        path = ROOT / "scenes" / "demo-fab" / "process"
    model = load_model(path)
    if args.false_drift:
        false_drift(model, args)
        return
    if args.store and Path(args.store).exists():
        wall, cpu = time.perf_counter(), time.process_time()
        cal, _ = calibrate_store(args.store, path)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"calibrate_store on {args.store}: wall {wall:.2f} s, CPU {cpu:.2f} s, "
              f"{len(cal.parameters)} parameters, {sum(p.drift for p in cal.parameters)} drifted")  # fmt: skip
        return
    t0 = time.perf_counter()
    events, tools = events_of(model, args.days, args.seed, wip=args.fab == "hvlm")
    t_gen = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.store) if args.store else Path(tmp) / "events.db"
        t0 = time.perf_counter()
        store = SQLiteStore(db, synchronous="NORMAL")
        store.put_meta("catalog", json.dumps(Catalog(equipment=dict(tools)).to_dict()))
        for i in range(0, len(events), 20_000):
            store.append(events[i : i + 20_000])
        store.close()
        t_store = time.perf_counter() - t0
        wall, cpu = time.perf_counter(), time.process_time()
        cal, _ = calibrate_store(db, path)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    outs = sum(e.type == "lot.track_out" for e in events)
    drift = [p.name for p in cal.parameters if p.drift]
    rows = [
        ("fab, days of events", f"{args.fab}, {args.days:g} d (seed {args.seed})"),
        ("events (MES)", f"{len(events):,}"),
        ("  track-outs", f"{outs:,}"),
        ("tools / families", f"{len(tools):,} / {len(set(tools.values()))}"),
        ("generate (reference engine)", f"{t_gen:.1f} s"),
        ("write to the store", f"{t_store:.1f} s"),
        ("calibrate_store wall", f"{wall:.2f} s"),
        ("calibrate_store CPU", f"{cpu:.2f} s"),
        ("parameters / thin / drifted", f"{len(cal.parameters)} / "
         f"{sum(bool(p.thin) for p in cal.parameters)} / {len(drift)}"),
        ("left out", ", ".join(f"{n} {why}" for why, n in cal.skipped.items()) or "nothing"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if drift:
        print("drifted (the design model vs. its own engine: expect ~5 % by chance):")
        print("  " + ", ".join(drift[:20]))


if __name__ == "__main__":
    main()
