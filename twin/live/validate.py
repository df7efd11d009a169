"""Is an event acceptable now? Shape, references, and state-machine legality.

``validate(event, state)`` never raises on bad data: it returns ``None`` when the event may be
applied, or the reason it must go to the dead letters. ``check_payload`` does the same for a raw
payload (JSON text, bytes or dict) and returns the parsed event or the reason. Each type's
rule is declared with its fields and effect in ``twin.live.types`` (``twin.live.registry``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twin.live.events import Event, EventFormatError, check_event, parse_event
from twin.live.registry import registry
from twin.live.state import TwinState, apply


def check_payload(raw: Any, state: TwinState) -> tuple[Event | None, str | None]:
    """Parse and validate one payload: (event, None) if acceptable, else (event or None, reason)."""
    try:
        ev = parse_event(raw)
    except EventFormatError as exc:
        return None, exc.reason
    except Exception as exc:  # the pipeline never crashes on a payload
        return None, f"unreadable payload ({type(exc).__name__}: {str(exc)[:80]})"
    return ev, validate(ev, state)


def validate(ev: Event, state: TwinState, *, checked: bool = False) -> str | None:
    """None if ``ev`` can be applied to ``state``, else the reason it is rejected.

    ``checked``: the event's shape was already checked (it came from ``parse_event``).
    """
    try:
        if not isinstance(ev, Event):
            return f"not an Event: {type(ev).__name__}"
        if not checked:
            try:
                check_event(ev)
            except EventFormatError as exc:
                return exc.reason
        rule = _RULES.get(ev.type)
        return rule(ev, state) if rule is not None else None
    except Exception as exc:  # a validator bug must not take the stream down
        return _validator_error(exc)


def _validator_error(exc: Exception) -> str:
    return f"validator error ({type(exc).__name__}: {str(exc)[:80]})"


def validate_apply(
    events: list[Event], state: TwinState
) -> tuple[list[Event], list[tuple[Event, str]]]:
    """``validate(ev, state, checked=True)`` then ``apply`` for each shape-checked event, in
    order: the accepted events and the rejected ones with their reasons. The synchroniser's per-batch loop, in one
    call instead of two (plus a dispatch) per event."""
    accepted: list[Event] = []
    rejected: list[tuple[Event, str]] = []
    rules, keep = _RULES, accepted.append
    for ev in events:
        rule = rules.get(ev.type)
        try:
            reason = rule(ev, state) if rule is not None else None
        except Exception as exc:  # a validator bug must not take the stream down
            reason = _validator_error(exc)
        if reason is None:
            apply(state, ev)
            keep(ev)
        else:
            rejected.append((ev, reason))
    return accepted, rejected


# type or deprecated alias -> its rule, derived from the registry (each type's rule is declared
# with its fields and effect in twin.live.types)
_RULES: dict[str, Callable[[Event, TwinState], str | None]] = registry().rules()
