"""PySCFabSim's tie rules in the reference engine (SimConfig.due_ties, start_together) on
small models with hand-computed answers (docs/whatif.md, "Agreement with PySCFabSim")."""

from __future__ import annotations

import pytest

from twin.errors import ConfigError
from twin.process.model import Release, Step, WipLot
from twin.whatif import presets
from twin.whatif.reference import SimConfig, simulate
from twin.whatif.reference.config import DAY

from .test_reference import const, fam, line


def finish_order(m, **cfg) -> list[tuple[str, int]]:
    """(lot id, completion s) in completion order over one day."""
    res = simulate(m, SimConfig(days=1, **cfg))
    return [(i, round(c)) for c, i in sorted(zip(res.lots.completion, res.lots.id))]


def start_wip_line(**kw):
    """A (one tool, 100 s); at 0 w0 (due 5000 s), w1 (due 3000 s), w2 (due 1000 s) wait for
    A, in that order (kw: per-lot WipLot fields)."""
    wip = [
        WipLot(id=i, lot_type="L", product="p", step=1, due=d, **kw.get(i, {}))
        for i, d in (("w0", 5000.0), ("w1", 3000.0), ("w2", 1000.0))
    ]
    return line([const(1, "A", 100.0)], [fam("A")], count=0, wip=wip)


def batch_wip_line():
    """B (one tool, full batches of two lots, 100 s); at 0 a (due 900 s), b (due 500 s) and
    c (due 100 s) wait for B."""
    wip = [
        WipLot(id=i, lot_type="L", product="p", step=1, due=d)
        for i, d in (("a", 900.0), ("b", 500.0), ("c", 100.0))
    ]
    steps = [Step(number=1, family="B", dist="constant", mean=100.0, per="batch",
                  batch_min=50, batch_max=50)]  # fmt: skip
    return line(steps, [fam("B")], count=0, wip=wip)


def arrival_first_line():
    """A (one tool, 100 s) after C (10 s): at 0 x (due 5000 s) and z (due 9000 s) wait for A,
    y (due 1 s) for C, so y reaches A at 10 s, after z."""
    wip = [
        WipLot(id=i, lot_type="L", product="p", step=s, due=d)
        for i, s, d in (("x", 2, 5000.0), ("z", 2, 9000.0), ("y", 1, 1.0))
    ]
    return line([const(1, "C", 10.0), const(2, "A", 100.0)], [fam("A"), fam("C")], count=0,
                wip=wip)  # fmt: skip


def release_line():
    """A (one tool, 100 s): w (regular) at 0 in the WIP, and a hot lot released at 0."""
    wip = [WipLot(id="w", lot_type="L", product="p", step=1)]
    m = line([const(1, "A", 100.0)], [fam("A")], count=0, wip=wip)
    m.releases = [Release(lot_type="H", product="p", interval=DAY, count=1, priority=20)]
    return m


def test_defaults_take_start_lots_in_arrival_order():
    """Without the options the first lot at the start takes the idle tool, the others follow
    in arrival (sequence) order whatever their due dates."""
    assert finish_order(start_wip_line()) == [("w0", 100), ("w1", 200), ("w2", 300)]


def test_due_ties_take_lots_of_one_instant_earliest_due_first():
    """due_ties: lots that arrived at the same instant go earliest due first (w0 found the
    tool idle at the start, then w2 before w1)."""
    assert finish_order(start_wip_line(), due_ties=True) == [("w0", 100), ("w2", 200),
                                                              ("w1", 300)]  # fmt: skip


def test_start_together_queues_every_start_lot_before_a_tool_chooses():
    """start_together with due_ties: the tool chooses among all lots of the start instant, so
    the earliest due (w2) goes first; start_together alone keeps the sequence order."""
    m = start_wip_line()
    assert finish_order(m, start_together=True) == [("w0", 100), ("w1", 200), ("w2", 300)]
    assert finish_order(m, start_together=True, due_ties=True) == [
        ("w2", 100), ("w1", 200), ("w0", 300)]  # fmt: skip


def test_start_together_gives_the_tool_to_the_best_ranked_start_lot():
    """start_together: a hot lot listed after a regular one takes the tool at the start (the
    family's ranks decide); without it the first listed lot takes it on arrival."""
    m = start_wip_line(w1={"priority": 20})
    assert finish_order(m) == [("w0", 100), ("w1", 200), ("w2", 300)]
    assert finish_order(m, start_together=True) == [("w1", 100), ("w0", 200), ("w2", 300)]


def test_start_together_counts_releases_at_the_start():
    """start_together: a hot lot released at the start instant is queued with the WIP before
    the tool chooses, and goes first; without it the WIP lot takes the idle tool."""
    m = release_line()
    assert finish_order(m) == [("w", 100), ("H_1", 200)]
    assert finish_order(m, start_together=True) == [("H_1", 100), ("w", 200)]


def test_due_ties_order_batches():
    """due_ties in a batch family: with start_together the full batch takes the two earliest
    due lots (c, b), and a waits for a partner; without due_ties a and b go."""
    m = batch_wip_line()
    cfg = {"batch_wait": "max", "start_together": True}
    assert finish_order(m, **cfg) == [("a", 100), ("b", 100)]
    assert finish_order(m, **cfg, due_ties=True) == [("b", 100), ("c", 100)]


def test_due_ties_only_break_ties_of_arrival():
    """due_ties never puts an earlier due before an earlier arrival: y (due 1 s, arrived at
    10 s) waits behind z (due 9000 s, arrived at 0)."""
    m = arrival_first_line()
    want = [("x", 100), ("z", 200), ("y", 300)]
    assert finish_order(m) == want
    assert finish_order(m, due_ties=True) == want
    assert finish_order(m, due_ties=True, start_together=True) == want


def test_due_ties_do_not_change_a_run_without_ties():
    """Releases at distinct instants never tie: due_ties and start_together change nothing
    (lots, completions and event count) on a line without initial WIP."""
    m = line([const(1, "A", 100.0), const(2, "A", 50.0)], [fam("A", count=2)], interval=70.0)
    a = simulate(m, SimConfig(days=0.5))
    b = simulate(m, SimConfig(days=0.5, due_ties=True, start_together=True))
    assert len(a.lots) > 100
    assert a.lots.completion == b.lots.completion and a.lots.id == b.lots.id


@pytest.mark.parametrize("name", ["due_ties", "start_together"])
@pytest.mark.parametrize("value", ["\ud800", 10**400, "maybe" * 10**5, [[[]]], None])
def test_options_refuse_garbage(name, value):
    """A preset option given garbage (a lone surrogate, a huge number, a long text, deep
    nesting, None) is refused with a ConfigError naming the option and the accepted values."""
    with pytest.raises(ConfigError, match=name):
        presets.resolve("pyscfabsim", {name: value})


def test_pyscfabsim_preset_sets_the_tie_rules():
    """The pyscfabsim preset sets both tie rules; the twin and smt2020 presets leave them off."""
    assert presets.sim_options("pyscfabsim")["due_ties"] is True
    assert presets.sim_options("pyscfabsim")["start_together"] is True
    for name in ("twin", "smt2020"):
        opts = presets.sim_options(name)
        assert opts["due_ties"] is False and opts["start_together"] is False
