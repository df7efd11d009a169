"""Kernel against reference, option by option: the cases both the tests and
``bench/bench_agreement.py`` run, and a comparison of two runs' lot records.

A case is a name, the ``SimConfig`` options it sets and the uniform spread mode the model is
loaded with (``load_model(..., ptime_spread_mode=...)``). ``option_cases()`` gives the
engine's defaults, every ``SimConfig`` option on its own at each non-default value, the half
spread, and PySCFabSim's rule set (``bench/bench_reference.py``) with all of them together.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from twin.whatif import presets
from twin.whatif.reference.config import (
    SimConfig,
)

DAY = 86400.0

# the SimConfig fields that are not model options: the run's identity and its horizon, and
# record_steps (the kernel refuses it: the reference alone records per-step times)
NOT_OPTIONS = frozenset({"days", "seed", "replication", "record_steps"})
CHOICES = {  # the options that take one of a few texts (the presets' list; spread is the model's)
    k: v for k, v in presets.OPTIONS.items() if isinstance(v, tuple) and k != "spread"
}
# PySCFabSim's rule set: the one definition of the presets (twin.whatif.presets)
PYSCFABSIM = presets.sim_options("pyscfabsim")


@dataclasses.dataclass(frozen=True)
class Case:
    """One configuration both engines run: SimConfig options and the model's spread mode."""

    name: str
    options: dict[str, Any]
    spread: str = "full"

    def config(self, days: float, seed: int = 0, replication: int = 0) -> SimConfig:
        """The SimConfig of this case for a horizon (warm-up options scale with it)."""
        opts = dict(self.options)
        if "warmup_days" in opts:
            opts["warmup_days"] = opts["warmup_days"] * days
        return SimConfig(days=days, seed=seed, replication=replication, **opts)


def option_cases() -> list[Case]:
    """The defaults, each SimConfig option alone at each value other than its default, the
    half spread, and PySCFabSim's rules (a ``warmup_days`` value is a share of the horizon)."""
    default = SimConfig(days=1)
    cases = [Case("defaults", {})]
    for f in dataclasses.fields(SimConfig):
        if f.name in NOT_OPTIONS:
            continue
        now = getattr(default, f.name)
        if isinstance(now, bool):
            values: tuple = (not now,)
        elif f.name in CHOICES:
            values = tuple(v for v in CHOICES[f.name] if v != now)
        elif f.name == "warmup_days":
            values = (0.25,)  # a quarter of the horizon
        elif f.name == "wip_sample_days":
            values = (0.25,)
        else:  # a new option must get its case here (the tests check that none is missed)
            raise NotImplementedError(f"SimConfig.{f.name}: no agreement case for it")
        for v in values:
            cases.append(Case(f"{f.name}={v}", {f.name: v}))
    cases.append(Case("spread=half", {}, spread="half"))
    cases.append(Case("pyscfabsim", dict(PYSCFABSIM), spread="half"))
    return cases


# SMT2020 FWLRANK lists both engines must agree on over HVLM, given to every tool family (the
# rule_LSSU families keep setup first): LVHM's list, the critical ratio alone after FIFO, and
# arrival before priority
RANK_LISTS = {
    "ranks=hp;setup;cr": ("hp", "setup", "cr"),
    "ranks=cr;fifo": ("cr", "fifo"),
    "ranks=fifo;hp": ("fifo", "hp"),
}


def rank_cases() -> list[Case]:
    """HVLM agreement cases with other dispatching ranks (``with_ranks`` makes the model):
    the options are the engine's defaults; the case's name says the ranks."""
    return [Case(name, {}) for name in RANK_LISTS]


def with_ranks(model, case: Case):
    """A copy of the model whose families all list the case's ranks (RANK_LISTS)."""
    ranks = RANK_LISTS[case.name]
    fams = {
        n: f if f.is_delay else dataclasses.replace(f, ranks=ranks)
        for n, f in model.families.items()
    }
    return dataclasses.replace(model, families=fams)


def compare(ref, ker) -> dict:
    """Lots finished by each engine and the first completion (in days, by completion order)
    where the two records differ in lot or time; ``first_diff`` is None when every lot's id,
    completion, queue, process and transport time and steps agree and the event counts too."""
    a, b = ref.lots, ker.lots
    first = math.inf
    for i in range(min(len(a), len(b))):
        ra = (a.id[i], a.completion[i], a.queue_time[i], a.process_time[i],
              a.transport_time[i], a.steps_done[i])  # fmt: skip
        rb = (b.id[i], b.completion[i], b.queue_time[i], b.process_time[i],
              b.transport_time[i], b.steps_done[i])  # fmt: skip
        if ra != rb:
            first = min(a.completion[i], b.completion[i])
            break
    else:
        if len(a) != len(b):
            longer = a if len(a) > len(b) else b
            first = longer.completion[min(len(a), len(b))]
    same = first == math.inf and ref.events == ker.events
    if first == math.inf and not same:
        first = ref.end  # same lots, different event counts: the difference is after them
    return {
        "ref_lots": len(a),
        "kernel_lots": len(b),
        "ref_events": ref.events,
        "kernel_events": ker.events,
        "first_diff": None if same else (first - ref.start) / DAY,
    }
