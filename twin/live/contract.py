"""The event contract, generated from the registry: a JSON Schema and an AsyncAPI document.

``event_schema()`` is a JSON Schema (draft 2020-12) for one event: ``$defs/envelope`` is the
envelope any event has, ``$defs/<type>`` one complete schema per type (its ``data`` fields,
kinds, ranges and allowed values, with the type's description and example), and the document
itself is a ``oneOf`` of the types. ``asyncapi()`` is an AsyncAPI 3.0 document for the MQTT
topics (events, heartbeats, the end-to-end acknowledgements, presence) and the API's WebSocket
stream, whose payloads are the same schemas. The API serves them at ``GET /schemas/events.json``
and ``GET /asyncapi.json``; `twin schema events|asyncapi` prints them. Never written by hand.

The schemas use only keywords that JSON Schema draft-07 (AsyncAPI's schema format) also reads.
What a schema cannot say is checked by the twin alone: a type's state-machine legality and
references (docs/events.md, per type), lone surrogates in strings, an integer written with a
fraction (``1.0``; JSON Schema calls it an integer, the twin does not), ``to_seq >= from_seq``.
"""

from __future__ import annotations

from typing import Any

from twin.live.events import (
    ENVELOPE_KEYS,
    MAX_INT,
    MAX_NAME,
    MAX_TEXT,
    MAX_TIME,
    MIN_INT,
    SCHEMA_VERSION,
    SPECVERSION,
)
from twin.live.registry import EventType, Field, registry

SCHEMA_ID = "urn:twin:schema:events:1"  # the document's $id (a name, not a place to fetch)
DRAFT = "https://json-schema.org/draft/2020-12/schema"
# ISO 8601 in UTC as the twin reads it: a date of 1970..9999, "T", a time, up to 6 fraction
# digits, Z or +00:00; not past 9999-12-31T23:59:59Z (a day that does not exist, such as
# February 30, is left to the twin)
UTC_TIME = (
    r"^(?!9999-12-31T23:59:59\.[0-9]*[1-9])(19[7-9][0-9]|[2-9][0-9]{3})"
    r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|\+00:00)$"
)
RESERVED_SOURCE = "^(gap|reset):"  # sources only the twin writes (stream.gap, stream.reset)


def _name(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "description": description}


SEQ = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_INT,
    "description": "per-source sequence number: increases by 1 per source, from 1",
}
TIME = {
    "description": "when it happened: ISO 8601 UTC (Z or +00:00), or epoch seconds",
    "anyOf": [
        {"type": "string", "format": "date-time", "pattern": UTC_TIME},
        {"type": "number", "minimum": 0, "maximum": MAX_TIME},
    ],
}


def _envelope_properties(subject: str) -> dict[str, Any]:
    return {
        "specversion": {
            "type": "string",
            "const": SPECVERSION,
            "description": "CloudEvents version; optional on ingest, always emitted by the twin",
        },
        "schema": {
            "type": "integer",
            "const": SCHEMA_VERSION,
            "description": "event schema version; absent means 1",
        },
        "id": _name("the producer's id for the event (the twin's producers: <source>:<seq>)"),
        "source": _name("who produced it (an MES, an AMHS controller, an emulator)"),
        "seq": SEQ,
        "time": TIME,
        "type": {"type": "string", "description": "the event type"},
        "subject": _name(subject),
        "data": {"type": "object", "description": "the type's fields"},
    }


def field_schema(f: Field) -> dict[str, Any]:
    """One data field: kind, bounds, allowed values, description (with its unit)."""
    desc = f"{f.description} ({f.unit})" if f.unit else f.description
    if f.kind == "string":
        out: dict[str, Any] = {"type": "string", "maxLength": MAX_TEXT}
        if f.enum:
            out["enum"] = list(f.enum)
    elif f.kind == "integer":
        lo = MIN_INT if f.minimum is None else max(MIN_INT, int(f.minimum))
        hi = MAX_INT if f.maximum is None else min(MAX_INT, int(f.maximum))
        out = {"type": "integer", "minimum": lo, "maximum": hi}
    else:
        out = {"type": "number"}
        if f.minimum is not None:
            out["minimum"] = f.minimum
        if f.maximum is not None:
            out["maximum"] = f.maximum
    out["description"] = desc
    return out


