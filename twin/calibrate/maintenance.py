"""PM intervals and durations, and setup times, per tool family from E10 spells (docs/forecast.md).

- ``pm_duration:<family>``: complete ``scheduled_down`` spells with reason ``pm``, each as a
  ratio to the expected duration of the family's PM calendar nearest to it (t-interval). A spell that a breakdown cuts short (censored) or that starts while the tool is
  under repair (it then holds the rest of the repair) is left out and counted.
- ``pm_interval:<family>``: the family's exposure (tool time, or wafers processed for
  wafer-count calendars) over the PMs begun (chi-square, time-truncated; a PM schedule is more
  regular than Poisson, so the interval is conservative).
- ``setup_time:<family>`` (and ``setup_time:<family>/<from>><to>`` for the model's explicit
  from-to pairs): ``scheduled_down`` spells with reason ``setup`` that end in an up state (the
  emulator reports ``standby``/``ready``, then ``productive``, at the end of a setup), as
  ratios to the design setup time of their change (model.setup_time), t-interval.
"""

from __future__ import annotations

import math
from collections import defaultdict

from twin.live.events import UP_STATES
from twin.process.model import Dist, FabModel

from . import stats

_UNKNOWN = "\x00unknown setup"  # the setup of a tool before its first setup in the window


def spell_ends(changes: list[tuple[float, str, str]], until: float) -> list[tuple[float, str]]:
    """For each change: (when the spell it starts ends, the state it ends in; "" when open at
    ``until`` or ended by a report of the same state and reason)."""
    out = []
    for i, (_, state, reason) in enumerate(changes):
        j = i + 1
        while j < len(changes) and changes[j][1] == state and changes[j][2] == reason:
            j += 1
        out.append((changes[j][0], changes[j][1]) if j < len(changes) else (until, ""))
    return out


def expected(d: Dist, spread_mode: str) -> float:
    """Expected value of a sampled duration (a uniform cut at 0 has a larger mean)."""
    if d.kind == "uniform":
        lo, hi = d.bounds(spread_mode)
        return (lo + hi) / 2
    return d.mean


def pms(spells, model: FabModel, equipment, fam_wafers, since, until, skipped, make):
    """``pm_duration`` and ``pm_interval`` per family with a PM calendar."""
    starts: dict[str, int] = defaultdict(int)
    durations: dict[str, list[float]] = defaultdict(list)
    for eq, changes in spells.items():
        fam = equipment.get(eq)
        if fam is None:
            continue
        ends = spell_ends(changes, until)
        prev = ("", "")
        for (t, state, reason), (end, nxt) in zip(changes, ends, strict=True):
            cur = (state, reason.lower())
            if cur == ("scheduled_down", "pm") and prev != cur:
                starts[fam] += 1
                if prev[0] == "unscheduled_down":
                    _count(skipped, "PM spells begun during a repair (they hold its rest)")
                elif nxt in UP_STATES:
                    durations[fam].append(end - t)
                elif nxt:
                    _count(skipped, "PM spells cut short by a breakdown (censored)")
            prev = cur
    tools: dict[str, int] = defaultdict(int)
    for fam in equipment.values():
        if fam is not None:
            tools[fam] += 1
    span = until - since
    out = []
    for name in sorted(model.families):
        cals = [model.pms[a.calendar] for a in model.calendars_of(name)
                if a.kind == "pm" and a.calendar in model.pms]  # fmt: skip
        if not cals or model.families[name].is_delay:
            continue
        n_tools = tools.get(name, 0) or model.families[name].count
        means = sorted({expected(c.duration, model.ptime_spread_mode) for c in cals})
        means = [m for m in means if m > 0] or [math.nan]
        ds = durations.get(name, [])
        # each spell against the calendar whose expected duration is nearest (in ratio): the
        # events do not say which calendar a PM is (docs/forecast.md)
        own = [min(means, key=lambda m, d=d: abs(math.log(max(d, 1e-9) / m))) for d in ds]
        m, (lo, hi) = stats.t_interval([d / c for d, c in zip(ds, own, strict=True)])
        design = math.fsum(own) / len(own) if own else math.fsum(means) / len(means)
        n = starts.get(name, 0)
        busy = n * design / (n_tools * span)  # the family's share of time in PM
        out.append(make(name=f"pm_duration:{name}", kind="pm_duration", target=name,
                        design=design, estimate=m * design, ci=(lo * design, hi * design),
                        n=len(ds), interval="t", weight=busy,
                        what="complete PM spells"))  # fmt: skip
        by = {c.by for c in cals}
        unit = "s" if by == {"time"} else "wafers"
        exposure = n_tools * span if by == {"time"} else float(fam_wafers.get(name, 0))
        d_int = 1 / math.fsum(1 / c.interval for c in cals)
        est, ci = stats.exp_mean_interval(n, exposure)
        p = make(name=f"pm_interval:{name}", kind="pm_interval", target=name, design=d_int,
                 estimate=est, ci=ci, n=n, interval="chi-square", unit=unit, weight=busy,
                 what="PMs begun")  # fmt: skip
        if len(by) > 1:
            p.thin = "the family has both time and wafer-count PM calendars: design value kept"
        out.append(p)
    return out


