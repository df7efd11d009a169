"""``twin.client``: a thin Python client of a running twin, for notebooks and services.

    from twin.client import Twin
    tw = Twin()                     # TWIN_URL (else http://127.0.0.1:8000) and TWIN_TOKEN
    tw.equipment()                  # a DataFrame, every page read
    for item in tw.stream(type="lot."):  # the live event stream over WebSocket
        ...

It handles the bearer token, paging, ETags (If-None-Match, answered from a cache on 304) and
the WebSocket stream; tables come back as pandas DataFrames; every failure is a ``TwinError``
subclass from ``twin.client.errors`` carrying the server's problem+json. See docs/client.md.
Needs httpx and websockets (the ``api`` extra) and, for tables, pandas.
"""

from twin.client.errors import (
    ApiError,
    ClientConfigError,
    ClientError,
    Conflict,
    Forbidden,
    JobFailed,
    JobTimeout,
    NotFound,
    ProtocolError,
    RequestRefused,
    ServerError,
    StreamClosed,
    TooBusy,
    TwinUnreachable,
    Unauthorized,
)
from twin.client.jobs import Job
from twin.client.stream import EventStream
from twin.client.twin import Twin

__all__ = [
    "ApiError", "ClientConfigError", "ClientError", "Conflict", "EventStream", "Forbidden",
    "Job", "JobFailed", "JobTimeout", "NotFound", "ProtocolError", "RequestRefused",
    "ServerError", "StreamClosed", "TooBusy", "Twin", "TwinUnreachable", "Unauthorized",
]  # fmt: skip
