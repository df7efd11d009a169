"""API conventions that hold for every route: the ``/v1`` prefix, ``ETag``/``If-None-Match``
and ``HEAD`` (docs/api.md, "Conventions").

- ``VersionPrefix``: every route answers under ``/v1`` (what the OpenAPI document lists) and,
  as an alias, without it. The prefix is taken off the path before anything else sees it, so
  one route table serves both, the metrics count both under one template, and the answer is
  byte for byte the same. ``scope["twin_prefix"]`` keeps what the client used ("/v1" or ""),
  for the links the API writes (``Location``, ``Link: rel="next"``).
- ``Conditional``: a strong ``ETag`` on every successful ``GET``. Reads of the in-memory twin
  state (``REVISION_ROOTS``) are tagged with the twin revision (the store position of the last
  applied event, the same on every server of a store) and a digest of the representation (the
  path, the query and the API version): a matching ``If-None-Match`` from a caller whose token
  holds ``read`` is answered 304 before anything is rendered. Every other read (jobs, the
  scene, the schema, the viewer's files) is tagged with a digest of its body, so a job's tag
  changes with its status and progress. ``/health``, ``/ready`` and ``/metrics`` are probes:
  never tagged (reads of the store, ``/events`` and a state ``?at=``, are tagged by body).
  ``HEAD`` is answered wherever ``GET`` is: the same status and headers, no body.

A tagged revision read is also kept, headers and bytes, until the revision moves: the next
caller with a ``read`` token asking the same path and query gets those bytes without the
route being run (``/kpis`` computed, ``/lots?limit=100`` rendered and encoded once per
revision, not once per request).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from twin_api.auth import TokenTable, bearer

VERSION = "/v1"
# reads whose representation is a function of the in-memory state at a revision (and the path
# and query); reads of the store (/events, /viewer/history, a state ?at= a past time) are not:
# a follower's store holds events past its revision, and a write is durable before its
# position is applied, so those are tagged by their body
REVISION_ROOTS = ("/equipment", "/lots", "/carriers", "/vehicles", "/kpis", "/state",
                  "/viewer/state")  # fmt: skip
UNTAGGED = frozenset({"/health", "/ready", "/metrics"})  # probes: always fresh, never 304
CACHE_ENTRIES, CACHE_BODY, CACHE_BYTES = 1024, 1 << 20, 64 << 20  # renderings kept, their size
MAX_TAGS = 8192  # characters of If-None-Match looked at (uvicorn caps the header anyway)
# headers a 304 repeats (RFC 9110, 15.4.5); the rest describe a body that is not sent
KEEP_ON_304 = frozenset({b"etag", b"cache-control", b"vary", b"content-location", b"expires"})


class VersionPrefix:
    """ASGI layer: ``/v1/...`` is routed as ``/...`` (see the module docstring)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            path: str = scope["path"]
            if path.startswith(VERSION) and (len(path) == 3 or path[3] == "/"):
                scope["path"] = path[3:] or "/"
                scope["twin_prefix"] = VERSION
            else:
                scope["twin_prefix"] = ""
        await self.inner(scope, receive, send)


def prefix_of(scope: dict) -> str:
    """The version prefix the request came with ("/v1" or ""), for links the API writes."""
    return scope.get("twin_prefix", "")


def revision(rt: Any) -> int | None:
    """The twin revision (see ``twin_api.deps.revision``), None when not running."""
    sync = rt.sync
    return None if sync is None else sync.pos


def matches(header: str, tag: str) -> bool:
    """Whether an If-None-Match value names ``tag`` (weak comparison, as RFC 9110 asks for
    If-None-Match; ``*`` matches any current representation). Garbage matches nothing."""
    text = header[:MAX_TAGS]
    if text.strip() == "*":
        return True
    bare = tag[2:] if tag.startswith("W/") else tag
    for part in text.split(","):
        p = part.strip()
        if p.startswith("W/"):
            p = p[2:]
        if p == bare:
            return True
    return False


def kind_of(path: str, query: bytes = b"") -> str | None:
    """The tag of a GET of ``path`` with ``query``: "revision", "content" or None (none)."""
    if path in UNTAGGED:
        return None
    for root in REVISION_ROOTS:
        if path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
            if path.endswith("/eta") or (path.endswith("/state") and b"at=" in query):
                return "content"  # a forecast's, or a past state replayed from the store
            return "revision"
    return "content"


