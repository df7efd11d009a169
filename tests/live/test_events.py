"""The event envelope: JSON round trips, the documented examples, and clear rejections."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from twin.live.events import EVENT_TYPES, Event, EventFormatError, make_event, parse_event

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def doc_examples() -> list[dict]:
    blocks = re.findall(r"```json\n(.*?)\n```", DOCS.read_text(), flags=re.S)
    return [json.loads(b) for b in blocks]


def test_docs_have_one_valid_example_per_type():
    """docs/events.md shows every event type at least once, and every example parses."""
    examples = doc_examples()
    types = [parse_event(e).type for e in examples]
    assert set(types) == set(EVENT_TYPES)


@pytest.mark.parametrize("raw", doc_examples(), ids=lambda r: r["type"])
def test_json_round_trip(raw):
    """parse(to_json(parse(x))) equals parse(x): nothing is lost or changed in JSON."""
    ev = parse_event(raw)
    again = parse_event(ev.to_json())
    assert again == ev
    assert json.loads(ev.to_json())["time"].endswith("Z")


def test_time_is_utc_with_microseconds():
    """ISO times with Z or +00:00 and epoch seconds give the same instant; others are refused."""
    base = doc_examples()[0]
    t_z = parse_event({**base, "time": "2027-01-15T08:00:00.250000Z"}).time
    t_off = parse_event({**base, "time": "2027-01-15T08:00:00.25+00:00"}).time
    t_num = parse_event({**base, "time": t_z}).time
    assert t_z == t_off == t_num == 1800000000.25
    with pytest.raises(EventFormatError, match="must be UTC"):
        parse_event({**base, "time": "2027-01-15T09:00:00+01:00"})
    with pytest.raises(EventFormatError, match="must be UTC"):
        parse_event({**base, "time": "2027-01-15T08:00:00"})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("seq"), "missing envelope keys \\['seq'\\]"),
        (lambda r: r.update(seq=0), "'seq' must be an integer from 1 to 2\\^63-1"),
        (lambda r: r.update(seq=True), "'seq' must be an integer from 1 to 2\\^63-1"),
        (lambda r: r.update(schema=2), "schema version"),
        (lambda r: r.update(extra=1), "unknown envelope keys"),
        (lambda r: r.update(type="lot.teleported"), "unknown event type 'lot.teleported'"),
        (lambda r: r["data"].pop("state"), "data.state is required"),
        (lambda r: r["data"].update(state=3), "data.state must be str"),
        (lambda r: r["data"].update(colour="red"), "unknown field data.colour"),
        (lambda r: r.update(subject=""), "'subject' must be a non-empty string"),
    ],
)
def test_bad_envelopes_are_rejected_with_the_reason(mutate, message):
    """Each malformed payload raises EventFormatError whose reason names the problem."""
    raw = json.loads(json.dumps(doc_examples()[0]))
    mutate(raw)
    with pytest.raises(EventFormatError, match=message):
        parse_event(json.dumps(raw))


def test_every_problem_is_listed():
    """A payload with several problems gets one error listing all of them."""
    raw = {"id": "x", "source": "", "seq": -1, "time": "yesterday", "type": "t", "subject": "s"}
    with pytest.raises(EventFormatError) as err:
        parse_event(raw)
    reason = err.value.reason
    for part in ("missing envelope keys ['data']", "'source'", "'seq'", "not ISO 8601"):
        assert part in reason


def test_numbers_must_be_finite_and_not_bool():
    """Vehicle offsets reject NaN, infinity and booleans; ints are accepted as numbers."""
    ok = make_event("amhs", 1, 0.0, "vehicle.position", "V1", segment="S1", offset=3, speed=0.0)
    assert isinstance(ok, Event)
    for bad in (float("nan"), float("inf"), True):
        with pytest.raises(EventFormatError, match="data.offset"):
            make_event(
                "amhs", 1, 0.0, "vehicle.position", "V1", segment="S1", offset=bad, speed=0.0
            )


def test_not_json_and_not_object():
    """Bytes that are not UTF-8, text that is not JSON and JSON that is not an object are refused."""
    for raw, msg in ((b"\xff\xfe", "not UTF-8"), ("{oops", "not JSON"), ("[1, 2]", "JSON object")):
        with pytest.raises(EventFormatError, match=msg):
            parse_event(raw)


def test_parsed_event_is_a_frozen_event_like_a_constructed_one(stream):
    """The parser's fast construction gives a true Event: equal, same hash, frozen, replaceable."""
    import dataclasses

    for e in stream[:300]:
        got = parse_event(e.to_json())
        built = Event(got.id, got.source, got.seq, got.time, got.type, got.subject, got.data)
        assert type(got) is Event and got == built and hash(got.key) == hash(built.key)
        assert dataclasses.asdict(got) == dataclasses.asdict(built)
        assert dataclasses.replace(got, seq=got.seq + 1).seq == got.seq + 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.seq = 1  # type: ignore[misc]


def test_event_format_error_is_a_twin_error() -> None:
    """EventFormatError belongs to the TwinError family (the CLI prints it as one line) and stays
    a ValueError for existing callers."""
    from twin.errors import TwinError
    from twin.live.events import EventFormatError, parse_event

    with pytest.raises(TwinError) as err:
        parse_event({"id": "x"})
    assert isinstance(err.value, EventFormatError) and isinstance(err.value, ValueError)
