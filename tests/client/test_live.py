"""twin.client against a real `twin serve`: paging, ETags, tokens, the event stream,
DataFrames, problem+json errors and jobs."""

from __future__ import annotations

import itertools

import httpx
import pytest

from tests.services.streams import demo_stream, tool_events
from twin.client import (
    ClientConfigError,
    Forbidden,
    JobFailed,
    NotFound,
    RequestRefused,
    Twin,
    Unauthorized,
)
from twin.errors import TwinError


class Counting(httpx.HTTPTransport):
    """A real transport that counts the requests it sends, by path."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def count(self, path: str) -> int:
        """Requests sent to ``path`` (or to it under a version prefix: /v1/lots)."""
        return sum(p == path or p.endswith(path) and p.count("/") == 2 for p in self.paths)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


@pytest.fixture(scope="module")
def fed(served) -> dict:
    """The demo fab with a stream of six lots ingested (from sources prefixed 'cl-')."""
    with Twin(served.url, token=served.tokens["ingest"]) as tw:
        answer = tw.post_events(demo_stream(lots=6, prefix="cl-"))
    assert answer["rejected"] == 0 and answer["accepted"] > 50, answer
    return answer


def test_lists_are_read_over_every_page(served, fed) -> None:
    """Equipment, lots and events read with a small page size span several pages and give
    exactly the rows one large page gives, in the same order."""
    counting = Counting()
    with Twin(served.url, token=served.tokens["read"], transport=counting) as tw:
        one = httpx.get(served.url + "/equipment?limit=1000",
                        headers={"Authorization": f"Bearer {served.tokens['read']}"}).json()  # fmt: skip
        eq = tw.equipment(page_size=5)
        assert list(eq["id"]) == [e["id"] for e in one["items"]] and len(eq) == one["total"] > 10
        assert counting.count("/equipment") == -(-one["total"] // 5)
        lots = tw.lots(page_size=2)
        assert len(lots) >= 6 and lots["id"].is_unique and counting.count("/lots") >= 3
        events = list(tw.iter_events(page_size=40))
        pos = [e["pos"] for e in events]
        assert pos == list(range(1, len(pos) + 1)) and len(pos) >= fed["accepted"]
        assert counting.count("/events") >= len(pos) // 40


def test_tables_have_their_columns_and_utc_times(admin, fed) -> None:
    """DataFrames: one row per item, the documented columns first, times as UTC timestamps;
    the per-family KPI table has one row per family of the scene."""
    import pandas as pd

    eq = admin.equipment()
    assert list(eq.columns[:5]) == ["id", "kind", "family", "bay", "state"]
    assert eq["id"].is_unique and set(eq["kind"]) <= {"tool", "stocker"}
    lots = admin.lots()
    assert {"id", "product", "step", "status", "released", "moves"} <= set(lots.columns)
    assert isinstance(lots["released"].dtype, pd.DatetimeTZDtype)
    assert str(lots["released"].dt.tz) == "UTC" and lots["released"].notna().all()
    ev = admin.events(type="lot.released")
    assert list(ev.columns[:8]) == ["pos", "id", "source", "seq", "time", "type", "subject",
                                    "data"]  # fmt: skip
    assert set(ev["type"]) == {"lot.released"} and len(ev) >= 6
    fams = admin.kpis_by_family()
    assert list(fams.columns) == ["family", "utilisation", "wip"]
    kpis = admin.kpis()
    assert fams["wip"].sum() <= kpis["wip"] and set(fams["family"]) >= set(
        kpis["utilisation_by_family"]
    )
    assert admin.vehicles().shape[1] >= 10 and admin.carriers().shape[1] >= 10
    empty = admin.lots(location="no-such-tool")
    assert empty.shape == (0, 12) and list(empty.columns[:2]) == ["id", "product"]


def test_etag_revalidation_answers_304_from_the_cache(served, fed) -> None:
    """A second read of an unchanged resource sends If-None-Match and gets a 304, answered from
    the cache with equal content; after an event is ingested the new value comes back."""
    head = httpx.get(served.url + "/kpis",
                     headers={"Authorization": f"Bearer {served.tokens['read']}"})  # fmt: skip
    if "etag" not in head.headers:
        pytest.skip("the server sends no ETag yet (issue 19: ETags on reads, branch apiconv)")
    with Twin(served.url, token=served.tokens["admin"]) as tw:
        first = tw.kpis()
        again = tw.kpis()
        assert again == first and tw.cache_hits == 1
        ev = tool_events("cl-etag", ["LITH01"], 1, t0=1_801_000_000.0)
        assert tw.post_events(ev)["accepted"] == 1
        assert tw.kpis()["revision"] > first["revision"]


def test_a_token_is_needed_and_its_scope_is_checked(served, monkeypatch) -> None:
    """No token or an unknown one: Unauthorized (401); a read token reads but may not ingest
    (Forbidden, 403); the token comes from TWIN_TOKEN when none is given."""
    monkeypatch.delenv("TWIN_TOKEN", raising=False)
    with Twin(served.url) as anon:
        assert anon.health()["status"] == "up"
        with pytest.raises(Unauthorized, match="401 missing bearer token"):
            anon.kpis()
    with Twin(served.url, token="not-a-configured-token-0123456789") as wrong:
        with pytest.raises(Unauthorized) as info:
            wrong.lots()
        assert info.value.status == 401 and info.value.problem["title"] == "Unauthorized"
    monkeypatch.setenv("TWIN_TOKEN", served.tokens["read"])
    with Twin(served.url) as reader:
        assert "revision" in reader.kpis()
        assert served.tokens["read"] not in repr(reader)
        with pytest.raises(Forbidden, match="lacks the 'ingest' scope"):
            reader.post_events(tool_events("cl-denied", ["LITH01"], 1))
        with pytest.raises(Forbidden):
            reader.submit_whatif(days=1, replications=1)
    with pytest.raises(Unauthorized), Twin(served.url, token="x" * 40) as wrong:
        wrong.stream()


def test_the_stream_iterator_receives_posted_events(served, admin) -> None:
    """Events posted while a stream is open come out of its iterator in order, with their
    stream positions; a stream from since=0 replays the stored history first."""
    batch = tool_events("cl-ws", ["LITH01", "LITH02"], 3, t0=1_801_000_100.0)
    with admin.stream(subject=["LITH01", "LITH02"]) as stream:
        assert admin.post_events(batch)["accepted"] == len(batch)
        got = stream.take(len(batch), timeout=30)
    assert [g["event"]["id"] for g in got] == [e.id for e in batch]
    assert stream.live and all(b["seq"] > a["seq"] for a, b in zip(got, got[1:]))
    with admin.stream(since=0) as replay:
        first = replay.take(5, timeout=30)
    history = list(itertools.islice(admin.iter_events(page_size=5), 5))
    assert [f["seq"] for f in first] == [h["pos"] for h in history] == [1, 2, 3, 4, 5]
    assert [f["event"]["id"] for f in first] == [h["event"]["id"] for h in history]
    with pytest.raises(ClientConfigError):
        admin.stream(since=-1)
    with pytest.raises(RequestRefused, match="since"), admin.stream(since=10**12):
        pass


def test_errors_carry_the_problem_document(admin) -> None:
    """A 404 or 422 is a TwinError subclass whose message names the request and the server's
    detail, with the whole problem+json document attached."""
    with pytest.raises(NotFound) as info:
        admin.lot("no-such-lot")
    err = info.value
    assert isinstance(err, TwinError) and err.status == 404
    assert err.problem["status"] == 404 and "no-such-lot" in err.detail
    assert str(err).startswith("GET /lots/no-such-lot: 404 ")
    with pytest.raises(RequestRefused, match="accepted: engineering") as info:
        admin.equipment(state="bogus")
    assert info.value.status == 422
    with pytest.raises(RequestRefused) as info:
        admin.submit_whatif(days=1, replications=1, bogus_field=1)
    assert info.value.problems and "bogus_field" in str(info.value)
    try:  # a limit past the maximum: capped (every row still read) or refused, naming limit
        assert len(admin.equipment(page_size=10**30)) == len(admin.equipment())
    except RequestRefused as exc:
        assert "limit" in str(exc)
    with pytest.raises(RequestRefused):
        admin.state(at="not a time")
    with pytest.raises(ClientConfigError, match="lone surrogate"):
        admin.lot("\ud800")
    ev = tool_events("cl-sur", ["LITH01"], 1, t0=1_801_000_200.0)[0].to_dict()
    answer = admin.post_events([{**ev, "subject": "LITH\ud800"}])  # sent escaped, refused there
    assert answer["rejected"] == 1 and answer["results"][0]["reason"]


def test_whatif_and_forecast_jobs_run_to_their_results(admin, fed) -> None:
    """A what-if job submitted through the client completes with the baseline's KPIs (also as
    a long table) and is listed; a bad engine fails or is refused clearly; a forecast from
    the live state completes."""
    job = admin.submit_whatif(days=1, replications=1, seed=3)
    assert job.status in ("queued", "running", "completed")
    result = job.wait(timeout=180)
    assert "baseline" in result["scenarios"] and result["replications"] == 1
    table = admin.whatif_table(result)
    assert len(table) > 0 and set(table["scenario"]) == {"baseline"}
    assert {"mean", "ci_low", "ci_high", "n"} <= set(table.columns)
    assert job.id in set(admin.whatif_jobs()["id"])
    with pytest.raises((RequestRefused, JobFailed)):
        admin.whatif(days=1, replications=1, engine="no-such-engine", timeout=60)
    part = demo_stream(lots=4, seed=5, prefix="cl-f-")
    assert admin.post_events(part[: len(part) // 3])["rejected"] == 0  # lots now in WIP
    wip = admin.lots(status=["queued", "processing", "hold"])
    assert len(wip) > 0
    forecast = admin.forecast(horizon="1d", replications=2, timeout=180)
    assert isinstance(forecast, dict) and forecast
    eta = admin.lot_eta(wip["id"].iloc[0])
    assert eta["id"] == wip["id"].iloc[0] and "p50" in eta