def example(t: EventType, seq: int = 1) -> dict[str, Any]:
    """A complete event of type ``t`` built around its registered example."""
    source = {"stream.gap": "gap:amhs", "stream.reset": "reset:mes"}.get(t.name, "mes")
    data = dict(t.example["data"])
    if t.name == "stream.gap":
        seq = data["from_seq"]
    elif t.name == "stream.reset":
        seq = data["to_seq"]
    return {
        "specversion": SPECVERSION,
        "schema": SCHEMA_VERSION,
        "id": f"{source}:{seq}",
        "source": source,
        "seq": seq,
        "time": "2027-01-15T08:00:00.000000Z",
        "type": t.name,
        "subject": t.example["subject"],
        "data": data,
    }


def type_schema(t: EventType) -> dict[str, Any]:
    """The complete schema of one event type (envelope included: no references)."""
    props = _envelope_properties(f"the {t.subject} the event is about")
    names = [t.name, *t.aliases]
    props["type"] = {"type": "string", "enum": names} if t.aliases else {"const": t.name}
    if t.aliases:
        props["type"]["description"] = (
            f"{t.name}; deprecated alias {', '.join(t.aliases)}, accepted and normalised to "
            f"{t.name} on ingest"
        )
    if t.producer == "twin":
        prefix = t.name.split(".", 1)[1]  # stream.gap -> gap:<source>
        props["source"] = {**props["source"], "pattern": f"^{prefix}:"}
    else:
        props["source"] = {**props["source"], "not": {"pattern": RESERVED_SOURCE}}
    props["data"] = {
        "type": "object",
        "properties": {f.name: field_schema(f) for f in t.fields},
        "required": [f.name for f in t.required_fields],
        "additionalProperties": False,
    }
    return {
        "title": t.name,
        "description": t.description
        + (" Written by the twin only; refused on ingest." if t.producer == "twin" else ""),
        "type": "object",
        "properties": props,
        "required": list(ENVELOPE_KEYS),
        "additionalProperties": False,
        "examples": [example(t)],
    }


def envelope_schema() -> dict[str, Any]:
    """What every event has, whatever its type (``data`` unchecked)."""
    reg = registry()
    props = _envelope_properties("the id of the entity the event is about")
    props["type"] = {"type": "string", "enum": [*reg.names, *reg.aliases]}
    return {
        "title": "event envelope",
        "description": "The envelope of every fab event: a CloudEvents 1.0 event with the "
        "extensions seq and schema.",
        "type": "object",
        "properties": props,
        "required": list(ENVELOPE_KEYS),
        "additionalProperties": False,
    }


