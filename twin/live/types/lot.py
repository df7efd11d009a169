"""Lot events: release into the fab, placement mid-route, processing, holds, rework, scrap and
completion (the MES's view of a lot)."""

from __future__ import annotations

from twin.live.events import MAX_TIME, Event
from twin.live.registry import EventType, optional, required
from twin.live.state import (
    LOT_ACTIVE,
    MOVE_WINDOW_MIN,
    Lot,
    TwinState,
    count_wip,
    equipment_record,
    first_process_index,
)
from twin.live.types.checks import known_equipment, lot_in
from twin.vocabulary import UP_STATES

QUEUED = frozenset({"queued"})


# ------------------------------------------------------------------ lot.released
def _validate_released(ev: Event, s: TwinState) -> str | None:
    if ev.subject in s.lots:
        return f"lot {ev.subject!r} was already released"
    products = s.catalog.products
    if products and ev.data["product"] not in products:
        return f"unknown product {ev.data['product']!r} (known: {', '.join(sorted(products))})"
    return None


def _apply_released(s: TwinState, ev: Event) -> None:
    _enter(s, Lot(ev.subject, ev.data["product"], ev.time), None)


def _enter(s: TwinState, lot: Lot, step: int | None) -> None:
    """``lot`` joins the WIP queued at the first process step from route step ``step`` (None:
    the route's start), in place of an earlier lot of that id."""
    route = s.catalog.products.get(lot.product)
    if route is not None:
        at = (
            0
            if step is None
            else next((i for i, st in enumerate(route) if st.number == step), len(route))
        )
        lot.index = first_process_index(route, at)
        lot.step = route[lot.index].number if lot.index < len(route) else None
    lot.rev = 1
    old = s.lots.get(lot.id)
    if old is not None:
        count_wip(s, old, -1)
    s.lots[lot.id] = lot
    count_wip(s, lot, +1)


# ------------------------------------------------------------------ lot.placed
def _validate_placed(ev: Event, s: TwinState) -> str | None:
    """A lot placed mid-route: new, of a known product, at a step of its route, released no
    later than now."""
    lot = s.lots.get(ev.subject)
    if lot is not None:
        return f"lot {ev.subject!r} is already known ({lot.status}); a lot is placed only once"
    d = ev.data
    product, step = d["product"], d["step"]
    products = s.catalog.products
    if products and product not in products:
        return f"unknown product {product!r} (known: {', '.join(sorted(products))})"
    if step < 1:
        return f"lot.placed of {ev.subject!r}: step {step}; route step numbers start at 1"
    route = products.get(product)
    if route is not None and not any(st.number == step for st in route):
        have = f"{route[0].number}..{route[-1].number}" if route else "none"
        return (
            f"lot.placed of {ev.subject!r}: step {step} is not a step of {product} (steps {have})"
        )
    rel = d.get("released")
    if rel is not None and not 0 <= rel <= ev.time:
        return (
            f"lot.placed of {ev.subject!r}: released {rel!r} must be epoch seconds from 0 to "
            f"the event's time ({ev.time!r})"
        )
    return None


def _apply_placed(s: TwinState, ev: Event) -> None:
    """A lot already in the fab, queued at ``step`` (a delay step: the next process step)."""
    d = ev.data
    lot = Lot(ev.subject, d["product"], float(d.get("released", ev.time)))
    lot.updated = ev.time
    lot.step = d["step"]
    _enter(s, lot, d["step"])


