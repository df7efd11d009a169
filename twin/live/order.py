"""Per-source ordering: a bounded reorder buffer that releases events in ``seq`` order.

Each source's ``seq`` starts at 1 and increases by one. An event ahead of the next expected
``seq`` waits in the buffer; when the wait grows past the window (``window`` events held for that
source, or ``max_wait`` seconds of wall clock) the missing range is declared a gap: a
``stream.gap`` event is emitted (source ``gap:<source>``, seq = first missing seq, so it is itself
unique and replay-safe) and the stream moves on. An event at or below the released position is a
duplicate or arrived after its gap was declared; it is reported, never applied.

An event more than ``window`` seqs past the highest seq seen from its source is refused, not
held: one event must not be able to declare a gap over a whole producer's future stream (a run
of consecutive events after a small loss is held, and the loss declared when ``window`` events
wait or ``max_wait`` passed). Moving a source
forward by more than that is an admin's act (``skip``, with an audit event). A producer's
heartbeat (``expect``: "I have published up to N") makes a lost tail visible: what has stopped
arriving for ``tail_wait`` seconds is declared a gap, whatever its length.
"""

from __future__ import annotations

import heapq
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field

from twin.live.events import Event


@dataclass(kw_only=True)
class ReorderConfig:
    window: int = 1000  # events held per source before a gap is declared; also how far past
    # the highest seq seen an event (or a heartbeat's tail) may be
    max_wait: float = 2.0  # s of wall clock an early event may wait for a missing one
    tail_wait: float = 5.0  # s a heartbeat's announced tail may take to arrive before its gap


@dataclass
class Released:
    """What one push/poll produced: events in order, late/duplicate ones, gap events."""

    events: list[Event] = field(default_factory=list)
    duplicates: list[Event] = field(default_factory=list)
    late: list[Event] = field(default_factory=list)  # arrived after their gap was declared
    gaps: list[Event] = field(default_factory=list)
    refused: list[tuple[Event, str]] = field(default_factory=list)  # too far ahead, and why
    deferred: list[Event] = field(default_factory=list)  # a patient source's, to come again


class _Source:
    __slots__ = (
        "next", "heap", "held", "first_wait", "gaps", "tail", "tail_since", "tail_from",
        "tail_time", "_high", "patient",
    )  # fmt: skip

    def __init__(self, next_seq: int) -> None:
        self.next = next_seq
        self._high = 0  # the highest seq held (stale once the heap is empty)
        self.patient = False  # an end-to-end producer: what is missing will be re-sent
        self.heap: list[tuple[int, Event]] = []
        self.held: set[int] = set()
        self.first_wait = 0.0  # wall clock when the oldest early event started waiting
        self.gaps: list[tuple[int, int]] = []  # declared (from_seq, to_seq) ranges
        self.tail = 0  # the last seq a heartbeat said was published
        self.tail_since = 0.0  # wall clock when the tail last made progress
        self.tail_from = 0  # ``next`` then: a tail still arriving is not declared lost
        self.tail_time = 0.0  # event time of the tail's last event, as the heartbeat said

    @property
    def high(self) -> int:
        """The highest seq seen so far: held, or else released."""
        return self._high if self.heap else self.next - 1

    @high.setter
    def high(self, seq: int) -> None:
        self._high = seq