def setups(
    spells, records, starts, model: FabModel, equipment, lot_product, steps, span, skipped, make
):
    """``setup_time`` per family, and per explicit from-to pair of the model's setup table;
    ``starts``: the (tool, time) of every track-in."""
    until = math.inf  # a setup still open at the end of the window is left out
    length: dict[tuple[str, float], float | None] = {}
    for eq, changes in spells.items():
        for (t, state, reason), (end, nxt) in zip(changes, spell_ends(changes, until), strict=True):
            if state == "scheduled_down" and reason == "setup":
                # a spell that ends when another run starts on the tool (a cascading tool
                # starts the next run during a setup) is cut short: no sample
                cut = (eq, end) in starts
                length[(eq, t)] = end - t if nxt in UP_STATES and not cut else None
    pair_targets = {new for (cur, new) in model.setup_times if cur is not None}
    ratios: dict[str, list[float]] = defaultdict(list)
    design: dict[str, list[float]] = defaultdict(list)
    pairs: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    tool_setup: dict[str, str] = {}
    for eq, t, lot, number, named in records:
        fam = equipment.get(eq)
        step = steps.get((lot_product.get(lot, ""), number))
        new = named if named is not None else (step.setup if step is not None else None)
        if fam is None or step is None:
            _count(skipped, "setups of steps (or products) the model does not know")
            continue
        if new is None:
            _count(skipped, "setups of steps that need no setup in the model")
            continue
        prev = tool_setup.get(eq, _UNKNOWN)
        tool_setup[eq] = new
        if prev == _UNKNOWN and new in pair_targets:
            _count(skipped, "setups whose previous setup is unknown (first on the tool)")
            continue
        d = model.setup_time(prev, new, step)
        dur = length.get((eq, t))
        if not d > 0:
            _count(skipped, "setups where the model needs none (same setup, or time 0)")
            continue
        if dur is None:
            _count(skipped, "setups cut short by a down or the next run, or still open")
            continue
        ratios[fam].append(dur / d)
        design[fam].append(d)
        if (prev, new) in model.setup_times:
            pairs[(fam, prev, new)].append(dur)
    fam_of_setup: dict[str, set[str]] = defaultdict(set)
    for route in model.routes.values():
        for s in route.steps:
            if s.setup is not None:
                fam_of_setup[s.setup].add(s.family)
    tools: dict[str, int] = defaultdict(int)
    for fam in equipment.values():
        if fam is not None:
            tools[fam] += 1
    out = []
    for name in sorted(model.families):
        fsteps = [s for r in model.routes.values() for s in r.steps
                  if s.family == name and s.setup is not None]  # fmt: skip
        if not fsteps:
            continue
        rs = ratios.get(name, [])
        n = len(rs)
        if n:
            d = math.fsum(design[name]) / n
        else:
            d = math.fsum(model.setup_time(None, s.setup, s) for s in fsteps) / len(fsteps)
        m, (lo, hi) = stats.t_interval(rs)
        busy = math.fsum(design[name]) / ((tools.get(name) or 1) * span)  # share in setup
        out.append(make(name=f"setup_time:{name}", kind="setup_time", target=name, design=d,
                        estimate=m * d, ci=(lo * d, hi * d), n=n, interval="t",
                        weight=busy, what="complete setups"))  # fmt: skip
    for (cur, new), d in sorted(model.setup_times.items(), key=lambda kv: str(kv[0])):
        if cur is None:
            continue
        for fam in sorted(fam_of_setup.get(new, ())):
            xs = pairs.get((fam, cur, new), [])
            m, ci = stats.t_interval(xs)
            out.append(make(name=f"setup_time:{fam}/{cur}>{new}", kind="setup_time",
                            target=fam, design=d, estimate=m, ci=ci, n=len(xs), interval="t",
                            key=(cur, new), weight=0.0, what="complete setups"))  # fmt: skip
    return out


def _count(skipped: dict[str, int], why: str) -> None:
    skipped[why] = skipped.get(why, 0) + 1