class _NotModified:
    """What the timing middleware reads from ``scope["route"]`` for a 304 answered here."""

    path = "(not modified)"


class Conditional:
    """ASGI layer: ETags, 304 and HEAD (see the module docstring)."""

    def __init__(self, inner: Any, rt: Any, tokens: TokenTable, version: str) -> None:
        self.inner, self.rt, self.tokens = inner, rt, tokens
        self.salt = version.encode()
        # (prefix, path, query) -> (stamp, headers, body, route): each revision read rendered
        # and encoded once per revision, however many callers ask (oldest dropped first)
        self.cache: OrderedDict[tuple, tuple] = OrderedDict()
        self.cached_bytes = 0

    def tag(self, rev: int, scope: dict) -> str:
        """The strong ETag of a revision read: the revision and a digest of the path, query
        and API version (so the same on every server of a store running this version)."""
        h = hashlib.blake2b(self.salt, digest_size=6)
        h.update(scope["path"].encode("utf-8", "surrogatepass"))
        h.update(b"?" + scope.get("query_string", b""))
        return f'"{rev}-{h.hexdigest()}"'

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return await self.inner(scope, receive, send)
        head = scope["method"] == "HEAD"
        inner_scope = dict(scope, method="GET") if head else scope
        kind = kind_of(scope["path"], scope.get("query_string", b""))
        wanted = None
        if kind is not None:
            for k, v in scope["headers"]:
                if k == b"if-none-match":
                    wanted = v.decode("latin-1")
                    break
        try:
            if kind == "revision":
                await self._revision(inner_scope, receive, send, head, wanted)
            elif kind == "content":
                await self._content(inner_scope, receive, send, head, wanted)
            else:
                await self.inner(inner_scope, receive, _bodiless(send) if head else send)
        finally:
            if head and "route" in inner_scope:  # the template the timing middleware records
                scope["route"] = inner_scope["route"]

    def _stamp(self, rev: int) -> tuple[int, int, int]:
        """What a cached rendering stands for: the revision, and the in-memory state it was
        read from (its object and its count of applied events: a state rebuilt after a failed
        store write is another object)."""
        st = self.rt.state
        return (rev, id(st), st.revision)

    async def _revision(
        self, scope: dict, receive: Any, send: Any, head: bool, wanted: str | None
    ) -> None:
        rev = revision(self.rt)
        if rev is None:  # not started: the route says so
            return await self.inner(scope, receive, _bodiless(send) if head else send)
        waits = _waits(scope, rev)
        tag = "" if wanted is None else self.tag(rev, scope)  # else made on a miss only
        if wanted is not None and wanted.strip() != "*" and matches(wanted, tag):
            if self._reader(scope) and not waits:  # else the route answers 401/403
                scope["route"] = _NotModified
                return await _not_modified(send, [(b"etag", tag.encode())])
        if waits:  # a later revision is asked for: render when it has come
            return await self.inner(scope, receive, _bodiless(send) if head else send)
        stamp = self._stamp(rev)
        key = (scope.get("twin_prefix", ""), scope["path"], scope.get("query_string", b""))
        hit = self.cache.get(key)
        if hit is not None and hit[0] == stamp and self._reader(scope):
            scope["route"] = hit[3]  # the template the timing middleware records
            if wanted is not None and matches(wanted, tag):  # If-None-Match: *
                return await _not_modified(send, _kept(hit[1], tag))
            await send({"type": "http.response.start", "status": 200, "headers": hit[1]})
            await send({"type": "http.response.body", "body": b"" if head else hit[2]})
            return
        tag = tag or self.tag(rev, scope)
        state = {"drop": head, "tagged": False, "headers": None}
        chunks: list[bytes] = []

        async def tagging(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                # read before rendering, checked after: a revision that moved meanwhile leaves
                # the answer untagged (the body may be of either revision)
                if msg["status"] == 200 and revision(self.rt) == rev:
                    if wanted is not None and matches(wanted, tag):  # If-None-Match: *
                        state["drop"] = True
                        return await _not_modified(send, _kept(msg["headers"], tag), body=False)
                    msg["headers"] = [*msg["headers"], (b"etag", tag.encode())]
                    state["tagged"], state["headers"] = True, msg["headers"]
                return await send(msg)
            if state["tagged"]:
                chunks.append(msg.get("body", b""))
                if not msg.get("more_body", False):
                    self._keep(key, stamp, state["headers"], chunks, scope.get("route"))
            if state["drop"]:
                if not msg.get("more_body", False):
                    await send({"type": "http.response.body", "body": b""})
                return None
            return await send(msg)

        await self.inner(scope, receive, tagging)

    def _keep(
        self, key: tuple, stamp: tuple, headers: Any, chunks: list[bytes], route: Any
    ) -> None:
        """Cache a tagged rendering while the state it was read from still stands."""
        body = b"".join(chunks)
        if len(body) > CACHE_BODY or self._stamp(stamp[0]) != stamp or route is None:
            return
        cache = self.cache
        old = cache.pop(key, None)
        if old is not None:
            self.cached_bytes -= len(old[2])
        cache[key] = (stamp, headers, body, route)
        self.cached_bytes += len(body)
        while len(cache) > CACHE_ENTRIES or self.cached_bytes > CACHE_BYTES:
            _, dropped = cache.popitem(last=False)
            self.cached_bytes -= len(dropped[2])

    async def _content(
        self, scope: dict, receive: Any, send: Any, head: bool, wanted: str | None
    ) -> None:
        start: dict | None = None
        chunks: list[bytes] = []

        async def buffering(msg: dict) -> None:
            nonlocal start
            if msg["type"] == "http.response.start":
                if msg["status"] != 200:  # errors go out as they come
                    start = None
                    return await send(msg)
                start = msg
                return None
            if start is None:  # passing through
                if head:
                    if not msg.get("more_body", False):
                        await send({"type": "http.response.body", "body": b""})
                    return None
                return await send(msg)
            chunks.append(msg.get("body", b""))
            if msg.get("more_body", False):
                return None
            body = b"".join(chunks)
            tag = f'"c{hashlib.blake2b(body, digest_size=8).hexdigest()}"'
            if wanted is not None and matches(wanted, tag):
                return await _not_modified(send, _kept(start["headers"], tag))
            start["headers"] = [*start["headers"], (b"etag", tag.encode())]
            await send(start)
            await send({"type": "http.response.body", "body": b"" if head else body})

        await self.inner(scope, receive, buffering)

    def _reader(self, scope: dict) -> bool:
        auth = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                auth = v.decode("latin-1")
                break
        scopes = self.tokens.scopes_of(bearer(auth))
        return scopes is not None and ("read" in scopes or "admin" in scopes)


def _waits(scope: dict, rev: int) -> bool:
    """Whether the request asks for a revision after ``rev`` (``?min_revision=``, which
    twin_api.revision waits for): such a read is neither answered 304 nor from the cache."""
    query: bytes = scope.get("query_string", b"")
    if b"min_revision=" not in query:
        return False
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"min_revision":
            return not (value.isdigit() and len(value) <= 19 and int(value) <= rev)
    return False


def _kept(headers: list[tuple[bytes, bytes]], tag: str) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() in KEEP_ON_304 and k.lower() != b"etag"]
    return [*kept, (b"etag", tag.encode())]


