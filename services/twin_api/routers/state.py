from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from twin.live.events import EventFormatError, parse_time
from twin_api.deps import Reader, iso
from twin_api.routers.kpis import kpis_of
from twin_api.schemas.common import ERRORS, json_example

router = APIRouter(tags=["state"])
MIN_TIME = 0.0  # 1970-01-01T00:00:00Z
MAX_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z: the last second every formatter shows
ACCEPTED_TIMES = (
    "ISO 8601 UTC (e.g. 2026-01-31T08:00:00Z) or epoch seconds, from 1970-01-01T00:00:00Z (0) "
    "to 9999-12-31T23:59:59Z (253402300799)"
)


def parse_at(name: str, value: str | None) -> float | None:
    """ISO 8601 UTC or epoch seconds -> epoch seconds, from 1970 to the end of year 9999;
    422 naming the parameter and the accepted range otherwise (never an exception past here:
    every time that comes back can be formatted and looked up)."""
    if value is None:
        return None
    why = "out of range"
    t = math.nan
    if _number(value):
        t = float(value)
        if not math.isfinite(t):
            why = "not a finite number"
    else:
        try:
            t = parse_time(value)
        except EventFormatError as exc:
            why = "not UTC (end in Z or +00:00)" if "UTC" in exc.reason else "not a time"
        except (OverflowError, ValueError):  # a date past what the clock holds
            pass
    if not MIN_TIME <= t <= MAX_TIME:  # also NaN
        raise HTTPException(
            422,
            f"{name}={ascii(value[:40])}{'…' if len(value) > 40 else ''}: {why}; accepted: "
            f"{ACCEPTED_TIMES}",
        )
    return t


def _now(rt: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    with rt.lock:
        return rt.state.summary(), kpis_of(rt.state)


def _number(text: str) -> bool:
    if len(text) > 64:  # no number a time is written with is longer
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


STATE_EXAMPLE = {
    "revision": 1200, "events_applied": 1200, "clock": "2026-01-31T08:00:00.000Z",
    "wip": 120, "moves": 300, "lots_completed": 12,
    "equipment": {"LITH01": {"state": "productive", "reason": "", "lots": ["Lot_1"], "rev": 12}},
    "lots": {"total": 120},
    "vehicles": {"OHT01": {"segment": "S12", "offset": 3.5, "state": "moving", "rev": 17}},
    "alarms": [], "at": None,
}  # fmt: skip


@router.get(
    "/state",
    responses={**ERRORS, 200: json_example(STATE_EXAMPLE, "the state summary with the KPIs")},
    summary="The twin state now, or as of an event time (?at=ISO 8601 UTC or epoch seconds)",
)
async def get_state(
    rt: Reader,
    at: Annotated[str | None, Query(description="e.g. 2026-01-31T08:00:00Z")] = None,
) -> Any:
    t = parse_at("at", at)
    if t is None:
        summary, kp = await run_in_threadpool(_now, rt)
    else:
        state = await run_in_threadpool(rt.state_at, t)
        summary, kp = state.summary(), kpis_of(state)
    summary.update(kp)
    summary["at"] = iso(t)
    return JSONResponse(summary)
