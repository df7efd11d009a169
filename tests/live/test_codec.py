"""Event JSON on the fast path (orjson) reads and writes what the standard library does."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.live import codec
from twin.live.events import EventFormatError, format_time, parse_event
from twin.live.sources import Message
from twin.live.store import MemoryStore, SQLiteStore
from twin.live.sync import SyncConfig, Synchroniser


def test_fast_parse_equals_standard_parse(stream):
    """Every event of the stream parses from text to the same Event as from json.loads' dict."""
    for e in stream[:2000]:
        text = e.to_json()
        assert codec.loads(text) == json.loads(text)
        assert parse_event(text) == parse_event(json.loads(text)) == e
        assert parse_event(text.encode()) == e


def test_fast_write_reads_back_as_the_standard_write(stream):
    """codec.dumps is compact JSON that reads back equal to json.dumps, for every stream event
    and for values orjson cannot write exactly (NaN, infinity, 2**70, non-string keys)."""
    for e in stream[:2000]:
        assert json.loads(codec.dumps(e.data)) == json.loads(json.dumps(e.data))
        assert json.loads(e.to_json())["data"] == e.data
    odd = {"nan": math.nan, "inf": -math.inf, "big": 2**70, "nested": {1: "a"}, "none": None}
    assert codec.dumps(odd) == json.dumps(odd, separators=(",", ":"))


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_format_time_equals_strftime(t):
    """format_time (isoformat) writes what the strftime form wrote, microseconds and Z included."""
    assert format_time(t) == datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e400"])
def test_what_orjson_refuses_gets_the_standard_reason(stream, number):
    """A payload orjson refuses (NaN, Infinity, 1e400) is read by json, so it gets the reason
    it got before: the offset must be a finite number."""
    base = json.loads(next(e for e in stream if e.type == "vehicle.position").to_json())
    data = f'{{"segment": "{base["data"]["segment"]}", "offset": {number}, "speed": 1.0}}'
    del base["data"]
    payload = json.dumps(base)[:-1] + f', "data": {data}}}'
    with pytest.raises(EventFormatError, match="data.offset must be finite number"):
        parse_event(payload)


def test_lone_surrogate_and_huge_integers_are_dead_letters(tmp_path, catalog):
    """An escaped lone surrogate and a seq beyond 64 bits are dead-lettered with a reason; before
    orjson the first crashed the pipeline in SQLite, and so did the second."""
    head = '{"id":"a","source":"s","time":"2027-01-15T08:00:00Z","type":"lot.released",'
    surrogate = head + '"seq":1,"subject":"L\\ud800","data":{"product":"P1"}}'
    huge = head + '"seq":18446744073709551616,"subject":"L1","data":{"product":"P1"}}'
    with SQLiteStore(tmp_path / "twin.db") as store:
        sync = Synchroniser(store, catalog)
        assert sync.process([Message(surrogate), Message(huge)]).accepted == 0
        reasons = [d.reason for d in store.dead_letters()]
    assert "unpaired surrogate" in reasons[0]
    assert "'seq' must be an integer from 1 to 2^63-1" in reasons[1]


def test_large_array_batch_is_committed_in_slices_and_acked_once(catalog, stream):
    """A message of 250 events with batch=100 is stored in three commits; its acknowledgement
    comes once, after the last slice is durable."""
    commits: list[int] = []
    acks: list[int] = []

    class Counting(MemoryStore):
        def write(self, events, dead=()):
            commits.append(len(events))
            assert acks == []  # nothing acknowledged before every slice is written
            return super().write(events, dead)

    sync = Synchroniser(Counting(), catalog, cfg=SyncConfig(batch=100))
    text = "[" + ",".join(e.to_json() for e in stream[:250]) + "]"
    assert sync.process([Message(text, ack=lambda: acks.append(1))]).accepted == 250
    assert commits == [100, 100, 50] and acks == [1] and sync.pos == 250


def test_dumps_many_equals_dumps_per_object(stream):
    """codec.dumps_many writes each object as codec.dumps does, odd values in the list included."""
    datas = [e.data for e in stream[:500]]
    assert codec.dumps_many(datas) == [codec.dumps(d) for d in datas]
    for odd in ({"nan": math.nan}, {"big": 2**70}, {1: "a"}, {"none": None}):
        mixed = [*datas[:10], odd, *datas[10:20]]
        assert codec.dumps_many(mixed) == [codec.dumps(d) for d in mixed]
    assert codec.dumps_many([]) == []
