"""Where events come from and go to: the in-process bus and JSONL files.

A source hands out ``Message`` batches; a message's ``ack`` (when it has one) is called by the
synchroniser only once the event is durable (stored, dead-lettered, or known as a duplicate).
A sink is anything with ``publish(event)``; an emulator can publish into a ``Bus``, a
``JsonlSink`` or an ``MqttSink`` (``twin.live.mqtt``) alike.
"""

from __future__ import annotations

import json
import queue
import time as _time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from twin.errors import InputError
from twin.live.events import Event, EventFormatError, parse_time


class Message:
    """One received payload; ``origin`` says where it came from (file:line, topic).

    ``checked``: the payload is an Event that ``parse_event`` already checked (its shape is not
    checked again on ingest; state legality always is).
    """

    __slots__ = ("payload", "ack", "origin", "received", "checked")

    def __init__(
        self,
        payload: str | bytes | dict[str, Any] | Event,
        ack: Callable[[], None] | None = None,
        origin: str = "",
        checked: bool = False,
    ) -> None:
        self.payload = payload
        self.ack = ack
        self.origin = origin
        self.received = _time.time()
        self.checked = checked


class Source(Protocol):
    def receive(self, max_items: int, timeout: float) -> list[Message]:
        """Up to ``max_items`` messages, waiting at most ``timeout`` s for the first."""

    @property
    def exhausted(self) -> bool:
        """True when no message will ever come again (a finite source has ended)."""

    def close(self) -> None: ...


class Sink(Protocol):
    def publish(self, event: Event) -> None: ...


class Bus:
    """The embedded default: an in-process queue; both a sink and a source."""

    def __init__(self, maxsize: int = 0) -> None:
        self._q: queue.Queue[Message | None] = queue.Queue(maxsize)
        self._closed = False
        self._ended = False

    def publish(self, event: Event | dict[str, Any] | str | bytes) -> None:
        if self._closed:
            raise InputError("bus", ["publish on a closed bus"])
        self._q.put(Message(event, origin="bus"))

    def close(self) -> None:
        """No more publishing; receivers drain what is queued, then the bus is exhausted."""
        if not self._closed:
            self._closed = True
            self._q.put(None)

    @property
    def exhausted(self) -> bool:
        return self._ended

    def receive(self, max_items: int, timeout: float) -> list[Message]:
        out: list[Message] = []
        if self._ended:
            return out
        try:
            item = self._q.get(timeout=timeout) if timeout > 0 else self._q.get_nowait()
        except queue.Empty:
            return out
        while True:
            if item is None:
                self._ended = True
                return out
            out.append(item)
            if len(out) >= max_items:
                return out
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return out


class JsonlFileSource:
    """Events from a JSON-lines file: as fast as possible, at ``speed`` × the events' own
    pace, or following a file that is still being written (``follow``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float | None = None,
        follow: bool = False,
        poll: float = 0.1,  # s between looks at a followed file
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError("event file", [f"{self.path}: no such file"])
        if speed is not None and not speed > 0:
            raise InputError("event file", [f"speed must be > 0 (or None for max), got {speed}"])
        self.speed, self.follow, self.poll = speed, follow, poll
        self._fh: IO[str] = self.path.open("r", encoding="utf-8", errors="replace")
        self._line = 0
        self._partial = ""
        self._ended = False
        self._t0: tuple[float, float] | None = None  # (first event time, wall start)
        self._held: tuple[str, int, float] | None = None  # a line read before it was due

    @property
    def exhausted(self) -> bool:
        return self._ended and self._held is None

    def close(self) -> None:
        self._ended = True
        self._held = None
        self._fh.close()

    def receive(self, max_items: int, timeout: float) -> list[Message]:
        out: list[Message] = []
        deadline = _time.monotonic() + timeout
        while len(out) < max_items:
            if self._held is not None:
                text, line_no, due = self._held
                self._held = None
            else:
                got = self._next_line(deadline, bool(out))
                if got is None:
                    break
                text, line_no = got
                due = self._due(text)
            now = _time.monotonic()
            if due > now:  # paced replay: deliver what is due first, then wait for this one
                if out or due > deadline:
                    self._held = (text, line_no, due)
                    if not out:
                        _time.sleep(max(0.0, deadline - now))
                    break
                _time.sleep(due - now)
            out.append(Message(text, origin=f"{self.path}:{line_no}"))
        return out

    def _next_line(self, deadline: float, have: bool) -> tuple[str, int] | None:
        """The next complete non-blank line, or None (end of file, or nothing new in time)."""
        while not self._ended:
            line = self._fh.readline()
            if not line:
                if not self.follow:
                    self._ended = True
                    return None
                if have or _time.monotonic() >= deadline:
                    return None
                _time.sleep(min(self.poll, max(0.0, deadline - _time.monotonic())))
                continue
            if not line.endswith("\n") and self.follow:
                self._partial += line  # the writer is mid-line; wait for the rest
                continue
            text, self._partial = self._partial + line, ""
            self._line += 1
            if text.strip():
                return text, self._line
        return None

    def _due(self, text: str) -> float:
        """Wall-clock (monotonic) time this event is due at ``speed``; 0 when not paced."""
        if self.speed is None:
            return 0.0
        try:
            t = parse_time(json.loads(text)["time"])
        except (ValueError, KeyError, TypeError, EventFormatError):
            return 0.0  # unreadable lines are not paced; the validator will reject them
        if self._t0 is None:
            self._t0 = (t, _time.monotonic())
        return self._t0[1] + (t - self._t0[0]) / self.speed


class JsonlSink:
    """Appends events to a JSON-lines file, one flushed line each (a file source can follow it)."""

    def __init__(self, path: str | Path, *, flush_every: int = 1) -> None:
        self.path = Path(path)
        self._fh = self.path.open("a", encoding="utf-8")
        self._n = 0
        self._flush_every = flush_every

    def publish(self, event: Event) -> None:
        self._fh.write(event.to_json() + "\n")
        self._n += 1
        if self._n % self._flush_every == 0:
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
