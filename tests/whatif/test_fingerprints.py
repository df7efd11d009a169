"""Golden fingerprints: SHA-256 over the per-lot records (id, release, completion, steps
executed) of fixed, seeded runs of the reference engine. A change to the engine that moves any
lot's completion by one bit changes them: if the change is meant (a semantics fix, a new
default), regenerate them deliberately and say so in the commit:

    TWIN_DATASETS=... python tests/whatif/test_fingerprints.py

prints the current values in GOLDEN's form (paste them below). A refactoring must leave them
unchanged. The kernel's records must give the demo fab's value too.
"""

from __future__ import annotations

import hashlib
import math
import sys

import pytest

from twin.datasets import PROJECT_ROOT, hvlm_dir
from twin.process import load_model
from twin.whatif.kernel.agreement import PYSCFABSIM
from twin.whatif.reference import LotRecords, SimConfig, simulate

DEMO = PROJECT_ROOT / "scenes" / "demo-fab"

# name -> (model folder, spread mode, SimConfig): the golden runs
RUNS = {
    "demo-fab-5d": (DEMO, "full", SimConfig(days=5, seed=7)),
    # HVLM 10 days from the initial WIP (about 0.6 million events), the engine's defaults and
    # PySCFabSim's rules (which batch by operation across routes)
    "hvlm-10d": (None, "full", SimConfig(days=10, seed=1)),
    "hvlm-10d-pyscfabsim": (None, "half", SimConfig(days=10, seed=1, **PYSCFABSIM)),
}
GOLDEN = {
    "demo-fab-5d": "80ca9ea3c476d535478710c2b538448336901a11c2eb067f75c8254ea1600ef1",
    "hvlm-10d": "4439c1a8dfb626180b56469856beaf6e05af2318b5cfbaf002ce17e5dd10bc78",
    "hvlm-10d-pyscfabsim": "92c5be2d1e1c1c0c73ac3ae8e39e3cee4e0182090806106d65e4ec2ea49dcd71",
}


def _run(name: str):
    folder, spread, cfg = RUNS[name]
    model = load_model(folder if folder is not None else hvlm_dir(), ptime_spread_mode=spread)
    return model, cfg, simulate(model, cfg)


def test_demo_fab_fingerprint():
    """The demo fab's 5-day run has its golden fingerprint, in the reference and the kernel."""
    from twin.whatif.kernel import simulate_batch

    model, cfg, ref = _run("demo-fab-5d")
    assert len(ref.lots) > 50
    assert ref.lots.fingerprint() == GOLDEN["demo-fab-5d"]
    kr = simulate_batch([model], cfg, [cfg.replication], device="cpu")[0][0]
    assert kr.result().lots.fingerprint() == GOLDEN["demo-fab-5d"]


@pytest.mark.parametrize("name", ["hvlm-10d", "hvlm-10d-pyscfabsim"])  # about 4 s each
def test_hvlm_fingerprint(hvlm, name):
    """SMT2020 HVLM, 10 days (defaults; PySCFabSim's rules): the golden fingerprint."""
    _model, _cfg, ref = _run(name)
    assert len(ref.lots) > 500
    assert ref.lots.fingerprint() == GOLDEN[name]


def _records(rows) -> LotRecords:
    rec = LotRecords()
    for lot_id, release, completion, steps in rows:
        rec.id.append(lot_id)
        rec.release.append(release)
        rec.completion.append(completion)
        rec.steps_done.append(steps)
    return rec


def test_fingerprint_sees_every_field_and_bit():
    """A fingerprint changes with a lot's id, release, completion (by one ulp), steps or the
    order of lots; it is the SHA-256 of nothing for no lots."""
    rows = [("L_1", 0.0, 3600.5, 12), ("L_2", 10.0, 7200.25, 13)]
    base = _records(rows).fingerprint()
    assert _records([]).fingerprint() == hashlib.sha256(b"").hexdigest()
    assert _records(rows).fingerprint() == base
    variants = [
        [("L_3", 0.0, 3600.5, 12), rows[1]],
        [("L_1", 1.0, 3600.5, 12), rows[1]],
        [("L_1", 0.0, math.nextafter(3600.5, math.inf), 12), rows[1]],
        [("L_1", 0.0, 3600.5, 11), rows[1]],
        rows[::-1],
    ]
    assert len({_records(v).fingerprint() for v in variants} | {base}) == len(variants) + 1


def test_fingerprint_of_hostile_records():
    """Ids with separators, newlines or lone surrogates, huge, infinite and NaN times and
    enormous step counts hash without error, and a separator in an id cannot forge a row."""
    odd = [
        ("\ud800", 0.0, 1.0, 1),
        ("a|0x0.0p+0|0x1.0p+0|1\nb", -0.0, math.inf, 10**30),
        ("x" * 100_000, 1e308, math.nan, 0),
    ]
    fp = _records(odd).fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    # "a" then "b" as two lots against one lot whose id spells both rows
    two = _records([("a", 0.0, 1.0, 1), ("b", 0.0, 1.0, 1)]).fingerprint()
    one = _records([("a|0x0.0p+0|0x1.0000000000000p+0|1\nb", 0.0, 1.0, 1)]).fingerprint()
    assert two != one


if __name__ == "__main__":  # regenerate: print the current values in GOLDEN's form
    for name in RUNS:
        print(f'    "{name}": "{_run(name)[2].lots.fingerprint()}",', file=sys.stdout)