async def _not_modified(send: Any, headers: list[tuple[bytes, bytes]], body: bool = True) -> None:
    """A 304: the headers given, no body. ``body`` False when the caller sends the (empty)
    end of the body itself, as the inner app's last message comes."""
    await send({"type": "http.response.start", "status": 304, "headers": headers})
    if body:
        await send({"type": "http.response.body", "body": b""})


def _bodiless(send: Any) -> Any:
    """``send`` for a HEAD: the start as it comes, the body left out."""

    async def bodiless(msg: dict) -> None:
        if msg["type"] == "http.response.start":
            return await send(msg)
        if not msg.get("more_body", False):
            await send({"type": "http.response.body", "body": b""})
        return None

    return bodiless


def version_paths(spec: dict[str, Any]) -> None:
    """The OpenAPI document lists the ``/v1`` paths only (the unprefixed aliases are
    documented in docs/api.md, not here: one operationId per operation)."""
    spec["paths"] = {VERSION + p: ops for p, ops in spec.get("paths", {}).items()}


def document_limits(spec: dict[str, Any], max_page: int) -> None:
    """Every ``limit`` parameter says its maximum (``TWIN_MAX_PAGE``) in the schema."""
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            for p in op.get("parameters", ()):
                if p.get("name") == "limit" and p.get("in") == "query":
                    schema = p.setdefault("schema", {})
                    for s in schema.get("anyOf", [schema]):
                        if s.get("type") == "integer":
                            s["maximum"] = max_page