class ReorderBuffer:
    """Releases each source's events in seq order; reports duplicates and unclosed gaps."""

    def __init__(
        self,
        cfg: ReorderConfig | None = None,
        *,
        start: dict[str, int] | None = None,
        clock: Callable[[], float] = _time.monotonic,
    ) -> None:
        self.cfg = cfg or ReorderConfig()
        self._clock = clock
        self._src: dict[str, _Source] = {}
        for source, last in (start or {}).items():
            self._src[source] = _Source(last + 1)
        self.duplicates = 0
        self.late = 0
        self.gap_events = 0
        self.missing = 0  # seqs declared lost
        self.refused = 0

    def positions(self) -> dict[str, int]:
        """Per source, the highest seq up to which everything has been released."""
        return {name: src.next - 1 for name, src in self._src.items()}

    def next_seq(self, name: str) -> int:
        """The seq expected next from a source (1 for one never seen)."""
        src = self._src.get(name)
        return 1 if src is None else src.next

    def held(self) -> int:
        return sum(len(s.heap) for s in self._src.values())

    def push(self, ev: Event, out: Released | None = None) -> Released:
        out = out if out is not None else Released()
        src = self._src.get(ev.source)
        if src is None:
            src = self._src[ev.source] = _Source(1)
        seq = ev.seq
        if seq == src.next:
            out.events.append(ev)
            src.next = seq + 1
            if src.heap:
                self._drain(src, out)
            return out
        if seq < src.next:
            if any(a <= seq <= b for a, b in src.gaps):
                self.late += 1
                out.late.append(ev)
            else:
                self.duplicates += 1
                out.duplicates.append(ev)
            return out
        if seq in src.held:
            self.duplicates += 1
            out.duplicates.append(ev)
            return out
        too_far = seq > src.high + self.cfg.window
        if src.patient and (too_far or len(src.heap) >= self.cfg.window):
            out.deferred.append(ev)  # its producer re-sends it until the twin confirms it
            return out
        if too_far:
            self.refused += 1
            out.refused.append((ev, self._too_far(ev.source, src, seq)))
            return out
        if not src.heap:
            src.first_wait = self._clock()
        heapq.heappush(src.heap, (seq, ev))
        src.held.add(seq)
        if seq > src.high:
            src.high = seq
        if len(src.heap) > self.cfg.window and not src.patient:
            self._skip(ev.source, src, out)
        return out

    def _too_far(self, name: str, src: _Source, seq: int) -> str:
        return (
            f"{name} seq {seq} is beyond the reorder window: the next expected seq is {src.next} "
            f"and seqs up to {src.high + self.cfg.window} are accepted ({self.cfg.window} past "
            "the highest seen). If the producer really skipped, an admin resets the source's "
            "position"
        )

    def poll(self, out: Released | None = None) -> Released:
        """Declare gaps whose wait passed ``max_wait`` (and heartbeat tails whose wait passed
        ``tail_wait``); call it when the source is idle."""
        out = out if out is not None else Released()
        now = self._clock()
        for name, src in list(self._src.items()):
            if src.patient:  # its producer re-sends what is missing: nothing is lost
                continue
            while src.heap and now - src.first_wait >= self.cfg.max_wait:
                self._skip(name, src, out)
            if src.tail < src.next:
                continue
            if src.next != src.tail_from:  # the tail is arriving: its wait starts again
                src.tail_from, src.tail_since = src.next, now
            elif now - src.tail_since >= self.cfg.tail_wait:
                while src.heap and src.heap[0][0] <= src.tail:
                    self._skip(name, src, out)
                if src.tail >= src.next:
                    self._skip_to(name, src, src.tail + 1, out)
        return out

    def flush(self, out: Released | None = None) -> Released:
        """Release everything held, declaring every open gap (end of a finite stream)."""
        out = out if out is not None else Released()
        for name, src in list(self._src.items()):
            while src.heap:
                self._skip(name, src, out)
        return out

    def expect(self, name: str, last_seq: int, time: float | None = None) -> str | None:
        """A producer's heartbeat: it has published up to ``last_seq``. When that tail stops
        arriving for ``tail_wait`` s, ``poll`` declares the rest a gap, however long: a loss
        of any size is declared, never silent. (Heartbeats come from the broker's side, where
        who may publish a source's topics is the broker's ACL; an event far ahead is still
        refused.) Returns why a heartbeat is refused, else None (none is, today)."""
        src = self._src.get(name)
        if src is None:
            src = self._src[name] = _Source(1)
        if last_seq < src.next or last_seq <= src.tail:
            return None  # nothing new announced
        if src.tail < src.next:  # a new wait starts; a tail already waiting keeps its clock
            src.tail_since, src.tail_from = self._clock(), src.next
        src.tail = last_seq
        if time is not None:
            src.tail_time = time
        return None

    def be_patient(self, name: str) -> None:
        """``name``'s producer re-sends until the twin confirms (end-to-end delivery): a
        missing seq is waited for, never declared lost on a timer; an event beyond the window,
        or once ``window`` events wait, is deferred (not kept, not refused: the producer sends
        it again until confirmed); ``flush`` at the end of a finite stream still declares."""
        src = self._src.get(name)
        if src is None:
            src = self._src[name] = _Source(1)
        src.patient = True

    def skip(self, name: str, to_seq: int) -> tuple[int, list[Event], list[Event]]:
        """An admin's reset: ``name``'s next expected seq becomes ``to_seq + 1`` (forward
        only). Returns the first skipped seq, the held events the skip released (those above
        ``to_seq`` that now follow in order) and the held ones it dropped (at or below it)."""
        src = self._src.get(name)
        if src is None:
            src = self._src[name] = _Source(1)
        first = src.next
        if to_seq < first:
            raise ValueError(f"{name} is already at seq {first - 1}; a reset only moves forward")
        src.gaps.append((first, to_seq))
        src.next = to_seq + 1
        dropped = []
        while src.heap and src.heap[0][0] <= to_seq:
            seq, ev = heapq.heappop(src.heap)
            src.held.discard(seq)
            dropped.append(ev)
        out = Released()
        self._drain(src, out)
        if src.heap:
            src.first_wait = self._clock()
        return first, out.events, dropped

    def _skip(self, name: str, src: _Source, out: Released) -> None:
        self._skip_to(name, src, src.heap[0][0], out)

    def _skip_to(self, name: str, src: _Source, first: int, out: Released) -> None:
        """Declare seqs ``src.next .. first - 1`` lost, then release what follows in order.
        The gap's time is the next held event's, or the last released one's for a tail."""
        time = src.heap[0][1].time if src.heap else (src.tail_time or self._last_time(out))
        gap = Event(
            f"gap:{name}:{src.next}",
            f"gap:{name}",
            src.next,
            time,
            "stream.gap",
            name,
            {"from_seq": src.next, "to_seq": first - 1},
        )
        out.gaps.append(gap)
        out.events.append(gap)
        self.gap_events += 1
        self.missing += first - src.next
        src.gaps.append((src.next, first - 1))
        src.next = first
        self._drain(src, out)
        if src.heap:
            src.first_wait = self._clock()

    def _last_time(self, out: Released) -> float:
        """A time for a tail's gap: the latest event released so far in this batch, else the
        wall clock (a tail gap says when the loss was noticed)."""
        return out.events[-1].time if out.events else min(_time.time(), 253_402_300_799.0)

    def _drain(self, src: _Source, out: Released) -> None:
        heap = src.heap
        while heap and heap[0][0] == src.next:
            seq, ev = heapq.heappop(heap)
            src.held.discard(seq)
            out.events.append(ev)
            src.next = seq + 1
