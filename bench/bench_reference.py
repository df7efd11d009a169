"""Benchmark of the reference engine on SMT2020 HVLM against the published figures.

Run:  nice .venv/bin/python bench/bench_reference.py [--days 730] [--seed 0] [--rules pyscfabsim]
          [--option KEY=VALUE ...]

Prints mean cycle time and lots finished per lot type, the utilisation of the lithography
families, throughput against the release rate in the second half of the run, events per
second and wall time per simulated year. Published figures (datasets README, 730 days, FIFO):
Lot_3 66-69 d, Lot_4 38-40 d, HotLot_3 31-33 d, HotLot_4 18 d; ~19,600 Lot_3 and ~19,960
Lot_4 lots finished; litho utilisation 94-95 %.

The model runs under the rules of the published simulator (``--rules pyscfabsim``, the default
here): full batches of one operation across routes, every tool's first PM at the calendar's
first occurrence, the next PM an interval after the end of the last, downs that fall due on an
idle tool skipped, new work to the first idle tool of a family, same-tool dedication, and
processing times uniform on mean ± PTIME2/2 (see docs/whatif.md, "Model
semantics"); ``--rules twin`` runs the engine's own defaults, ``--rules smt2020`` the format
read literally. The rule sets are those of ``twin.whatif.presets`` (docs/whatif.md, "Rule
presets"), the ones ``twin whatif run --rules`` takes; ``--option KEY=VALUE`` or the single
flags below change one option on top.

The published figures are measured the way PySCFabSim's published output measures them: the
mean cycle time of EVERY lot finished in the run (its JSON has one sum per lot type over all
finished lots; the initial WIP's lots count, their release dated back from their due date by
the order's lead time, as the loader dates them too): the "CT mean" column. The "year-2 CT"
column (lots released at or after day 365) is printed beside it; a later PySCFabSim version
measures that. Utilisation of a family: processing time over the time the tools were up.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from twin.datasets import hvlm_dir
from twin.process import load_model
from twin.whatif import presets
from twin.whatif.reference import SimConfig, simulate

PUBLISHED_CT = {"Lot_3": (66, 69), "Lot_4": (38, 40), "HotLot_3": (31, 33), "HotLot_4": (18, 18)}
PUBLISHED_DONE = {"Lot_3": 19600, "Lot_4": 19960}
# the options printed with the results: those where the presets differ
SHOWN = ("batch_wait", "batch_by", "pm_first", "pm_interval_from", "idle_downs", "dedication",
         "wake", "spread")  # fmt: skip
DAY = 86400.0


def year2_cycle_times(res) -> dict[str, float]:
    """Mean cycle time (days) per lot type of the lots released at or after day 365."""
    lots = res.lots
    rel = np.asarray(lots.release, dtype=float)
    ct = (np.asarray(lots.completion, dtype=float) - rel) / DAY
    types = np.asarray(lots.lot_type, dtype=object)
    sel = rel >= res.start + 365 * DAY
    return {lt: float(ct[sel & (types == lt)].mean()) for lt in set(types[sel])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=730.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spread-mode", choices=["full", "half"], help="default: the rules' own")
    ap.add_argument("--rules", default="pyscfabsim", choices=list(presets.PRESETS))
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help=f"one option on top of the rules: {', '.join(presets.OPTIONS)}")  # fmt: skip
    ap.add_argument("--batch-wait", choices=["max", "min"])
    ap.add_argument("--batch-by", choices=["step", "operation"])
    ap.add_argument("--wake", choices=["recent", "first"])
    ap.add_argument("--pm-first", choices=["staggered", "same"])
    ap.add_argument("--pm-interval-from", choices=["start", "end"])
    ap.add_argument("--idle-downs", choices=["apply", "skip"])
    ap.add_argument("--dedication", choices=["on", "off"])
    args = ap.parse_args(argv)
    flags = {k: getattr(args, k) for k in SHOWN if getattr(args, k, None) is not None}
    if "dedication" in flags:
        flags["dedication"] = flags["dedication"] == "on"
    if args.spread_mode is not None:
        flags["spread"] = args.spread_mode
    flags.update(presets.parse_option(text) for text in args.option)
    rule_set = presets.resolve(args.rules, flags)
    rules = {k: rule_set.options[k] for k in SHOWN}
    args.spread_mode = rule_set.spread
    model = load_model(hvlm_dir(), ptime_spread_mode=args.spread_mode)
    last = [0.0]

    def progress(f: float) -> None:
        if f - last[0] >= 0.05:
            last[0] = f
            sys.stderr.write(f"\r{100 * f:5.1f} % simulated")
            sys.stderr.flush()

    t0, c0 = time.perf_counter(), time.process_time()
    cfg = SimConfig(days=args.days, seed=args.seed, **rule_set.sim_options)
    res = simulate(model, cfg, progress=progress)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    sys.stderr.write("\n")
    k = res.kpis()
    scale = args.days / 730.0
    print(f"SMT2020 HVLM, {args.days:g} simulated days, seed {args.seed}, no warm-up, uniform"
          f" spread {args.spread_mode}, rules {rule_set.describe()}: "
          + ", ".join(f"{k}={v}" for k, v in rules.items()))  # fmt: skip
    year2 = year2_cycle_times(res)
    print(f"{'lot type':<14}{'finished':>10}{'published':>11}{'CT mean d':>11}{'year-2 CT':>11}"
          f"{'published':>11}{'p95 d':>8}{'X':>6}{'on time':>9}")  # fmt: skip
    for lt, v in k["lot_types"].items():
        pub_ct = PUBLISHED_CT.get(lt)
        pub_n = PUBLISHED_DONE.get(lt)
        ct = v["cycle_time_days"]
        y2 = year2.get(lt, float("nan"))
        print(
            f"{lt:<14}{v['lots_completed']:>10}{(f'{pub_n * scale:,.0f}' if pub_n else '-'):>11}"
            f"{ct['mean']:>11.1f}{y2:>11.1f}{(f'{pub_ct[0]}-{pub_ct[1]}' if pub_ct else '-'):>11}"
            f"{ct['p95']:>8.1f}{v['x_factor']:>6.2f}{v['on_time_share']:>9.2f}"
        )
    print("CT mean: every lot finished (PySCFabSim's published measure); year-2 CT: lots released"
          " at or after day 365 and finished by the end")  # fmt: skip
    for lt, (lo, hi) in PUBLISHED_CT.items():
        ct = k["lot_types"].get(lt, {}).get("cycle_time_days", {}).get("mean", float("nan"))
        off = (ct - hi) / hi if ct > hi else (ct - lo) / lo if ct < lo else 0.0
        print(f"  {lt:<10} {ct:5.1f} d against {lo}-{hi} d: {off:+.1%} outside the published range"
              f" ({'within' if abs(off) <= 0.10 else 'NOT within'} 10 %)")  # fmt: skip
    lots = res.lots
    types = np.asarray(lots.lot_type, dtype=object)
    print("mean days per finished lot: queue / process (incl. setups, downs) / transport")
    for lt in sorted(set(lots.lot_type)):
        sel = types == lt
        q, p_, tr = (float(np.asarray(getattr(lots, a))[sel].mean()) / DAY
                     for a in ("queue_time", "process_time", "transport_time"))  # fmt: skip
        print(f"  {lt:<14}{q:7.1f}{p_:7.1f}{tr:7.1f}")
    fams = k["families"]
    litho = {f: v for f, v in fams.items() if v["area"] == "Litho"}
    print("\nlithography families (utilisation = processing incl. load/unload; +down+PM+setup;"
          " of up time = processing / (time - down - PM), PySCFabSim's utilisation)")  # fmt: skip
    for f, v in sorted(litho.items(), key=lambda x: -x[1]["utilisation"]):
        occ = v["utilisation"] + v["down_share"] + v["pm_share"] + v["setup_share"]
        up = 1.0 - v["down_share"] - v["pm_share"]
        print(f"  {f:<20}{v['tools']:>4} tools  util {v['utilisation']:6.1%}  busy+down {occ:6.1%}"
              f"  of up time {v['utilisation'] / up if up > 0 else float('nan'):6.1%}")  # fmt: skip
    top = sorted(fams.items(), key=lambda x: -x[1]["utilisation"])[:5]
    print("most utilised families: " + ", ".join(f"{f} {v['utilisation']:.1%}" for f, v in top))
    comp = np.asarray(res.lots.completion)
    half = res.start + (res.end - res.start) / 2
    second = (comp >= half).sum() / ((res.end - half) / DAY)
    rate = sum(r.rate_per_day for r in model.releases)
    print(f"\nthroughput in the second half: {second:.2f} lots/day; release rate {rate:.2f} lots/day"
          f" ({second / rate:.1%}); WIP at end {k['fab']['wip_end']} lots")  # fmt: skip
    print(f"queue-time violations: {k['queue_time_violations']} of {k['queue_time_checks']}")
    years = args.days / 365.0
    print(f"events {k['events']:,}  wall {wall:.1f} s ({wall / years:.0f} s per simulated year, "
          f"{k['events'] / wall:,.0f} events/s)  CPU {cpu:.1f} s ({cpu / years:.0f} s per "
          f"simulated year, {k['events'] / cpu:,.0f} events/s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
