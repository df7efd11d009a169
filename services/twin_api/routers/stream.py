from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from twin_api.auth import ws_accept_protocol, ws_scopes
from twin_api.deps import position_problem
from twin_api.hub import DROP_CODE, SEQ, Client, batch_text, encode, notice, parse_filter
from twin_api.problems import problem_response

router = APIRouter(tags=["stream"])
CHUNK = 500  # events per message: replayed, or queued frames joined (a larger frame goes whole)


@router.websocket("/stream")
async def stream(
    ws: WebSocket,
    since: Annotated[
        str | None, Query(description="stream position to resume after: 0 to the last one")
    ] = None,
    type: str | None = None,
    subject: str | None = None,
) -> None:
    """Live changes as JSON arrays of ``{"seq", "event"}``. ``since=N`` first replays every
    event after stream position N (resume after a reconnect); ``type`` (names, or prefixes
    ending in '.') and ``subject`` filter, comma-separated. A client that falls behind is
    closed with code 4008 and the seq to resume from. A ``since`` that is not a position of
    the stream is refused before the upgrade: 422 (or close code 4422) naming the range."""
    rt = ws.app.state.runtime
    hub = rt.hub
    if ws_scopes(ws, "read") is None:
        detail = "missing, unknown or unscoped token ('read' needed)"
        return await _refuse(ws, 401, 4401, detail)
    if since is not None:
        problem = position_problem("since", since, hub.last_seq)
        if problem:
            return await _refuse(ws, 422, 4422, problem)
    if len(hub.clients) >= rt.settings.ws_max_clients:
        await ws.close(code=1013, reason="too many stream clients; retry later")
        return
    await ws.accept(subprotocol=ws_accept_protocol(ws))
    flt = parse_filter(type, subject)
    start = hub.last_seq if since is None else int(since)
    client = hub.attach(flt, start)  # before the replay, so nothing falls between the two
    sent = start
    reader = asyncio.create_task(_drain(ws, client))
    try:
        # also without ?since: an event committed between reading last_seq and attaching is
        # in the ring by now, and the replay sends it
        sent = await _replay(ws, rt, flt, start)
        await ws.send_text(notice("live", seq=sent))
        while not reader.done():
            await client.wake.wait()  # set by the hub, and by _drain when the client leaves
            client.wake.clear()
            while client.batches and not reader.done():
                text, n, sent = _message(client, sent)
                if n:
                    await ws.send_text(text)
                    client.sent += n
            if client.dropped:
                await ws.close(code=DROP_CODE, reason=f"too slow; resume with since={sent}")
                break
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass
    finally:
        hub.detach(client)
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader


async def _refuse(ws: WebSocket, status: int, code: int, detail: str) -> None:
    """Refuse the upgrade: an HTTP answer where the server can send one, else a close code."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(problem_response(status, detail))
    else:
        await ws.close(code=code, reason=detail.encode()[:120].decode(errors="ignore"))


def _message(client: Client, sent: int) -> tuple[str, int, int]:
    """The next message for a client: its queued frames after ``sent``, joined into one
    (a client that fell behind catches up in fewer, larger messages), up to CHUNK events
    unless a single frame is larger. Returns (text, events, last seq)."""
    parts: list[str] = []
    n = 0
    while client.batches and (n == 0 or n + len(client.batches[0].items) <= CHUNK):
        frame = client.batches.popleft().after(sent)
        if frame is None:
            continue
        parts.append(frame.text)
        n += len(frame.items)
        sent = frame.items[-1][SEQ]
    if len(parts) == 1:
        return parts[0], n, sent  # the shared text as it is: the common case
    return "[" + ",".join(p[1:-1] for p in parts) + "]", n, sent


async def _drain(ws: WebSocket, client: Client) -> None:
    """Reads (and ignores) what the client sends; returns when it disconnects, waking the
    sender so that it stops."""
    try:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
    finally:
        client.wake.set()


async def _replay(ws: WebSocket, rt, flt, since: int) -> int:  # noqa: ANN001
    """Send every event after ``since``: from the store until the in-memory ring reaches back,
    then from the ring. Returns the last seq covered."""
    hub = rt.hub
    sent = since
    while (items := hub.recent(sent)) is None:
        rows, cursor = await run_in_threadpool(rt.events_after, sent, CHUNK)
        chunk = [i for i in (encode(p, e) for p, e in rows) if flt(i)]
        if chunk:
            await ws.send_text(batch_text(chunk))
        if cursor <= sent:
            break
        sent = cursor
    for lo in range(0, len(items or []), CHUNK):
        part = items[lo : lo + CHUNK]  # type: ignore[index]
        chunk = [i for i in part if flt(i)]
        if chunk:
            await ws.send_text(batch_text(chunk))
        sent = part[-1][SEQ]
    return sent
