"""Agreement with PySCFabSim: cycle time per lot type, the reference engine (``--rules
pyscfabsim``) against a local PySCFabSim checkout, on the same SMT2020 data, horizon and seeds.

Run:  nice .venv/bin/python bench/bench_peer.py --peer DIR [--days 60] [--seeds 0 1 2 3 4]
          [--rules pyscfabsim] [--option KEY=VALUE ...] [--python PYTHON]

``--peer`` (or the environment variable PYSCFABSIM_DIR) is a folder holding PySCFabSim's
``simulation`` package (github.com/prosysscience/PySCFabSim-release; nothing of it is in this
project). Without one the bench says how to get it and exits with status 2.

Both sides measure what PySCFabSim's published output measures: the mean cycle time of EVERY
lot finished in the run, per lot type (the initial WIP's lots included, their release dated
back from the due date by the order's lead time). PySCFabSim runs its lot-for-machine greedy
dispatcher with FIFO (its published setting), seeded through its Randomizer; its random
streams are not ours, so the seeds are compared by their mean and a 95 % interval (Student t
over the seeds), and seed by seed in the second table. Each PySCFabSim run takes about 80 CPU
s per 60 days of HVLM (ours about 15 s).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from twin.datasets import hvlm_dir
from twin.process import load_model
from twin.whatif import presets
from twin.whatif.reference import SimConfig, simulate

DAY = 86400.0
TYPES = ("Lot_3", "Lot_4", "HotLot_3", "HotLot_4")
HOW = """PySCFabSim was not found. Get it (it is not part of this project), for example:
  git clone https://github.com/prosysscience/PySCFabSim-release /some/where/PySCFabSim
  python3 -m venv /some/where/venv && /some/where/venv/bin/pip install <what it imports>
then run
  bench/bench_peer.py --peer /some/where/PySCFabSim [--python /some/where/venv/bin/python]
or set PYSCFABSIM_DIR=/some/where/PySCFabSim."""

# Runs in PySCFabSim's interpreter: its own loop of the lot-for-machine greedy dispatcher,
# through its public classes; prints one JSON line (lot type -> [finished, summed CT in days]).
PEER_DRIVER = r"""
import json, sys
peer, data, days, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path[:0] = [peer, peer + '/simulation']
from simulation.randomizer import Randomizer
from simulation.read import read_all
from simulation.file_instance import FileInstance
from simulation.dispatching.dispatcher import dispatcher_map
from simulation.greedy import get_lots_to_dispatch_by_machine
files = read_all(data)
run_to = 86400 * days
Randomizer().random.seed(seed)
inst = FileInstance(files, run_to, True, [])
rule = dispatcher_map['fifo']
while not inst.done:
    if inst.next_decision_point() or inst.current_time > run_to:
        break
    machine, lots = get_lots_to_dispatch_by_machine(inst, rule)
    if lots is None:
        inst.usable_machines.remove(machine)
    else:
        inst.dispatch(machine, lots)
out = {}
for lot in inst.done_lots:
    n, s = out.get(lot.name, (0, 0.0))
    out[lot.name] = (n + 1, s + (lot.done_at - lot.release_at) / 86400)
print(json.dumps(out))
"""


def peer_dir(arg: str | None) -> Path | None:
    """The PySCFabSim folder (``--peer``, else PYSCFABSIM_DIR) when it holds its package."""
    raw = arg or os.environ.get("PYSCFABSIM_DIR")
    if not raw:
        return None
    path = Path(raw).expanduser()
    return path if (path / "simulation" / "greedy.py").is_file() else None


def run_peer(python: str, peer: Path, data: Path, days: int, seed: int) -> dict[str, float]:
    """Mean cycle time (days) per lot type of one PySCFabSim run."""
    cmd = [python, "-c", PEER_DRIVER, str(peer), str(data), str(days), str(seed)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=peer, check=False)
    if out.returncode != 0:
        raise SystemExit(f"PySCFabSim failed (seed {seed}):\n{out.stderr[-2000:]}")
    sums = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: s / n for k, (n, s) in sums.items() if n}


def run_ours(model, rule_set, days: int, seed: int) -> dict[str, float]:
    """Mean cycle time (days) per lot type of one reference run, every finished lot."""
    res = simulate(model, SimConfig(days=days, seed=seed, **rule_set.sim_options))
    lots = res.lots
    ct = (np.asarray(lots.completion, dtype=float) - np.asarray(lots.release, dtype=float)) / DAY
    types = np.asarray(lots.lot_type, dtype=object)
    return {t: float(ct[types == t].mean()) for t in set(types)}


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % interval (Student t; 0 for one value)."""
    t95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, 0.0
    return mean, t95.get(n, 1.96) * float(np.std(values, ddof=1)) / math.sqrt(n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", help="PySCFabSim checkout (default: $PYSCFABSIM_DIR)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for PySCFabSim")
    ap.add_argument("--data", default=None, help="SMT2020 folder (default: HVLM)")
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--rules", default="pyscfabsim", choices=list(presets.PRESETS))
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    peer = peer_dir(args.peer)
    if peer is None:
        print(HOW, file=sys.stderr)
        return 2
    if not 0 < args.days <= 3650:
        ap.error("--days: 1 to 3650")
    data = Path(args.data) if args.data else hvlm_dir()
    rule_set = presets.resolve(args.rules, dict(presets.parse_option(t) for t in args.option))
    model = load_model(data, ptime_spread_mode=rule_set.spread)
    print("command: " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]))
    print(f"{data.name}, {args.days} days, seeds {args.seeds}, ours: reference engine, rules "
          f"{rule_set.describe()}; PySCFabSim: lot-for-machine greedy, fifo")  # fmt: skip
    ours, theirs = [], []
    for seed in args.seeds:
        t0 = time.process_time()
        ours.append(run_ours(model, rule_set, args.days, seed))
        t1 = time.process_time()
        w0 = time.perf_counter()
        theirs.append(run_peer(args.python, peer, data, args.days, seed))
        print(f"  seed {seed}: ours {t1 - t0:.0f} CPU s, PySCFabSim {time.perf_counter() - w0:.0f}"
              " s wall", file=sys.stderr)  # fmt: skip
    types = [t for t in TYPES if all(t in r for r in ours + theirs)]
    types += sorted({t for r in ours for t in r} - set(types) - {"SuperHotLot_3"})
    print(f"\n{'lot type':<12}{'PySCFabSim d':>16}{'ours d':>16}{'ours - peer':>13}")
    for t in types:
        pm, ph = interval([r.get(t, math.nan) for r in theirs])
        om, oh = interval([r.get(t, math.nan) for r in ours])
        print(f"{t:<12}{pm:>9.2f} ± {ph:<4.2f}{om:>9.2f} ± {oh:<4.2f}{(om - pm) / pm:>+12.1%}")
    print("(mean over the seeds ± half-width of its 95 % interval)\n\nseed by seed, ours - peer:")
    for seed, o, p in zip(args.seeds, ours, theirs, strict=True):
        diffs = ", ".join(f"{t} {(o[t] - p[t]) / p[t]:+.1%}" for t in types if t in o and t in p)
        print(f"  seed {seed}: {diffs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
