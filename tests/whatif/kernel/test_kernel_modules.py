"""The kernel's modules (one per section of the simulation): the same Warp options in each,
every one in the AOT fingerprint; the one job-slot helper used by both of its callers and the
one start-state check used by both engines."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from models import toy_fab

import twin.whatif.kernel as pkg
from twin.errors import InputError
from twin.whatif.kernel import CapacityError, aot, simulate_batch
from twin.whatif.reference import SimConfig, simulate
from twin.whatif.reference.config import LotState, StartState, ToolState

FOLDER = Path(pkg.__file__).parent
WARP_MODULES = sorted(
    p.name for p in FOLDER.glob("*.py") if re.search(r"^@wp\.(func|kernel)\b", p.read_text(), re.M)
)


def test_warp_modules_are_found():
    """The scan below sees the kernel's sections (a failed scan would make the others vacuous)."""
    assert {"kernel.py", "heap.py", "lots.py", "queues.py", "tools.py", "dispatch.py",
            "events.py", "init.py", "rng.py"} <= set(WARP_MODULES)  # fmt: skip


@pytest.mark.parametrize("name", WARP_MODULES)
def test_every_kernel_module_has_the_options(name):
    """Each module with Warp functions compiles with options.OPTIONS (no FMA contraction),
    set through options.configure: exact agreement depends on them."""
    import warp as wp

    from twin.whatif.kernel.options import OPTIONS

    mod = importlib.import_module(f"twin.whatif.kernel.{name[:-3]}")
    got = wp.get_module_options(mod)
    assert {k: got.get(k) for k in OPTIONS} == OPTIONS


def test_aot_fingerprint_covers_every_kernel_module():
    """A CUBIN's fingerprint hashes every module the kernel is compiled from, so a change in
    any of them makes check_cubin refuse a stale build."""
    assert set(WARP_MODULES) | {"options.py", "layout.py"} <= set(aot.SOURCES)
    assert all((FOLDER / name).exists() for name in aot.SOURCES)


def _processing_start(t0: float) -> StartState:
    lots = [
        LotState(id=f"p{k}", product="PA", step=3, status="processing", tool=f"C#{k}",
                 until=t0 + 900 * k, release=t0 - 9000)
        for k in (1, 2)
    ]  # fmt: skip
    return StartState(time=t0, lots=lots)


def test_full_job_table_is_reported_at_start_and_during_the_run():
    """The one job-slot helper refuses a full job table wherever a job starts: the start
    state's processing lots (set-up) and dispatching (the loop) both give CapacityError, and
    with growing the run agrees with the reference."""
    model = toy_fab()
    model.wip = []
    cfg = SimConfig(days=2, seed=3)
    start = _processing_start(86400.0)
    with pytest.raises(CapacityError, match="job table"):  # two processing lots, one slot
        simulate_batch([model], cfg, [0], start=start, device="cpu", capacity={"jobs": 1},
                       grow=False)  # fmt: skip
    with pytest.raises(CapacityError, match="job table"):  # jobs started by dispatching
        simulate_batch([toy_fab()], cfg, [0], device="cpu", capacity={"jobs": 1}, grow=False)
    kr = simulate_batch([model], cfg, [0], start=start, device="cpu", capacity={"jobs": 1})[0][0]
    ref = simulate(model, cfg, start=start)
    assert kr.result().lots.completion == ref.lots.completion
    assert kr.events == ref.events


def _problems(run) -> str:
    with pytest.raises(InputError) as info:
        run()
    return str(info.value)


@pytest.mark.parametrize("status", ["parked", "\ud800", ["queued"], "", "PROCESSING"])
def test_both_engines_refuse_a_start_state_alike(status):
    """One check (reference.start.start_lot_check) for both engines: a start state's unknown
    tool, unknown product, step outside the route, unknown status (garbage, lone surrogate, a
    list) and processing lot on an unknown tool give the same InputError, naming every one."""
    model = toy_fab()
    model.wip = []
    t0 = 86400.0
    start = StartState(
        time=t0,
        lots=[
            LotState(id="a", product="P9", step=1),
            LotState(id="b", product="PA", step=10**9),
            LotState(id="c", product="PA", step=2, status=status),
            LotState(id="d", product="PA", step=3, status="processing", tool="C#99"),
            LotState(id="e", product="PA", step=2),
        ],
        tools={"Nope#1": ToolState(), "\ud800": ToolState()},
    )
    cfg = SimConfig(days=1, seed=1)
    ref = _problems(lambda: simulate(model, cfg, start=start))
    ker = _problems(lambda: simulate_batch([model], cfg, [0], start=start, device="cpu"))
    assert ref == ker
    for part in ("'Nope#1' is not a tool", "'\\ud800' is not a tool", "lot a: unknown product",
                 "lot b: step 1000000000 not in route", f"lot c: status {status!r}",
                 "lot d: processing on unknown tool 'C#99'"):  # fmt: skip
        assert part in ref
    assert "lot e" not in ref