def event_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event: a oneOf by type."""
    reg = registry()
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "twin fab event",
        "description": (
            f"One fab event, schema version {SCHEMA_VERSION} (docs/events.md). Generated from "
            "the twin's event registry. $defs/envelope: any event; $defs/<type>: one type."
        ),
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in reg.names],
        "$defs": {"envelope": envelope_schema(), **{t.name: type_schema(t) for t in reg}},
    }


# ---------------------------------------------------------------------- AsyncAPI
_PARAMS = {
    "fab": {"description": "the fab's name (MqttConfig.fab; `twin emulate --fab`)"},
    "source": {
        "description": "the event source, with the characters '/', '+' and '#' replaced by '_'"
    },
}
_QOS1 = {"mqtt": {"qos": 1, "retain": False, "bindingVersion": "0.2.0"}}
_QOS1_RETAINED = {"mqtt": {"qos": 1, "retain": True, "bindingVersion": "0.2.0"}}


def _message(name: str, title: str, summary: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "payload": payload,
    }


def asyncapi(version: str | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the twin's MQTT topics and WebSocket stream, seen from the
    twin: it receives events and heartbeats, sends acknowledgements, presence and the stream."""
    if version is None:
        from twin import __version__ as version
    reg = registry()
    schemas: dict[str, Any] = {t.name: type_schema(t) for t in reg}
    schemas["event"] = {
        "title": "event",
        "description": "One fab event (docs/events.md): a oneOf by type.",
        "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in reg.names],
    }
    schemas["eventBatch"] = {
        "title": "event batch",
        "description": "Several events in one message (`MqttConfig(batch=N)`).",
        "type": "array",
        "minItems": 1,
        "items": {"$ref": "#/components/schemas/event"},
    }
    schemas["heartbeat"] = {
        "type": "object",
        "description": "The last seq a sink handed to the broker for a source (extra keys ignored;"
        " at most 4 KiB).",
        "properties": {
            "source": _name("the source (matching the topic)"),
            "last_seq": SEQ,
            "time": {"type": "number", "minimum": 0, "maximum": MAX_TIME, "description": "epoch s"},
            "resends": {
                "type": "boolean",
                "description": "true: the sink keeps events until the twin confirms them",
            },
        },
        "required": ["source", "last_seq", "time"],
    }
    schemas["ack"] = {
        "type": "object",
        "description": "Every event of the source with seq <= seq is stored, dead-lettered or "
        "declared lost.",
        "properties": {"source": _name("the source"), "seq": SEQ},
        "required": ["source", "seq"],
        "additionalProperties": False,
    }
    schemas["presence"] = {
        "type": "object",
        "description": "The twin (re)subscribed: end-to-end publishers re-send what is "
        "unconfirmed.",
        "properties": {
            "twin": {"type": "string", "description": "the twin's MQTT client id"},
            "connect": {"type": "integer", "minimum": 0, "description": "connections so far"},
            "time": {"type": "number", "description": "epoch s"},
        },
        "required": ["twin", "connect", "time"],
        "additionalProperties": False,
    }
    schemas["streamFrame"] = {
        "type": "array",
        "description": "Committed events in stream order, each with its stream position.",
        "items": {
            "type": "object",
            "properties": {
                "seq": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "stream position (resume with ?since=)",
                },
                "event": {"$ref": "#/components/schemas/event"},
            },
            "required": ["seq", "event"],
            "additionalProperties": False,
        },
    }
    schemas["streamNotice"] = {
        "type": "object",
        "description": 'A notice: {"notice": "live", "seq": N} once the replay is done.',
        "properties": {"notice": {"type": "string"}, "seq": {"type": "integer", "minimum": 0}},
        "required": ["notice"],
    }
    messages = {
        "event": _message(
            "event", "Fab event", "One event (docs/events.md)",
            {"$ref": "#/components/schemas/event"},
        ),
        "eventBatch": _message(
            "eventBatch", "Fab events, batched", "A JSON array of events",
            {"$ref": "#/components/schemas/eventBatch"},
        ),
        "heartbeat": _message(
            "heartbeat", "Heartbeat", "The last seq published per source",
            {"$ref": "#/components/schemas/heartbeat"},
        ),
        "ack": _message(
            "ack", "End-to-end acknowledgement", "What of a source the twin made durable",
            {"$ref": "#/components/schemas/ack"},
        ),
        "presence": _message(
            "presence", "Twin presence", "The twin (re)subscribed",
            {"$ref": "#/components/schemas/presence"},
        ),
        "streamFrame": _message(
            "streamFrame", "Stream frame", "Committed events as they are applied",
            {"$ref": "#/components/schemas/streamFrame"},
        ),
        "streamNotice": _message(
            "streamNotice", "Stream notice", "The replay is done; live events follow",
            {"$ref": "#/components/schemas/streamNotice"},
        ),
    }  # fmt: skip

    def ref(kind: str, name: str) -> dict[str, str]:
        return {"$ref": f"#/{kind}/{name}"}

    def msgs(*names: str) -> dict[str, Any]:
        return {n: ref("components/messages", n) for n in names}

    broker, api = [ref("servers", "broker")], [ref("servers", "api")]
    channels = {
        "events": {
            "address": "twin/{fab}/events/{source}",
            "title": "Fab events",
            "description": "One topic per source; subscribe to twin/<fab>/events/# (or "
            "twin/+/events/#). QoS 1, persistent sessions; the twin acknowledges a message once "
            "its events are durable.",
            "servers": broker,
            "parameters": {"fab": _PARAMS["fab"], "source": _PARAMS["source"]},
            "messages": msgs("event", "eventBatch"),
        },
        "heartbeats": {
            "address": "twin/{fab}/heartbeat/{source}",
            "title": "Heartbeats",
            "description": "Every sink, every second and on close, retained: a lost tail "
            "becomes a declared gap (docs/mqtt.md).",
            "servers": broker,
            "parameters": {"fab": _PARAMS["fab"], "source": _PARAMS["source"]},
            "messages": msgs("heartbeat"),
        },
        "acks": {
            "address": "twin/{fab}/acks/{source}",
            "title": "End-to-end acknowledgements",
            "description": "Published by the twin after each commit, retained.",
            "servers": broker,
            "parameters": {"fab": _PARAMS["fab"], "source": _PARAMS["source"]},
            "messages": msgs("ack"),
        },
        "presence": {
            "address": "twin/{fab}/presence",
            "title": "Twin presence",
            "description": "Published by the twin each time it (re)subscribes.",
            "servers": broker,
            "parameters": {"fab": _PARAMS["fab"]},
            "messages": msgs("presence"),
        },
        "stream": {
            "address": "/stream",
            "title": "Live stream (WebSocket)",
            "description": "Committed events as JSON arrays of {seq, event}. ?since=N replays "
            "from stream position N first; ?type= (names, or prefixes ending in '.') and "
            "?subject= filter, comma-separated. Token: Authorization header, or the "
            "subprotocol twin.bearer.<token> (browsers). A client that falls behind is closed "
            "with code 4008 and the position to resume from; 4401: no token; 4422: a bad since.",
            "servers": api,
            "messages": msgs("streamFrame", "streamNotice"),
            "bindings": {
                "ws": {
                    "method": "GET",
                    "query": {
                        "type": "object",
                        "properties": {
                            "since": {"type": "string", "description": "position to resume after"},
                            "type": {"type": "string", "description": "event types or prefixes"},
                            "subject": {"type": "string", "description": "entity ids"},
                        },
                    },
                    "bindingVersion": "0.1.0",
                }
            },
        },
    }

    def op(action: str, channel: str, names: tuple[str, ...], summary: str, **kw: Any) -> dict:
        return {
            "action": action,
            "channel": ref("channels", channel),
            "summary": summary,
            "messages": [ref(f"channels/{channel}/messages", n) for n in names],
            **kw,
        }

    operations = {
        "receiveEvents": op(
            "receive", "events", ("event", "eventBatch"), "The twin ingests fab events",
            bindings=_QOS1,
        ),
        "receiveHeartbeats": op(
            "receive", "heartbeats", ("heartbeat",), "The twin reads sinks' heartbeats",
            bindings=_QOS1_RETAINED,
        ),
        "sendAcks": op(
            "send", "acks", ("ack",), "The twin confirms what is durable",
            bindings=_QOS1_RETAINED,
        ),
        "sendPresence": op(
            "send", "presence", ("presence",), "The twin announces it subscribed",
            bindings=_QOS1,
        ),
        "sendStream": op(
            "send", "stream", ("streamFrame", "streamNotice"), "The twin streams its changes"
        ),
    }  # fmt: skip
    return {
        "asyncapi": "3.0.0",
        "id": "urn:twin:asyncapi",
        "info": {
            "title": "twin: live fab events",
            "version": version,
            "description": (
                "The messages a digital twin of a wafer fab reads and writes: fab events over "
                "MQTT (docs/events.md, docs/mqtt.md) and its live stream over a WebSocket "
                "(docs/api.md). Generated from the twin's event registry."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "localhost:1883",
                "protocol": "mqtt",
                "description": "The plant's MQTT broker (Mosquitto); mqtts:// with TLS as "
                "configured (docs/mqtt.md). Access by the broker's ACL per topic.",
            },
            "api": {
                "host": "localhost:8000",
                "protocol": "ws",
                "description": "The twin's API (`twin up`); token with the read scope.",
                "security": [ref("components/securitySchemes", "bearer")],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token with the read scope (docs/api.md).",
                }
            },
        },
    }
