"""The twin's own records about a stream: a declared gap, an admin's reset. Only the twin
writes them (sources ``gap:<source>`` and ``reset:<source>``); ingest refuses them."""

from __future__ import annotations

from twin.live.events import MAX_INT, Event
from twin.live.registry import EventType, optional, required
from twin.live.state import TwinState


def _validate_range(ev: Event, s: TwinState) -> str | None:
    if ev.data["to_seq"] < ev.data["from_seq"]:
        return f"{ev.type}: to_seq < from_seq"
    return None


def _apply_gap(s: TwinState, ev: Event) -> None:
    s.gaps.append(
        {"source": ev.subject, "from_seq": ev.data["from_seq"], "to_seq": ev.data["to_seq"]}
    )


def _apply_reset(s: TwinState, ev: Event) -> None:
    """An admin skipped a source's seqs: listed with the gaps, saying who and why."""
    d = ev.data
    s.gaps.append(
        {
            "source": ev.subject,
            "from_seq": d["from_seq"],
            "to_seq": d["to_seq"],
            "reset_by": d["by"],
            "reason": d.get("reason", ""),
        }
    )


def _seq(name: str, what: str) -> object:
    return required(name, "integer", what, minimum=1, maximum=MAX_INT)


TYPES = (
    EventType(
        name="stream.gap",
        subject="source",
        producer="twin",
        description=(
            "Written by the twin (source `gap:<source>`, seq = the first missing seq, subject = "
            "the source) when seqs `from_seq`..`to_seq` did not arrive within the reorder window."
        ),
        fields=(_seq("from_seq", "first missing seq"), _seq("to_seq", "last missing seq")),
        validate=_validate_range,
        effect=_apply_gap,
        example={"subject": "amhs", "data": {"from_seq": 300, "to_seq": 312}},
    ),
    EventType(
        name="stream.reset",
        subject="source",
        producer="twin",
        description=(
            "Written by the twin when an admin moves a source's position forward (`POST "
            "/sources/{source}/reset`): seqs `from_seq`..`to_seq` count as skipped."
        ),
        fields=(
            _seq("from_seq", "first skipped seq"),
            _seq("to_seq", "last skipped seq; the next expected seq is to_seq + 1"),
            required("by", "string", "who reset it (the token's tail)"),
            optional("reason", "string", "why"),
            optional("at", "string", "when, wall clock (ISO 8601 UTC)"),
        ),
        validate=_validate_range,
        effect=_apply_reset,
        example={
            "subject": "mes",
            "data": {"from_seq": 1201, "to_seq": 5000, "by": "token ...k3Qa"},
        },
    ),
)
