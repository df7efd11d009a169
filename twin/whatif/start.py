"""From the live twin state to a what-if start: ``start_from_twin(state, model, tool_map)``.

The twin state (``twin.live.state.TwinState``) says where every lot is and what every tool is
doing now; the engines start from a ``StartState`` (``twin.whatif.reference.config``). The
twin's clock becomes ``time`` on the model clock (default 0: the release plan runs from its
beginning, as the twin does not know where the fab is in it); every other time is kept
relative to it. ``now`` (epoch s, default the state's clock, the time of its last event): the
instant the start stands for. A state as of T has its last event before T and nothing
changed in between, so ``now=T`` counts every time already spent (working, down, in
transport) up to T.

- **Lots.** Every active lot (queued, processing, hold) is placed at its step. A queued lot
  waits in its step's queue. A processing lot stays on its tool (the tool-id map's engine id)
  for the rest of its run: the run is load + the step's processing time + unload (as the
  engines run it: per piece, the wafers times one draw, or with a part interval the draw +
  the interval per further wafer), plus the setup left when the tool is still in its setup
  (E10 scheduled down, reason ``setup``), less the time it has already worked w (from its
  track-in, or from the end of its setup; a down that interrupts it now stops the count at
  the down's start; an earlier down that has ended is not known, so the lot ends that much
  earlier). ``work_left="draw"`` (the default): each replication draws the time left from
  the run's distribution given that it has lasted w (``LotState.until_left``; run = c + k·X,
  X the step's draw: uniform X leaves uniform over [max(lo, (w - c)/k), hi], mapped back to
  the time left; exponential X is memoryless past c; constant X leaves its run − w; 0 when
  overdue). ``work_left="mean"``: every replication ends it after the mean run − w (the
  behaviour before the draw). ``until`` holds start time + the mean either way. Lots of one
  batch in progress stay together on their tool and end together (listed together, they
  take one draw: ``LotState.until_left``).
  Priority, wafers, lot type and due date come from the model's release of the lot's product
  (the lot type named by the lot id's prefix, ``Lot_3_17`` -> ``Lot_3``, when there is one).
- **Between steps** (``transport_left="draw"``, the default). The twin knows no carrier of
  an MES-only stream: a queued lot that was tracked out ``s`` s ago (``moves`` > 0, its last
  change then) may still be in transport to its next step. With the model's transport time
  T, it is in transport with probability S(s) = P(T > s), and then arrives after T's
  residual (as for downs); else it is in its queue. Each replication draws which, and when
  (a ``transport`` lot with ``LotState.until_left``: a component of weight S(s), the
  residual, and one of weight 1 − S(s), 0: in the queue at once). A twin that records
  carriers (``state.carriers``, AMHS events) keeps every queued lot in its queue, as does
  ``transport_left="mean"`` (the behaviour before the draw). A hold released after the
  track-out also counts as the last change.
- **Holds.** The engines have no hold: a held lot is placed in transport to its step until
  ``hold_until`` s after the start (default: past any horizon, so it stays held and in the WIP
  for the whole run, as the twin cannot know when it is released).
- **Tools.** Every tool of the map gets a ``ToolState``: its current setup (when the twin
  knows it), and for a tool that is down, the time until it is up. A tool is busy through the
  lots processing on it, and idle otherwise.
- **Down time left** (``down_left="draw"``, the default). The time left of an unscheduled
  down is drawn from the repair time (MTTR) of the family's down calendars, and of a scheduled
  one from the duration of its PM calendars, given the time ``s`` the tool has already spent
  down: each replication draws its own (``ToolState.down_left``, from the replication's own
  ``START`` stream, the same numbers in both engines). Which calendar the down is of is not
  known: calendar i has the prior weight w_i (a down calendar its failure rate 1/MTTF, a PM
  calendar 1) and the posterior weight w_i · S_i(s), S_i the probability that its duration
  exceeds s. The time left of each is its duration's residual, again of the same kind:
  exponential is memoryless (the whole distribution again, whatever s); uniform [a, b] leaves
  uniform [max(a - s, 0), b - s]; constant c leaves c - s. A down past every calendar's
  longest duration (S_i(s) = 0 for all) is overdue: the tool is taken as up. SMT2020 durations
  have no other kind (``DISTRIBUTIONS``); a new kind would need its residual here (by inverse
  CDF of (F(s + x) - F(s)) / S(s), or by rejection). ``ToolState.down_until`` then holds the
  start time + the mean of that mixture, for display; the engines draw.
  ``down_left="mean"``: every replication gets the same time (the behaviour before the draw):
  the mean repair time of the down calendars (weighted by 1/MTTF, not by S_i), the mean PM
  duration; for constant and uniform durations the mean left given s (0 when overdue).

What the twin state does not record, and so cannot be kept: carriers in transport (inferred
from the time since the track-out, above), time spent in a pure delay step, the processing
time already drawn (the time left is drawn, or its mean), downs that interrupted a running
lot before the current one, and the end of engineering or non-scheduled time (such tools are taken as
available). ``build_start`` returns these approximations as ``notes``, with counts.

Any tool id of the twin that the map does not know, and any lot on such a tool, of an unknown
product or at a step not in its route, is refused: one error listing the first ids.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from twin.errors import InputError
from twin.process.model import PER_PIECE, uniform_bounds
from twin.process.toolmap import SHOW, ToolIdMap
from twin.whatif.reference.config import DAY, MAX_DAYS, LotState, StartState, TimeLeft, ToolState

ACTIVE = ("queued", "processing", "hold")
NEVER = 2 * MAX_DAYS * DAY  # s: later than the end of any run
DOWN_LEFT = ("draw", "mean")  # build_start(down_left=..., work_left=...): module docstring


@dataclass
class LiveStart:
    """A start state and the approximations made to build it (one line each)."""

    start: StartState
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def start_from_twin(
    state: Any,
    model: Any,
    tool_map: ToolIdMap,
    *,
    time: float = 0.0,
    hold_until: float | None = None,
    down_left: str = "draw",
    work_left: str = "draw",
    transport_left: str = "draw",
    now: float | None = None,
) -> StartState:
    """The twin state as an engine start (see the module docstring); ``build_start`` also
    says what was approximated."""
    return build_start(
        state, model, tool_map, time=time, hold_until=hold_until, down_left=down_left,
        work_left=work_left, transport_left=transport_left, now=now,
    ).start  # fmt: skip


def build_start(
    state: Any,
    model: Any,
    tool_map: ToolIdMap,
    *,
    time: float = 0.0,
    hold_until: float | None = None,
    down_left: str = "draw",
    work_left: str = "draw",
    transport_left: str = "draw",
    now: float | None = None,
) -> LiveStart:
    """``start_from_twin`` with its notes. ``now``: the epoch s the start stands for (default
    the state's clock, the time of its last event); a state as of T (``state_at(T)``) has its
    last event before T and nothing changed since, so every time already spent (working,
    down, in transport) counts up to T: ``now=T``."""
    problems = []
    for name, v in (
        ("down_left", down_left), ("work_left", work_left), ("transport_left", transport_left)
    ):  # fmt: skip
        if not isinstance(v, str) or v not in DOWN_LEFT:
            problems.append(f"{name} = {v!r}: 'draw' (the time left drawn per replication) or "
                            "'mean' (the mean time left, one for every replication)")  # fmt: skip
    if not (isinstance(time, int | float) and math.isfinite(time) and abs(time) <= NEVER):
        problems.append(f"time = {time!r}: s on the model clock, a finite number")
    if hold_until is not None and not (
        isinstance(hold_until, int | float) and 0 <= hold_until <= NEVER
    ):
        problems.append(f"hold_until = {hold_until!r}: s after the start, >= 0 (None: never)")
    clock = float(state.clock)
    if now is not None and not (
        isinstance(now, int | float) and math.isfinite(now) and clock <= now <= clock + NEVER
    ):
        problems.append(f"now = {now!r}: epoch s at or after the state's clock ({clock!r}), "
                        "finite (None: the clock)")  # fmt: skip
    if problems:
        raise InputError("live start", problems)
    if now is not None:
        clock = float(now)
    catalog = getattr(state, "catalog", None)
    known = getattr(catalog, "equipment", {}) or {}
    # every piece of equipment that is a tool (a stocker's family is None) must map
    tools = [
        e
        for e in list(state.equipment.values())
        if e.family is not None or e.id not in known or e.lots
    ]
    tool_map.check_twin([e.id for e in tools], "live start")
    lots = [lot for lot in list(state.lots.values()) if lot.status in ACTIVE]
    tool_map.check_twin(
        [lot.location for lot in lots if lot.status == "processing" and lot.location is not None],
        "live start: lots processing on",
    )
    kinds = _release_kinds(model)
    out_lots: list[LotState] = []
    bad: list[str] = []
    counts = {"lots": 0, "queued": 0, "processing": 0, "hold": 0, "tools": 0, "down": 0}
    notes: list[str] = []
    finished = moving = 0
    infer_transport = transport_left == "draw" and not getattr(state, "carriers", None)
    held_until = time + (NEVER if hold_until is None else float(hold_until))
    for lot in lots:
        product = model.products.get(lot.product)
        route = model.routes.get(product.route) if product is not None else None
        if route is None:
            bad.append(f"{lot.id!r} (product {lot.product!r} is not in the model)")
            continue
        if lot.step is None and lot.status == "queued":
            finished += 1  # past its last step, its completion not reported yet
            continue
        try:
            step = route.steps[route.index_of(lot.step)]
        except (KeyError, TypeError):
            bad.append(f"{lot.id!r} (step {lot.step!r} is not in route {route.name})")
            continue
        lot_type, priority, wafers, due_offset = _kind(kinds, lot.id, lot.product)
        ls = LotState(
            id=lot.id,
            product=lot.product,
            step=step.number,
            lot_type=lot_type,
            priority=priority,
            wafers=wafers,
            release=time + min(0.0, lot.released - clock),
            due=time + (lot.released - clock) + due_offset,
        )
        if lot.status == "processing":
            if lot.location is None:
                bad.append(f"{lot.id!r} (processing on no tool)")
                continue
            ls.status = "processing"
            ls.tool = tool_map.to_engine[lot.location]
            ahead, worked = _worked(state, model, lot, step, clock)
            ls.until = time + _mean_run_left(model, step, wafers, ahead, worked)
            if work_left == "draw":
                ls.until_left = (_run_left(model, step, wafers, ahead, worked),)
        elif lot.status == "hold":
            ls.status, ls.until = "transport", held_until
        elif infer_transport and lot.moves > 0:
            mix = _transport_mixture(model, clock - lot.updated)
            if mix:
                ls.status, ls.until, ls.until_left = "transport", time + _mixture_mean(mix), mix
                moving += 1
        counts[lot.status] += 1
        out_lots.append(ls)
    if bad:
        more = f" (and {len(bad) - SHOW} more)" if len(bad) > SHOW else ""
        raise InputError(
            "live start",
            [
                f"{len(bad)} active lot{'s' * (len(bad) != 1)} cannot be placed in the process "
                f"model {model.name}: {', '.join(bad[:SHOW])}{more}"
            ],
        )
    counts["lots"] = len(out_lots)
    out_tools: dict[str, ToolState] = {}
    overdue = 0
    unavailable = 0
    for eng_id, twin_id in tool_map.to_twin.items():
        ts = ToolState()
        out_tools[eng_id] = ts
        e = state.equipment.get(twin_id)
        if e is None:
            continue
        ts.setup = e.setup
        kind = _down_kind(e)
        if kind is not None:
            fam = eng_id.rsplit("#", 1)[0]
            if down_left == "mean":
                left, mix = _down_left(model, fam, kind, clock - e.since), ()
            else:
                mix = _down_mixture(model, fam, kind, clock - e.since)
                left = None if mix is None else _mixture_mean(mix)
            if left is None:
                notes.append(f"tool {twin_id} is down ({e.state}) but its family {fam} has no "
                             f"{'PM' if kind == 'pm' else 'down'} calendar: taken as up")  # fmt: skip
                continue
            if left <= 0:
                overdue += 1
                continue
            ts.down_until, ts.down_kind, ts.down_left = time + left, kind, mix or ()
            counts["down"] += 1
        elif e.state in ("engineering", "non_scheduled"):
            unavailable += 1
    counts["tools"] = len(out_tools)
    if counts["hold"]:
        what = "the whole run" if hold_until is None else f"{hold_until:g} s"
        notes.append(f"{counts['hold']} held lots stay held (in transport) for {what}")
    if counts["processing"] and work_left == "mean":
        notes.append(
            f"{counts['processing']} processing lots finish after the mean time of their run"
        )
    elif counts["processing"]:
        notes.append(f"{counts['processing']} processing lots finish after a time drawn per "
                     "replication from their run's time left")  # fmt: skip
    if counts["down"] and down_left == "mean":
        notes.append(f"{counts['down']} down tools come up after the mean repair or PM time left")
    elif counts["down"]:
        notes.append(f"{counts['down']} down tools come up after a repair or PM time left drawn "
                     "per replication, given the time already down")  # fmt: skip
    if moving:
        notes.append(f"{moving} queued lots tracked out less than the longest transport time "
                     "ago may still be in transport: drawn per replication")  # fmt: skip
    if finished:
        notes.append(f"{finished} lots past their last step (completion not yet reported) left out")
    if overdue:
        notes.append(f"{overdue} down tools are past their repair or PM time: taken as up")
    if unavailable:
        notes.append(f"{unavailable} tools in engineering or non-scheduled time taken as up")
    return LiveStart(StartState(time=time, lots=out_lots, tools=out_tools), notes, counts)


def _release_kinds(model: Any) -> dict[str, list[Any]]:
    """Releases by product, in the model's order."""
    out: dict[str, list[Any]] = {}
    for rel in model.releases:
        out.setdefault(rel.product, []).append(rel)
    return out


def _kind(kinds: dict[str, list[Any]], lot_id: str, product: str) -> tuple[str, int, int, float]:
    """(lot type, priority, wafers, due offset s) of a lot: the release whose lot type prefixes
    its id (``Lot_3_17``), else the product's first release, else the format's defaults."""
    rels = kinds.get(product, [])
    for rel in rels:
        if lot_id.startswith(rel.lot_type + "_") or lot_id == rel.lot_type:
            return rel.lot_type, rel.priority, rel.wafers, rel.due_offset
    if rels:
        rel = rels[0]
        return rel.lot_type, rel.priority, rel.wafers, rel.due_offset
    return product, 10, 25, 0.0


def _worked(state: Any, model: Any, lot: Any, step: Any, clock: float) -> tuple[float, float]:
    """(setup s still ahead of a processing lot's run, s the run has already worked): the
    setup ahead is > 0 only while the tool is in its setup, and then nothing has worked."""
    began = lot.updated  # the track-in
    e = state.equipment.get(lot.location)
    stop = clock
    if e is not None and e.since >= began:
        if e.state == "scheduled_down" and e.reason == "setup":
            current = e.setup if e.setup != step.setup else None
            setup = model.setup_time(current, step.setup, step) if step.setup else 0.0
            return max(0.0, began + setup - clock), 0.0
        if e.state == "productive" and step.setup is not None:
            # the run began with a setup: processing began when it ended (a later state
            # change, e.g. the track-in of another lot of a cascading tool, is no setup)
            began = min(e.since, began + _longest_setup(model, step))
        elif _down_kind(e) is not None:
            stop = e.since  # down now: the run stopped when it went down
    return 0.0, max(0.0, stop - began)


def _mean_run_left(model: Any, step: Any, wafers: int, ahead: float, worked: float) -> float:
    """Mean s of work left of a processing lot's run (load, setup, processing, unload)."""
    fam = model.families.get(step.family)
    run = step.mean_time(wafers) + (fam.load_time + fam.unload_time if fam is not None else 0.0)
    return ahead + run if ahead > 0 else max(0.0, run - worked)


def _run_left(model: Any, step: Any, wafers: int, ahead: float, worked: float) -> TimeLeft:
    """The time left of a processing lot's run given ``worked`` s (or with ``ahead`` s of
    setup still to come), as the engines draw it: run = c + k·X (module docstring)."""
    fam = model.families.get(step.family)
    c = fam.load_time + fam.unload_time if fam is not None else 0.0
    k = 1.0
    if step.per == PER_PIECE and step.part_interval is not None:
        c += step.part_interval * (wafers - 1)
    elif step.per == PER_PIECE:
        k = float(wafers)
    e = worked - ahead  # s into the run (< 0: the setup still ahead)
    lo, hi = uniform_bounds(step.mean, step.spread, getattr(model, "ptime_spread_mode", "full"))
    if step.dist == "uniform" and k > 0 and hi > lo:
        a = max(lo, (e - c) / k)
        if a < hi:
            low, high = max(0.0, c + k * a - e), max(0.0, c + k * hi - e)
            return TimeLeft(kind="uniform", low=min(low, NEVER), high=min(high, NEVER))
        return TimeLeft(kind="constant", mean=0.0)
    if step.dist == "exponential" and k > 0 and step.mean > 0:
        return TimeLeft(kind="exponential", mean=min(k * step.mean, NEVER),
                        offset=min(max(0.0, c - e), NEVER))  # fmt: skip
    mean = (lo + hi) / 2 if step.dist == "uniform" else step.mean
    return TimeLeft(kind="constant", mean=min(max(0.0, c + k * mean - e), NEVER))


def _longest_setup(model: Any, step: Any) -> float:
    """The longest setup into a step's setup (s)."""
    times = [v for (_, to), v in model.setup_times.items() if to == step.setup]
    return max([step.setup_time, *times])


def _down_kind(e: Any) -> str | None:
    if e.state == "unscheduled_down":
        return "down"
    if e.state == "scheduled_down" and e.reason != "setup":
        return "pm"
    return None


def _down_left(model: Any, family: str, kind: str, spent: float) -> float | None:
    """Mean s left of a down (``kind`` "down": repair; "pm": PM) that began ``spent`` s ago;
    None when the family has no such calendar."""
    pairs = []  # (weight, duration distribution)
    for att in model.calendars_of(family):
        if kind == "down" and att.kind == "down" and att.calendar in model.downs:
            cal = model.downs[att.calendar]
            pairs.append((1.0 / cal.mttf.mean if cal.mttf.mean > 0 else 1.0, cal.mttr))
        elif kind == "pm" and att.kind == "pm" and att.calendar in model.pms:
            pairs.append((1.0, model.pms[att.calendar].duration))
    if not pairs:
        return None
    total = sum(w for w, _ in pairs)
    spread_mode = getattr(model, "ptime_spread_mode", "full")
    return sum(w * _residual(d, max(0.0, spent), spread_mode) for w, d in pairs) / total


def _residual(dist: Any, spent: float, spread_mode: str) -> float:
    """Mean time left of a duration that has lasted ``spent`` s already."""
    if dist.kind == "exponential":
        return dist.mean  # memoryless
    if dist.kind == "constant":
        return max(0.0, dist.mean - spent)
    lo, hi = dist.bounds(spread_mode)
    if spent <= lo:
        return (lo + hi) / 2 - spent
    return max(0.0, (hi - spent) / 2)


def _down_mixture(model: Any, family: str, kind: str, spent: float) -> tuple[TimeLeft, ...] | None:
    """The time left of a down (``kind`` "down": repair; "pm": PM) that began ``spent`` s ago,
    as the mixture the engines draw from (module docstring); () when it is overdue, None when
    the family has no such calendar."""
    pairs = []  # (prior weight, duration distribution)
    for att in model.calendars_of(family):
        if kind == "down" and att.kind == "down" and att.calendar in model.downs:
            cal = model.downs[att.calendar]
            pairs.append((1.0 / cal.mttf.mean if cal.mttf.mean > 0 else 1.0, cal.mttr))
        elif kind == "pm" and att.kind == "pm" and att.calendar in model.pms:
            pairs.append((1.0, model.pms[att.calendar].duration))
    if not pairs:
        return None
    spent = max(0.0, spent)
    mode = getattr(model, "ptime_spread_mode", "full")
    comps = []  # (log posterior weight, residual)
    for w, d in pairs:
        got = _residual_of(d, spent, mode)
        if got is not None and w > 0:
            comps.append((math.log(w) + got[0], got[1]))
    if not comps:
        return ()
    top = max(lw for lw, _ in comps)
    return tuple(dataclasses.replace(c, p=math.exp(lw - top)) for lw, c in comps)


def _residual_of(dist: Any, spent: float, mode: str) -> tuple[float, TimeLeft] | None:
    """(log S(spent), the distribution of the time left given it lasted ``spent`` s), None when
    it cannot last that long. Times are capped at NEVER (past any run)."""
    if dist.kind == "exponential":
        if dist.mean <= 0:
            return None if spent > 0 else (0.0, TimeLeft(kind="constant", mean=0.0))
        return -spent / dist.mean, TimeLeft(kind="exponential", mean=min(dist.mean, NEVER))
    if dist.kind == "uniform":
        lo, hi = dist.bounds(mode)
        if spent >= hi or hi <= lo:
            left = hi - spent
            return None if left <= 0 else (0.0, TimeLeft(kind="constant", mean=min(left, NEVER)))
        logs = 0.0 if spent <= lo else math.log((hi - spent) / (hi - lo))
        low, high = min(max(0.0, lo - spent), NEVER), min(hi - spent, NEVER)
        return logs, TimeLeft(kind="uniform", low=low, high=high, mean=(low + high) / 2)
    left = dist.mean - spent  # constant
    return None if left <= 0 else (0.0, TimeLeft(kind="constant", mean=min(left, NEVER)))


def _transport_mixture(model: Any, spent: float) -> tuple[TimeLeft, ...]:
    """Where a lot tracked out ``spent`` s ago is (module docstring, "Between steps"): () when
    it must have arrived (or the model has no transport time)."""
    tr = model.transport
    if tr is None or tr.mean <= 0:
        return ()
    got = _residual_of(tr, max(0.0, spent), getattr(model, "ptime_spread_mode", "full"))
    if got is None:
        return ()
    moving = math.exp(got[0])
    if moving >= 1.0:
        return (got[1],)
    return (dataclasses.replace(got[1], p=moving), TimeLeft(p=1.0 - moving, kind="constant"))


def _mixture_mean(mix: tuple[TimeLeft, ...]) -> float:
    """Mean s of a down-left mixture (0 when empty: overdue)."""
    total = sum(c.p for c in mix)
    if not mix or total <= 0:
        return 0.0
    means = (((c.low + c.high) / 2) if c.kind == "uniform" else c.mean for c in mix)
    return sum(c.p * m for c, m in zip(mix, means, strict=True)) / total
