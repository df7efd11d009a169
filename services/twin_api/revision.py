"""Read-your-writes across servers, the state hash, and writes sent to a follower (issue 20).

``Revision`` is one ASGI middleware:

- Every HTTP response carries ``X-Twin-Revision``: the store position of the last event applied
  to the state it reflects (the same number names the same state on every server of one store).
  A read gets the revision before it ran (its answer holds at least that); a write the revision
  after it (its own events included).
- A request may ask for at least revision N: header ``X-Twin-Min-Revision: N`` or query
  ``min_revision=N``. A server behind N waits for it up to ``TWIN_MIN_REVISION_WAIT`` s (5),
  then answers **503** problem+json (``Retry-After: 1``, ``X-Twin-Revision``: where it is); a
  value that is not an integer from 0 to 2^63-1 is **400**.
- ``GET /state/hash`` (scope read): ``{"revision", "hash", "role", ...}``, the SHA-256 of the
  twin state's fingerprint at that revision, taken under the ingest lock so the two agree; two
  servers at one revision have one hash, and a fresh replay of the store gives it too.
- On a follower (``twin_api.roles``) a write (``POST /events``, ``POST /sources/...``) is
  forwarded to the leader, whose URL the store holds (``TWIN_ADVERTISE_URL`` of the leader); the
  leader's answer comes back as it is, with ``X-Twin-Forwarded-To``. When no leader is known or
  it cannot be reached (a fail-over in progress) the answer is **503** problem+json naming the
  leader, with ``Retry-After: 1``: nothing was stored, send it again. With
  ``TWIN_FORWARD_WRITES=false`` a follower answers **307** to the leader instead. A write is
  never dropped silently.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool

from twin_api.auth import bearer
from twin_api.problems import MEDIA_TYPE, problem_body

HEADER = b"x-twin-revision"
MIN_HEADER = b"x-twin-min-revision"
FORWARDED = b"x-twin-forwarded"
HASH_PATHS = ("/state/hash", "/v1/state/hash")
MAX_REVISION = 2**63 - 1
_READS = ("GET", "HEAD", "OPTIONS")
# writes that change the store: what a follower forwards (what-if and forecast jobs run where
# they are asked, on the state that server holds)
_WRITE_PREFIXES = ("/events", "/sources/", "/v1/events", "/v1/sources/")
# request headers not passed on to the leader (hop-by-hop, or the proxy's own)
_HOP = {b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding",
        b"upgrade", b"te", b"trailer", b"proxy-authorization"}  # fmt: skip
_PASS_BACK = ("content-type", "x-twin-revision", "location", "retry-after", "etag")


def state_hash(state: Any) -> str:
    """The SHA-256 of a state's fingerprint (canonical JSON)."""
    text = json.dumps(state.fingerprint(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()


def revision_of(rt: Any) -> int:
    sync = rt.sync
    return 0 if sync is None else int(sync.pos)


class Revision:
    """See the module's doc."""

    def __init__(self, app: Any, rt: Any) -> None:
        self.app, self.rt = app, rt
        self._client: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.rt.sync is None:
            return await self.app(scope, receive, send)
        rt, method = self.rt, scope["method"]
        wanted, bad = _min_revision(scope)
        if bad is not None:
            return await _problem(send, 400, bad, rt)
        if wanted is not None and revision_of(rt) < wanted:
            bound = rt.settings.min_revision_wait
            deadline = time.monotonic() + bound
            while revision_of(rt) < wanted and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            if revision_of(rt) < wanted:
                return await _problem(
                    send, 503,
                    f"this server is at revision {revision_of(rt)}, behind the {wanted} asked "
                    f"(X-Twin-Min-Revision / min_revision), after waiting {bound:g} s "
                    "(TWIN_MIN_REVISION_WAIT); ask again, or another server",
                    rt, retry=True,
                )  # fmt: skip
        path = scope["path"]
        if method == "GET" and path in HASH_PATHS:
            return await self._hash(scope, send)
        roles = rt.roles
        if (
            roles is not None
            and not roles.leading
            and method not in _READS
            and path.startswith(_WRITE_PREFIXES)
        ):
            return await self._to_leader(scope, receive, send)
        before = revision_of(rt)
        read = method in _READS

        async def stamped(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                rev = before if read else revision_of(rt)
                headers = [h for h in msg.get("headers", ()) if h[0].lower() != HEADER]
                msg = {**msg, "headers": [*headers, (HEADER, b"%d" % rev)]}
            await send(msg)

        await self.app(scope, receive, stamped)

    # ------------------------------------------------------------ GET /state/hash
    async def _hash(self, scope: dict, send: Any) -> None:
        rt = self.rt
        tokens = scope["app"].state.tokens
        scopes = tokens.scopes_of(bearer(_header(scope, b"authorization")))
        if scopes is None:
            return await _problem(send, 401, "a bearer token is needed (scope read)", rt)
        if "read" not in scopes and "admin" not in scopes:
            return await _problem(send, 403, "this token lacks the read scope", rt)

        def take() -> tuple[int, str]:
            with rt.lock:  # the state and its position, together
                return revision_of(rt), state_hash(rt.state)

        rev, digest = await run_in_threadpool(take)
        body: dict[str, Any] = {"revision": rev, "hash": digest, "algorithm": "sha256"}
        if rt.roles is not None:
            body.update(await run_in_threadpool(rt.roles.info))
        else:
            body["role"] = "single"
        await _send(send, 200, json.dumps(body).encode(), "application/json", rev)

    # ------------------------------------------------------------ writes on a follower
    async def _to_leader(self, scope: dict, receive: Any, send: Any) -> None:
        rt = self.rt
        leader = await run_in_threadpool(rt.roles.leader_url)
        own = rt.settings.advertise_url
        target = scope["path"] + (
            "?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else ""
        )
        if leader is None or leader == own or _header(scope, FORWARDED) is not None:
            why = (
                "no leader has published its URL (TWIN_ADVERTISE_URL) in the store"
                if leader is None
                else "the store still names this server, which no longer leads (a fail-over is "
                "in progress)"
                if leader == own
                else f"it came forwarded and this server does not lead either (leader: {leader})"
            )
            return await _problem(
                send, 503,
                f"this server follows and cannot take writes: {why}; nothing was stored, "
                "send it again in a moment",
                rt, retry=True,
            )  # fmt: skip
        if not rt.settings.forward_writes:
            headers = [(b"location", (leader + target).encode("latin-1", "replace"))]
            return await _problem(
                send, 307, f"this server follows: send writes to the leader, {leader}", rt,
                extra=headers,
            )  # fmt: skip
        body = await _body(receive)
        if body is None:  # the client left
            return
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP]
        headers.append((FORWARDED, b"1"))
        try:
            r = await self._client.request(
                scope["method"], leader + target, content=body, headers=headers
            )
        except Exception as exc:  # unreachable, or a URL httpx refuses (InvalidURL)
            return await _problem(
                send, 503,
                f"this server follows, and the leader {leader} could not be reached "
                f"({type(exc).__name__}); nothing was stored here, send it again in a moment "
                "(a fail-over takes up to a few seconds)",
                rt, retry=True,
            )  # fmt: skip
        out = [(k.encode(), r.headers[k].encode("latin-1", "replace"))
               for k in _PASS_BACK if k in r.headers]  # fmt: skip
        out.append((b"x-twin-forwarded-to", leader.encode("latin-1", "replace")))
        await send({"type": "http.response.start", "status": r.status_code,
                    "headers": [*out, (b"content-length", b"%d" % len(r.content))]})  # fmt: skip
        await send({"type": "http.response.body", "body": r.content})


def _header(scope: dict, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


def _min_revision(scope: dict) -> tuple[int | None, str | None]:
    """The revision asked (header, else query), and the problem with it if any."""
    text = _header(scope, MIN_HEADER)
    where = "X-Twin-Min-Revision"
    if text is None and b"min_revision" in scope.get("query_string", b""):
        for k, v in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
            if k == "min_revision":
                text, where = v, "min_revision"
    if text is None:
        return None, None
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 19) or int(value) > MAX_REVISION:
        shown = value[:40].encode("ascii", "backslashreplace").decode()
        return None, f"{where} {shown!r}: accepted is a revision, an integer from 0 to 2^63-1"
    return int(value), None


async def _body(receive: Any) -> bytes | None:
    chunks = []
    while True:
        msg = await receive()  # the body limit's receive: it enforces the cap
        if msg["type"] != "http.request":
            return None
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Any, status: int, body: bytes, media: str, rev: int, extra=()) -> None:
    headers = [(b"content-type", media.encode()), (b"content-length", b"%d" % len(body)),
               (HEADER, b"%d" % rev), *extra]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _problem(
    send: Any, status: int, detail: str, rt: Any, *, retry: bool = False, extra: Any = ()
) -> None:
    body = json.dumps(problem_body(status, detail), ensure_ascii=True).encode()
    more = [*extra, *([(b"retry-after", b"1")] if retry else [])]
    await _send(send, status, body, MEDIA_TYPE, revision_of(rt), more)
