"""The kernel against the reference under PySCFabSim's tie rules (SimConfig.due_ties,
start_together), alone and together, on the hand-built models of
tests/whatif/test_reference_peer.py: every lot, every KPI and the event count."""

from __future__ import annotations

import pytest
from test_kernel_agreement import assert_same_run

from tests.whatif.test_reference_peer import (
    arrival_first_line,
    batch_wip_line,
    release_line,
    start_wip_line,
)
from twin.whatif.kernel import simulate_batch
from twin.whatif.reference import SimConfig, simulate

MODELS = {
    "start-wip": start_wip_line,
    "start-wip-hot": lambda: start_wip_line(w1={"priority": 20}),
    "batch": batch_wip_line,
    "arrival-first": arrival_first_line,
    "release": release_line,
}
RULES = {
    "due_ties": {"due_ties": True},
    "start_together": {"start_together": True},
    "both": {"due_ties": True, "start_together": True},
    "both-full-batches": {"due_ties": True, "start_together": True, "batch_wait": "max"},
}


@pytest.mark.parametrize("rules", list(RULES), ids=list(RULES))
@pytest.mark.parametrize("model", list(MODELS), ids=list(MODELS))
def test_tie_rules_agree_exactly(device, model, rules):
    """due_ties and start_together give the kernel the reference's run on a hand model."""
    m = MODELS[model]()
    cfg = SimConfig(days=1, seed=3, **RULES[rules])
    kr = simulate_batch([m], cfg, [0], device=device)[0][0]
    assert_same_run(simulate(m, cfg), kr.result())
