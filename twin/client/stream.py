"""The WebSocket stream of committed events (``/stream``) as a Python iterator.

Each item is ``{"seq": N, "event": {...}}``: the event's stream position and its envelope, as
the twin sends them. The twin sends arrays of such items and a ``{"notice": "live", "seq": N}``
once the replay of ``since`` is done; the iterator flattens the arrays and keeps the notice as
``live`` / ``live_seq``. A client the twin drops for being too slow (close code 4008) is
reconnected from the last position it received (``resume`` times at most), so nothing is lost
or repeated.
"""

from __future__ import annotations

import functools
import json
import time
from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from twin.client import errors as E

DROP_CODE = 4008  # the twin closed a client that fell behind
MAX_MESSAGE = 64 * 2**20  # bytes: the largest message read (500 events with large data fit)


@functools.cache
def _no_proxy() -> dict[str, Any]:
    """``proxy=None`` where websockets has the option (15+, which otherwise honours the
    proxy variables of the environment: the twin is reached directly, like over HTTP)."""
    import inspect

    from websockets.sync.client import connect

    return {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}


class EventStream:
    """An open ``/stream`` connection; iterate it, or ``take(n, timeout)``. Close it (or use
    it as a context manager) to leave."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        since: int | None = None,
        types: str | None = None,
        subjects: str | None = None,
        resume: int = 3,
        open_timeout: float = 10.0,
    ) -> None:
        self._base = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        self._token = token
        self._types, self._subjects = types, subjects
        self.last_seq: int | None = since  # the position of the last event received
        self.live = False  # the replay is over: what comes now is new
        self.live_seq: int | None = None
        self.resumes_left = resume
        self._open_timeout = open_timeout
        self._buffer: deque[dict[str, Any]] = deque()
        self._ws: Any = None
        self._ended: E.StreamClosed | None = None  # raised again by every later next()
        self._connect(since)

    def _connect(self, since: int | None) -> None:
        from websockets.exceptions import InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        query = {"since": since, "type": self._types, "subject": self._subjects}
        qs = urlencode({k: v for k, v in query.items() if v is not None})
        uri = f"{self._base}/stream" + (f"?{qs}" if qs else "")
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            # entered at once (websockets 17 warns about a connection used unentered)
            self._ws = connect(
                uri,
                additional_headers=headers,
                subprotocols=["twin.v1"],  # type: ignore[list-item]
                open_timeout=self._open_timeout,
                max_size=MAX_MESSAGE,
                # leaving while the twin still sends (a replay): the client reads no more, so
                # the twin's closing frame waits behind the unread ones; do not wait 10 s for it
                close_timeout=1.0,
                **_no_proxy(),
            ).__enter__()
        except InvalidStatus as exc:
            res = exc.response
            problem: dict[str, Any] = {"status": res.status_code}
            try:
                doc = json.loads(res.body or b"")
                if isinstance(doc, dict):
                    problem = doc
            except ValueError:
                problem["detail"] = (res.body or b"")[:200].decode("utf-8", "replace")
            raise E.api_error("GET", "/stream", res.status_code, problem, None) from None
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise E.TwinUnreachable(
                f"/stream: cannot open the event stream at {uri} ({exc})"
            ) from None

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            item = self.next()
            if item is None:  # pragma: no cover - next() without a timeout never times out
                continue
            yield item

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event (``{"seq", "event"}``), or None when ``timeout`` s pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            if self._ended is not None:
                raise self._ended
            left = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
            if not self._receive(left):
                return None
        item = self._buffer.popleft()
        self.last_seq = item["seq"]
        return item

    def take(self, n: int, timeout: float) -> list[dict[str, Any]]:
        """Up to ``n`` events, waiting at most ``timeout`` s in all (fewer when the stream
        closes: the next call then raises StreamClosed)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            try:
                item = self.next(max(0.0, deadline - time.monotonic()))
            except E.StreamClosed:
                if out:  # what came before the close; the next call raises
                    break
                raise
            if item is None:
                break
            out.append(item)
        return out

    def _receive(self, timeout: float | None) -> bool:
        """Read one message into the buffer; False on a time-out."""
        from websockets.exceptions import ConnectionClosed

        try:
            text = self._ws.recv(timeout=timeout)
        except TimeoutError:
            return False
        except ConnectionClosed as exc:
            self._closed(exc)
            return True
        self._parse(text)
        return True

    def _parse(self, text: str | bytes) -> None:
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self.close()
            raise E.ProtocolError(f"/stream: a message is not JSON ({exc})") from None
        if isinstance(doc, dict) and "notice" in doc:
            if doc["notice"] == "live":
                self.live, self.live_seq = True, doc.get("seq")
            return
        if not isinstance(doc, list) or not all(
            isinstance(i, dict) and isinstance(i.get("seq"), int) and "event" in i for i in doc
        ):
            self.close()
            raise E.ProtocolError(
                '/stream: expected an array of {"seq", "event"} or a notice, got '
                + repr(text[:120])
            )
        after = self.last_seq if not self._buffer else self._buffer[-1]["seq"]
        self._buffer.extend(i for i in doc if after is None or i["seq"] > after)

    def _closed(self, exc: Any) -> None:
        rcvd = getattr(exc, "rcvd", None)
        code = getattr(rcvd, "code", None)
        reason = getattr(rcvd, "reason", "") or ""
        if code == DROP_CODE and self.resumes_left > 0:
            self.resumes_left -= 1
            self._connect(self._position())
            return
        resume = self._position()
        self._ended = E.StreamClosed(
            f"/stream closed by the twin (code {code}{': ' + reason if reason else ''}); "
            f"resume with since={resume}",
            code=code,
            resume=resume,
        )
        raise self._ended

    def _position(self) -> int | None:
        """The stream position everything up to which has been received."""
        if self._buffer:
            return self._buffer[-1]["seq"]
        return self.last_seq if self.last_seq is not None else self.live_seq

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Leave the stream."""
        if self._ws is not None:
            self._ws.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
