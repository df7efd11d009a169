"""Per-source ordering: a bounded reorder buffer that releases events in ``seq`` order.

Each source's ``seq`` starts at 1 and increases by one. An event ahead of the next expected
``seq`` waits in the buffer; when the wait grows past the window (``window`` events held for that
source, or ``max_wait`` seconds of wall clock) the missing range is declared a gap: a
``stream.gap`` event is emitted (source ``gap:<source>``, seq = first missing seq, so it is itself
unique and replay-safe) and the stream moves on. An event at or below the released position is a
duplicate or arrived after its gap was declared; it is reported, never applied.
"""

from __future__ import annotations

import heapq
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field

from twin.live.events import Event


@dataclass(kw_only=True)
class ReorderConfig:
    window: int = 1000  # events held per source before a gap is declared
    max_wait: float = 2.0  # s of wall clock an early event may wait for a missing one


@dataclass
class Released:
    """What one push/poll produced: events in order, late/duplicate ones, gap events."""

    events: list[Event] = field(default_factory=list)
    duplicates: list[Event] = field(default_factory=list)
    late: list[Event] = field(default_factory=list)  # arrived after their gap was declared
    gaps: list[Event] = field(default_factory=list)


class _Source:
    __slots__ = ("next", "heap", "held", "first_wait", "gaps")

    def __init__(self, next_seq: int) -> None:
        self.next = next_seq
        self.heap: list[tuple[int, Event]] = []
        self.held: set[int] = set()
        self.first_wait = 0.0  # wall clock when the oldest early event started waiting
        self.gaps: list[tuple[int, int]] = []  # declared (from_seq, to_seq) ranges


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

    def positions(self) -> dict[str, int]:
        """Per source, the highest seq up to which everything has been released."""
        return {name: src.next - 1 for name, src in self._src.items()}

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
        if not src.heap:
            src.first_wait = self._clock()
        heapq.heappush(src.heap, (seq, ev))
        src.held.add(seq)
        if len(src.heap) > self.cfg.window:
            self._skip(ev.source, src, out)
        return out

    def poll(self, out: Released | None = None) -> Released:
        """Declare gaps whose wait passed ``max_wait``; call it when the source is idle."""
        out = out if out is not None else Released()
        now = self._clock()
        for name, src in self._src.items():
            while src.heap and now - src.first_wait >= self.cfg.max_wait:
                self._skip(name, src, out)
        return out

    def flush(self, out: Released | None = None) -> Released:
        """Release everything held, declaring every open gap (end of a finite stream)."""
        out = out if out is not None else Released()
        for name, src in self._src.items():
            while src.heap:
                self._skip(name, src, out)
        return out

    def _skip(self, name: str, src: _Source, out: Released) -> None:
        first = src.heap[0][0]
        gap = Event(
            f"gap:{name}:{src.next}",
            f"gap:{name}",
            src.next,
            src.heap[0][1].time,
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

    def _drain(self, src: _Source, out: Released) -> None:
        heap = src.heap
        while heap and heap[0][0] == src.next:
            seq, ev = heapq.heappop(heap)
            src.held.discard(seq)
            out.events.append(ev)
            src.next = seq + 1