# ------------------------------------------------------------------ lot.track_in / track_out
def _validate_track_in(ev: Event, s: TwinState) -> str | None:
    if err := lot_in(ev, s, QUEUED, "track-in"):
        return err
    eid = ev.data["equipment"]
    if err := known_equipment(s, eid):
        return err
    e = s.equipment.get(eid)
    if e is not None and e.state is not None and e.state not in UP_STATES:
        return f"track-in of {ev.subject!r} at {eid!r} while it is {e.state}"
    lot = s.lots[ev.subject]
    route = s.catalog.products.get(lot.product)
    if route is None:
        return None
    if lot.index >= len(route):
        return f"track-in of {ev.subject!r}: the lot has finished its route"
    want = route[lot.index]
    if ev.data["step"] != want.number:
        return f"track-in of {ev.subject!r} at step {ev.data['step']}: the lot is at step {want.number}"
    family = s.catalog.equipment.get(eid)
    if family != want.family:
        return (
            f"lot {ev.subject!r} at {eid!r} (family {family}) but step {want.number} of "
            f"{lot.product} needs family {want.family}"
        )
    return None


def _apply_track_in(s: TwinState, ev: Event) -> None:
    lot = s.lots.get(ev.subject)
    if lot is None:
        return
    count_wip(s, lot, -1)
    eid = ev.data["equipment"]
    e = equipment_record(s, eid)
    lot.status, lot.location, lot.step = "processing", eid, ev.data["step"]
    route = s.catalog.products.get(lot.product)
    if route is not None:
        for i in range(lot.index, len(route)):
            if route[i].number == lot.step:
                lot.index = i
                break
    lot.updated = ev.time
    lot.rev += 1
    count_wip(s, lot, +1)
    e.lots.append(lot.id)
    if "setup" in ev.data:
        e.setup = ev.data["setup"]
    e.rev += 1


def _validate_track_out(ev: Event, s: TwinState) -> str | None:
    lot = s.lots.get(ev.subject)
    eid = ev.data["equipment"]
    if lot is None or lot.status != "processing":
        return f"track-out of {ev.subject!r} at {eid!r} without a track-in"
    if lot.location != eid:
        return f"track-out of {ev.subject!r} at {eid!r} but it was tracked in at {lot.location!r}"
    if ev.data["step"] != lot.step:
        return f"track-out of {ev.subject!r} at step {ev.data['step']}: it is processing step {lot.step}"
    return None


