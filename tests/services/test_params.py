"""Query parameters that take a time or a stream position never raise: hostile values answer
422 naming the parameter and the accepted range, and the service answers 200 afterwards."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from tests.services.conftest import ADMIN, TOKENS
from twin.live.events import format_time
from twin_api.deps import position_problem
from twin_api.routers.state import MAX_TIME, parse_at

HOSTILE = [
    "1e20",
    "-1",
    "99999999999999999999",
    "9999-12-31T23:59:59.999999Z",
    "10000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "2026-01-31T08:00:00+01:00",
    "2026-01-31T08:00:00",
    "not a time",
    "",
    "x" * 10_000,
    "9" * 10_000,
]
RAW = ["%ED%A0%80", "%00", "%FF%FE", "2026%ED%A0%80"]  # lone surrogate, NUL, bad UTF-8
TIME_PARAMS = [("/state", "at"), ("/events", "since"), ("/events", "until")]


def still_serving(api) -> None:
    for path in ("/state", "/kpis", "/events?limit=1"):
        r = api.get(path, headers=ADMIN)
        assert r.status_code == 200, (path, r.status_code, r.text)


@pytest.mark.parametrize("path,name", TIME_PARAMS)
def test_hostile_times_answer_422_with_the_range(api, path, name):
    """Far-future, negative, non-finite, non-UTC, garbage, huge and undecodable times answer
    422 naming the parameter and the accepted range; later reads answer 200."""
    for value in HOSTILE:
        r = api.get(path, params={name: value}, headers=ADMIN)
        assert r.status_code == 422, (value[:40], r.status_code, r.text[:300])
        detail = r.json()["detail"]
        assert detail.startswith(f"{name}=") and "9999-12-31T23:59:59Z" in detail, detail
        assert len(detail) < 600  # a 10,000-character value is not echoed whole
    for raw in RAW:
        r = api.get(f"{path}?{name}={raw}", headers=ADMIN)
        assert r.status_code == 422, (raw, r.status_code, r.text[:300])
        assert "accepted" in r.json()["detail"]
    still_serving(api)


@pytest.mark.parametrize(
    "value", ["0", "1800000000", "1800000000.5", "2026-01-31T08:00:00Z", "9999-12-31T23:59:59Z"]
)
def test_times_in_range_answer_200(api, value):
    """Times from 1970 to the end of year 9999 answer 200 with the time they were read as."""
    r = api.get("/state", params={"at": value}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["at"].endswith("Z")
    assert api.get("/events", params={"since": value, "until": value}, headers=ADMIN).status_code == 200  # fmt: skip


@given(st.text(max_size=60) | st.floats(allow_nan=True).map(repr) | st.integers().map(str))
def test_parse_at_never_raises_anything_but_422(value):
    """For any text, parse_at returns a time every formatter shows, or raises a 422."""
    try:
        t = parse_at("at", value)
    except HTTPException as exc:
        assert exc.status_code == 422 and "accepted" in exc.detail
        return
    assert t is not None and math.isfinite(t) and 0 <= t <= MAX_TIME
    format_time(t)


@pytest.mark.parametrize("value", ["99999999999999999999", "-1", "1e20", "1" * 10_000, "0"])
def test_paging_positions_never_fail(api, value):
    """offset and limit of every list take any integer text without a 500 (a far offset is
    an empty page), and non-integers answer 422."""
    for path in ("/equipment", "/lots", "/carriers", "/vehicles", "/scene"):
        for name in ("offset", "limit"):
            r = api.get(path, params={name: value}, headers=ADMIN)
            assert r.status_code in (200, 422), (path, name, r.status_code, r.text[:200])
    still_serving(api)


def test_position_problem_bounds():
    """A stream position is a decimal integer from 0 to the last position; anything else is
    named with the range."""
    assert position_problem("since", "0", 10) is None
    assert position_problem("since", "10", 10) is None
    for bad in ("11", "-1", "1e3", "nan", "", " ", "\ud800", "١", "9" * 10_000, "0x1"):
        why = position_problem("since", bad, 10)
        assert why and "from 0 to 10" in why and len(why) < 300


WS_HOSTILE = ["99999999999999999999", "-1", "1e20", "nan", "abc", "", "1" * 10_000, "١"]


def test_stream_since_hostile_is_refused_in_process(inproc):
    """WS /stream?since= that is not a position of the stream is refused with 422 naming the
    range; since=0 still streams."""
    from starlette.testclient import WebSocketDenialResponse

    # (nothing posted: the in-process app is shared with tests that compare its state)
    for value in [*WS_HOSTILE, str(inproc.app.state.runtime.hub.last_seq + 1)]:
        with pytest.raises(WebSocketDenialResponse) as err:
            with inproc.websocket_connect(
                "/stream", params={"since": value, "token": TOKENS["read"]}
            ):
                pass
        assert err.value.status_code == 422
        assert "not a stream position" in err.value.json()["detail"]
    with inproc.websocket_connect(f"/stream?since=0&token={TOKENS['read']}") as ws:
        assert ws.receive_json()  # the replay (or the live notice) comes
    still_serving(inproc)


def test_stream_since_hostile_is_refused_by_a_real_server(live):
    """The same over uvicorn: the upgrade is refused with HTTP 422, and a later stream works."""
    import websockets

    url = live.url.replace("http", "ws") + "/stream"
    headers = {"Authorization": f"Bearer {TOKENS['read']}"}

    async def attempt(query: str) -> str:
        try:
            async with websockets.connect(f"{url}?{query}", additional_headers=headers) as ws:
                return "ok" if await asyncio.wait_for(ws.recv(), 10) else "?"
        except websockets.exceptions.InvalidStatus as exc:
            return str(exc.response.status_code)

    for query in ("since=99999999999999999999", "since=-1", "since=%ED%A0%80", "since=nan"):
        assert asyncio.run(attempt(query)) == "422", query
    assert asyncio.run(attempt("since=0")) == "ok"
    with httpx.Client(base_url=live.url) as c:
        still_serving(c)
