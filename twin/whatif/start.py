"""From the live twin state to a what-if start: ``start_from_twin(state, model, tool_map)``.

The twin state (``twin.live.state.TwinState``) says where every lot is and what every tool is
doing now; the engines start from a ``StartState`` (``twin.whatif.reference.config``). The
twin's clock becomes ``time`` on the model clock (default 0: the release plan runs from its
beginning, as the twin does not know where the fab is in it); every other time is kept
relative to it.

- **Lots.** Every active lot (queued, processing, hold) is placed at its step. A queued lot
  waits in its step's queue. A processing lot stays on its tool (the tool-id map's engine id)
  for the rest of the run's mean time: load + the step's mean processing time (per piece
  times the wafers) + unload, plus the setup when the tool is still in its setup (E10
  scheduled down, reason ``setup``), minus the time it has already worked (from its track-in,
  or from the end of its setup; a down that interrupts it now stops the count at the down's
  start; an earlier down that has ended is not known, so the lot ends that much earlier). Lots of one batch in progress stay together on their tool and end together.
  Priority, wafers, lot type and due date come from the model's release of the lot's product
  (the lot type named by the lot id's prefix, ``Lot_3_17`` -> ``Lot_3``, when there is one).
- **Holds.** The engines have no hold: a held lot is placed in transport to its step until
  ``hold_until`` s after the start (default: past any horizon, so it stays held and in the WIP
  for the whole run, as the twin cannot know when it is released).
- **Tools.** Every tool of the map gets a ``ToolState``: its current setup (when the twin
  knows it), and for a tool that is down, the time until it is up. A tool is busy through the
  lots processing on it, and idle otherwise.
- **Down time left.** The model's repair time of the family's down calendars (MTTR; several
  calendars weighted by their failure rates, 1/MTTF) for an unscheduled down, the duration of
  its PM calendars for a scheduled one. An exponential repair time is memoryless: the time a
  tool has already spent down does not change the distribution of the time left, which is the
  whole repair distribution again. A ``StartState`` is one start for every replication (the
  runner passes the same one to each), so it cannot hold a random time per replication: the
  start uses the distribution's mean. For constant and uniform repair times, the mean time
  left given the time already spent down (0 when it is overdue).

What the twin state does not record, and so cannot be kept: carriers in transport (a lot
between steps waits in its next step's queue at once), time spent in a pure delay step, the
processing time already drawn (the mean is used), downs that interrupted a running lot before
the current one, and the end of engineering or non-scheduled time (such tools are taken as
available). ``build_start`` returns these approximations as ``notes``, with counts.

Any tool id of the twin that the map does not know, and any lot on such a tool, of an unknown
product or at a step not in its route, is refused: one error listing the first ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from twin.errors import InputError
from twin.process.toolmap import SHOW, ToolIdMap
from twin.whatif.reference.config import DAY, MAX_DAYS, LotState, StartState, ToolState

ACTIVE = ("queued", "processing", "hold")
NEVER = 2 * MAX_DAYS * DAY  # s: later than the end of any run


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
) -> StartState:
    """The twin state as an engine start (see the module docstring); ``build_start`` also
    says what was approximated."""
    return build_start(state, model, tool_map, time=time, hold_until=hold_until).start


def build_start(
    state: Any,
    model: Any,
    tool_map: ToolIdMap,
    *,
    time: float = 0.0,
    hold_until: float | None = None,
) -> LiveStart:
    """``start_from_twin`` with its notes."""
    problems = []
    if not (isinstance(time, int | float) and math.isfinite(time) and abs(time) <= NEVER):
        problems.append(f"time = {time!r}: s on the model clock, a finite number")
    if hold_until is not None and not (
        isinstance(hold_until, int | float) and 0 <= hold_until <= NEVER
    ):
        problems.append(f"hold_until = {hold_until!r}: s after the start, >= 0 (None: never)")
    if problems:
        raise InputError("live start", problems)
    clock = float(state.clock)
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
    finished = 0
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
            ls.until = time + _work_left(state, model, lot, step, wafers, clock)
        elif lot.status == "hold":
            ls.status, ls.until = "transport", held_until
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
            left = _down_left(model, fam, kind, clock - e.since)
            if left is None:
                notes.append(f"tool {twin_id} is down ({e.state}) but its family {fam} has no "
                             f"{'PM' if kind == 'pm' else 'down'} calendar: taken as up")  # fmt: skip
                continue
            if left <= 0:
                overdue += 1
                continue
            ts.down_until, ts.down_kind = time + left, kind
            counts["down"] += 1
        elif e.state in ("engineering", "non_scheduled"):
            unavailable += 1
    counts["tools"] = len(out_tools)
    if counts["hold"]:
        what = "the whole run" if hold_until is None else f"{hold_until:g} s"
        notes.append(f"{counts['hold']} held lots stay held (in transport) for {what}")
    if counts["processing"]:
        notes.append(
            f"{counts['processing']} processing lots finish after the mean time of their run"
        )
    if counts["down"]:
        notes.append(f"{counts['down']} down tools come up after the mean repair or PM time left")
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


def _work_left(state: Any, model: Any, lot: Any, step: Any, wafers: int, clock: float) -> float:
    """Mean s of work left of a processing lot's run (load, setup, processing, unload)."""
    fam = model.families.get(step.family)
    run = step.mean_time(wafers) + (fam.load_time + fam.unload_time if fam is not None else 0.0)
    began = lot.updated  # the track-in
    e = state.equipment.get(lot.location)
    stop = clock
    if e is not None and e.since >= began:
        if e.state == "scheduled_down" and e.reason == "setup":
            current = e.setup if e.setup != step.setup else None
            setup = model.setup_time(current, step.setup, step) if step.setup else 0.0
            return max(0.0, began + setup - clock) + run
        if e.state == "productive" and step.setup is not None:
            # the run began with a setup: processing began when it ended (a later state
            # change, e.g. the track-in of another lot of a cascading tool, is no setup)
            began = min(e.since, began + _longest_setup(model, step))
        elif _down_kind(e) is not None:
            stop = e.since  # down now: the run stopped when it went down
    return max(0.0, run - max(0.0, stop - began))


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