def _apply_track_out(s: TwinState, ev: Event) -> None:
    lot = s.lots.get(ev.subject)
    if lot is None:
        return
    count_wip(s, lot, -1)
    e = equipment_record(s, ev.data["equipment"])
    if lot.id in e.lots:
        e.lots.remove(lot.id)
    e.rev += 1
    route = s.catalog.products.get(lot.product)
    if route is not None:
        lot.index = first_process_index(route, lot.index + 1)
        lot.step = route[lot.index].number if lot.index < len(route) else None
    lot.status, lot.location = "queued", None
    lot.moves += 1
    lot.updated = ev.time
    lot.rev += 1
    count_wip(s, lot, +1)
    s.moves += 1
    minute = int(ev.time // 60)
    now = int(max(s.clock, ev.time) // 60)
    if minute > now - MOVE_WINDOW_MIN:  # older moves only count in the total
        s.moves_by_minute[minute] = s.moves_by_minute.get(minute, 0) + 1
        for m in [m for m in s.moves_by_minute if m <= now - MOVE_WINDOW_MIN]:
            del s.moves_by_minute[m]


# ------------------------------------------------------------------ hold, release from hold
def _validate_hold(ev: Event, s: TwinState) -> str | None:
    return lot_in(ev, s, QUEUED, "hold")


def _apply_hold(s: TwinState, ev: Event) -> None:
    lot = s.lots.get(ev.subject)
    if lot is None:
        return
    count_wip(s, lot, -1)
    lot.status, lot.hold_reason, lot.updated = "hold", ev.data["reason"], ev.time
    lot.rev += 1
    count_wip(s, lot, +1)


def _validate_hold_released(ev: Event, s: TwinState) -> str | None:
    return lot_in(ev, s, frozenset({"hold"}), "release from hold")


def _apply_hold_released(s: TwinState, ev: Event) -> None:
    lot = s.lots.get(ev.subject)
    if lot is None:
        return
    count_wip(s, lot, -1)
    lot.status, lot.hold_reason, lot.updated = "queued", "", ev.time
    lot.rev += 1
    count_wip(s, lot, +1)


# ------------------------------------------------------------------ rework, scrap, completed
def _validate_rework(ev: Event, s: TwinState) -> str | None:
    if err := lot_in(ev, s, frozenset({"queued", "hold"}), "rework"):
        return err
    lot = s.lots[ev.subject]
    route = s.catalog.products.get(lot.product)
    step = ev.data["step"]
    if route is not None:
        idx = next((i for i, st in enumerate(route) if st.number == step), None)
        if idx is None or route[idx].is_delay:
            return f"rework of {ev.subject!r} to step {step}: not a process step of {lot.product}"
        if idx > lot.index:
            return f"rework of {ev.subject!r} to step {step}: ahead of its current step {lot.step}"
    return None


def _apply_rework(s: TwinState, ev: Event) -> None:
    lot = s.lots.get(ev.subject)
    if lot is None:
        return
    count_wip(s, lot, -1)
    lot.step = ev.data["step"]
    route = s.catalog.products.get(lot.product)
    if route is not None:
        for i, st in enumerate(route):
            if st.number == lot.step:
                lot.index = i
                break
    lot.status, lot.updated = "queued", ev.time
    lot.rev += 1
    count_wip(s, lot, +1)


def _validate_scrap(ev: Event, s: TwinState) -> str | None:
    return lot_in(ev, s, LOT_ACTIVE, "scrap")


def _apply_scrap(s: TwinState, ev: Event) -> None:
    lot = s.lots.get(ev.subject)
    if lot is None or lot.status not in LOT_ACTIVE:
        return
    count_wip(s, lot, -1)
    if lot.location is not None:
        e = s.equipment.get(lot.location)
        if e is not None and lot.id in e.lots:
            e.lots.remove(lot.id)
            e.rev += 1
    lot.status, lot.location, lot.updated = "scrapped", None, ev.time
    lot.rev += 1
    s.lots_scrapped += 1


def _validate_completed(ev: Event, s: TwinState) -> str | None:
    if err := lot_in(ev, s, QUEUED, "complete"):
        return err
    lot = s.lots[ev.subject]
    route = s.catalog.products.get(lot.product)
    if route is not None and lot.index < len(route):
        return f"lot {ev.subject!r} completed at step {lot.step} before the end of its route"
    return None


def _apply_completed(s: TwinState, ev: Event) -> None:
    lot = s.lots.get(ev.subject)
    if lot is None or lot.status not in LOT_ACTIVE:
        return
    count_wip(s, lot, -1)
    lot.status, lot.completed, lot.updated = "completed", ev.time, ev.time
    lot.rev += 1
    s.lots_completed += 1
    s.cycle_time_sum += ev.time - lot.released


# ------------------------------------------------------------------ declarations
_PRODUCT = "the process model's product name"
_WAFERS = "wafers in the lot"
_PRIORITY = "dispatch priority (higher goes first)"
_STEP = "the route's step number"
_TOOL = "the equipment id"

TYPES = (
    EventType(
        name="lot.released",
        subject="lot",
        description=(
            "A new lot starts into the fab. Rejected if the lot id was already released, or if "
            "routes are known and the product is not."
        ),
        fields=(
            required("product", "string", _PRODUCT),
            optional("wafers", "integer", _WAFERS),
            optional("priority", "integer", _PRIORITY),
        ),
        validate=_validate_released,
        effect=_apply_released,
        example={"subject": "L00042", "data": {"product": "P1", "wafers": 25, "priority": 1}},
    ),
    EventType(
        name="lot.placed",
        subject="lot",
        description=(
            "A lot already in the fab appears mid-route (a stream's initial WIP), queued at "
            "`step`. Rejected if the lot id is already known, if routes are known and the "
            "product is not or `step` is not one of its route's steps, if `step` < 1, and if "
            "`released` is after the event's own time."
        ),
        fields=(
            required("product", "string", _PRODUCT),
            required("step", "integer", "the route step the lot waits for (from 1)", minimum=1),
            optional("wafers", "integer", _WAFERS),
            optional("priority", "integer", _PRIORITY),
            optional(
                "released",
                "number",
                "when the lot really started (default: the event's time)",
                minimum=0,
                maximum=MAX_TIME,
                unit="s since the epoch",
            ),
        ),  # fmt: skip
        validate=_validate_placed,
        effect=_apply_placed,
        example={
            "subject": "Init_Lot_A_7",
            "data": {"product": "P1", "step": 20, "wafers": 25, "released": 1799654400.0},
        },
    ),
    EventType(
        name="lot.track_in",
        subject="lot",
        description=(
            "The lot starts processing `step` at `equipment`. Rejected if the lot is not queued, "
            "if the tool is down or non-scheduled, and, when routes are known, if `step` is not "
            "the lot's next step or the tool's family does not serve it."
        ),
        fields=(
            required("equipment", "string", _TOOL),
            required("step", "integer", _STEP),
            optional("setup", "string", "the tool's setup for this step"),
        ),
        validate=_validate_track_in,
        effect=_apply_track_in,
        example={"subject": "L00042", "data": {"equipment": "DIFF_1", "step": 10}},
    ),
    EventType(
        name="lot.track_out",
        subject="lot",
        description=(
            "The lot finished `step` at `equipment` (one move). Rejected without a matching "
            "track-in (same lot, tool and step)."
        ),
        fields=(required("equipment", "string", _TOOL), required("step", "integer", _STEP)),
        validate=_validate_track_out,
        effect=_apply_track_out,
        example={"subject": "L00042", "data": {"equipment": "DIFF_1", "step": 10}},
    ),
    EventType(
        name="lot.hold",
        subject="lot",
        description="A queued lot is put on hold. Rejected unless the lot is queued.",
        fields=(required("reason", "string", "why the lot is held (e.g. spc)"),),
        validate=_validate_hold,
        effect=_apply_hold,
        example={"subject": "L00042", "data": {"reason": "spc"}},
    ),
    EventType(
        name="lot.hold_released",
        aliases=("lot.release",),
        subject="lot",
        description=(
            "A held lot is released from hold (back to queued). Rejected unless the lot is on "
            "hold. Formerly `lot.release` (deprecated alias, normalised on ingest)."
        ),
        fields=(optional("reason", "string", "why the hold was lifted"),),
        validate=_validate_hold_released,
        effect=_apply_hold_released,
        example={"subject": "L00042", "data": {"reason": "dispositioned"}},
    ),
    EventType(
        name="lot.rework",
        subject="lot",
        description=(
            "A queued or held lot is sent back to an earlier (or its current) process `step`."
        ),
        fields=(
            required("step", "integer", "the process step to redo"),
            optional("reason", "string", "why"),
        ),
        validate=_validate_rework,
        effect=_apply_rework,
        example={"subject": "L00042", "data": {"step": 20, "reason": "overlay"}},
    ),
    EventType(
        name="lot.scrap",
        subject="lot",
        description="An active lot is scrapped; it leaves WIP.",
        fields=(required("reason", "string", "why"),),
        validate=_validate_scrap,
        effect=_apply_scrap,
        example={"subject": "L00042", "data": {"reason": "defect"}},
    ),
    EventType(
        name="lot.completed",
        subject="lot",
        description=(
            "A queued lot leaves the fab; with a known route it must have finished its last "
            "step. Its cycle time is completion time minus release time."
        ),
        fields=(),
        validate=_validate_completed,
        effect=_apply_completed,
        example={"subject": "L00042", "data": {}},
    ),
)
