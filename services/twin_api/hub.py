"""Fan-out of committed events to WebSocket clients, without ever slowing ingest.

Every event the synchroniser commits has a stream sequence number: its position in the event
store (1, 2, ...), so a client resumes with ``since=<last seq seen>`` even across restarts of the
service. ``publish`` (called on the ingest thread) keeps each event in a ring of recent events
and hands the batch to the event loop. There each distinct filter is applied once per batch and
its events encoded once into a ``Frame`` that every client with that filter shares (100 clients
watching the same thing cost one filter pass and one JSON text, not 100). Each client has a
bounded queue of frames, and a client that falls ``queue`` frames behind is dropped (close code
4008, with the seq to resume from) instead of buffering without end or making ingest wait.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from twin.live.events import Event

DROP_CODE = 4008  # WebSocket close code: the client was too slow
_UNSEEN = object()


# One committed event as the hub keeps it: a plain tuple (seq, type, subject, id, source,
# source seq, time, schema, data keys..., data values...). The cyclic garbage collector stops
# tracking a tuple of strings and numbers the first time it passes it, so the ring of recent
# events stays out of every later collection (the data is spread into the tuple for that
# reason: a tuple holding a dict stays tracked, and a tuple of tuples needs a second pass). As
# an object per event (an Item holding its Event: two tracked objects each), a full ring was
# 200,000 objects that every full collection walked: 40-170 ms with the event loop stopped
# (measured). The JSON is made when a frame or a replay needs it (never without clients).
Item = tuple
SEQ, TYPE, SUBJECT = 0, 1, 2  # the fields filters and frames read
_DATA = 8  # where the data keys start


def encode(pos: int, ev: Event) -> Item:
    """``ev``, committed at stream position ``pos``, as the hub keeps it."""
    data = ev.data
    return (
        pos, ev.type, ev.subject, ev.id, ev.source, ev.seq, ev.time, ev.schema,
        *data, *data.values(),
    )  # fmt: skip


def item_text(item: Item) -> str:
    """'{"seq":N,"event":{...}}' (the event as ``Event.to_json`` writes it)."""
    seq, type_, subject, id_, source, sseq, t, schema = item[:_DATA]
    half = _DATA + (len(item) - _DATA) // 2
    data = dict(zip(item[_DATA:half], item[half:]))
    ev = Event(id_, source, sseq, t, type_, subject, data, schema)
    return f'{{"seq":{seq},"event":{ev.to_json()}}}'


@dataclass(kw_only=True, frozen=True)
class StreamFilter:
    """Which events a client wants: type names or prefixes ending in '.' and subjects.
    Frozen (hashable): clients with equal filters share their frames."""

    types: tuple[str, ...] = ()
    subjects: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return not self.types and not self.subjects

    def __call__(self, item: Item) -> bool:
        if self.types and not any(
            item[TYPE] == t or (t.endswith(".") and item[TYPE].startswith(t)) for t in self.types
        ):
            return False
        return not self.subjects or item[SUBJECT] in self.subjects


class Frame:
    """Events sent in one WebSocket message (a JSON array); the text is made once, on first
    use, and shared by every client the frame is queued for (so each event is encoded once per
    distinct filter that passes it)."""

    __slots__ = ("items", "_text")

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = batch_text(self.items)
        return self._text

    def after(self, seq: int) -> Frame | None:
        """This frame without the events up to ``seq`` (None: nothing left)."""
        items = self.items
        if items[0][SEQ] > seq:
            return self
        rest = [i for i in items if i[SEQ] > seq]
        return Frame(rest) if rest else None


@dataclass(eq=False)
class Client:
    """One connected WebSocket: its filter, what it was last sent, and its bounded queue."""

    filter: StreamFilter
    limit: int
    last: int  # seq of the last event queued or sent to it
    batches: deque[Frame] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False
    sent: int = 0

    def offer(self, frame: Frame) -> None:
        """Queue a frame of events that pass this client's filter; never waits."""
        if self.dropped:
            return
        mine = frame.after(self.last)  # a client that attached mid-batch has some already
        if mine is None:
            return
        if len(self.batches) >= self.limit:
            self.dropped = True  # too slow: it resumes from `last` after reconnecting
        else:
            self.batches.append(mine)
            self.last = mine.items[-1][SEQ]
        self.wake.set()


class StreamHub:
    """The recent-event ring and the set of connected clients (see the module docstring)."""

    def __init__(self, *, history: int = 100_000, queue: int = 256) -> None:
        self.queue = queue
        self.ring: deque[Item] = deque(maxlen=history)
        self._ring_lock = threading.Lock()
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0  # clients dropped for being slow
        self.last_seq = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def publish(self, items: list[Item]) -> None:
        """Called on the ingest thread after a durable commit; never blocks on clients."""
        if not items:
            return
        with self._ring_lock:
            self.ring.extend(items)
            self.last_seq = items[-1][SEQ]
        loop = self.loop
        if loop is not None and self.clients and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._fanout, items)
            except RuntimeError:  # loop closing during shutdown
                pass

    def _fanout(self, items: list[Item]) -> None:
        frames: dict[StreamFilter, Frame | None] = {}  # one per distinct filter
        for c in list(self.clients):
            if c.dropped:
                continue
            flt = c.filter
            frame = frames.get(flt, _UNSEEN)
            if frame is _UNSEEN:
                mine = items if flt.everything else [i for i in items if flt(i)]
                frame = frames[flt] = Frame(mine) if mine else None
            if frame is not None:
                c.offer(frame)  # type: ignore[arg-type]
                if c.dropped:
                    self.dropped += 1

    def recent(self, after: int) -> list[Item] | None:
        """Events with seq > after from the ring, or None if the ring no longer reaches back."""
        with self._ring_lock:
            if not self.ring:
                return [] if after >= self.last_seq else None
            first = self.ring[0][SEQ]
            if after + 1 < first:
                return None
            return list(itertools.islice(self.ring, max(0, after + 1 - first), None))

    def attach(self, flt: StreamFilter, last: int) -> Client:
        c = Client(filter=flt, limit=self.queue, last=last)
        self.clients.add(c)
        return c

    def detach(self, c: Client) -> None:
        self.clients.discard(c)


def batch_text(items: Iterable[Item]) -> str:
    """One WebSocket message: a JSON array of ``{"seq", "event"}`` objects."""
    return "[" + ",".join(map(item_text, items)) + "]"


def parse_filter(types: str | None, subjects: str | None) -> StreamFilter:
    def split(v: str | None) -> list[str]:
        return [s.strip() for s in (v or "").split(",") if s.strip()]

    return StreamFilter(types=tuple(split(types)), subjects=frozenset(split(subjects)))


def notice(kind: str, **data: object) -> str:
    return json.dumps({"notice": kind, **data})
