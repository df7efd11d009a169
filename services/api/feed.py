"""Event feeds: something that publishes a live event stream into the runtime's in-process bus.

``EventFeed`` is the seam the fab emulator (``twin emulate``, not written yet) will plug into.
Until it lands, ``SyntheticFeed`` replays ``twin.live.synthetic`` streams on the scene's own
tools, ports, vehicles and routes: the generator's abstract rail segments and stocker port are
mapped onto real ones of the scene, event times follow the wall clock, and the stream repeats
with fresh lot, carrier and transfer ids so it never ends.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Any, Protocol

from twin.live.catalog import Catalog
from twin.live.events import Event
from twin.live.synthetic import N_SEGMENTS, SEG_LEN, STOCKER, StreamConfig, synthetic_stream


class Sink(Protocol):
    def publish(self, event: Event) -> None: ...


class EventFeed(Protocol):
    """Publishes events into ``sink`` from its own thread until ``stop``."""

    def start(self, sink: Sink) -> None: ...

    def stop(self) -> None: ...


class SyntheticFeed:
    """A never-ending, valid stream for the scene of ``catalog`` (see the module docstring)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        speed: float = 1.0,  # × real time
        seed: int = 0,
        lots: int = 40,  # lots per cycle of the generator
        process_time: float = 120.0,  # s, mean per step (short, so a demo shows movement)
        release_gap: float = 45.0,  # s between releases (mean)
    ) -> None:
        self.catalog, self.speed, self.seed = catalog, speed, seed
        self.stream_cfg = StreamConfig(
            lots=lots, seed=seed, process_time=process_time, release_gap=release_gap
        )
        self.segment_map = _segment_map(catalog)
        self.stocker_port = _stocker_port(catalog)
        self.published = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cycle(self, k: int, start: float) -> list[Event]:
        """Cycle ``k`` of the stream, its first event at ``start`` (s, event time)."""
        import dataclasses

        cfg = dataclasses.replace(self.stream_cfg, seed=self.seed + k, start=0.0)
        out = []
        for ev in synthetic_stream(cfg, self.catalog):
            data = dict(ev.data)
            for key in ("from", "to"):
                if data.get(key) == f"{STOCKER}.P1":
                    data[key] = self.stocker_port
            if "segment" in data:
                data["segment"] = self.segment_map[data["segment"]]
            subject = ev.subject
            if k:  # ids must be new in every cycle (a lot is released once)
                if ev.type.startswith(("lot.", "carrier.")):
                    subject = f"{subject}.{k}"
                for key in ("lot", "transfer", "carrier"):
                    if key in data:
                        data[key] = f"{data[key]}.{k}"
            out.append(
                Event("", ev.source, 0, start + ev.time / self.speed, ev.type, subject, data)
            )
        return out

    def start(self, sink: Sink) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(sink,), name="twin-feed", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, sink: Sink) -> None:
        seqs: dict[str, int] = {}
        start = _time.time()
        k = 0
        while not self._stop.is_set():
            events = self.cycle(k, start)
            for ev in events:
                delay = ev.time - _time.time()
                if delay > 0 and self._stop.wait(delay):
                    return
                seq = seqs[ev.source] = seqs.get(ev.source, 0) + 1
                sink.publish(
                    Event(
                        f"{ev.source}:{seq}", ev.source, seq, ev.time, ev.type, ev.subject, ev.data
                    )
                )
                self.published += 1
            start = (events[-1].time if events else _time.time()) + 1.0
            k += 1


def _segment_map(catalog: Catalog) -> dict[str, str]:
    """The generator's segments S0..S11 (offsets up to SEG_LEN/2) -> real segments long enough."""
    long_enough = sorted(s for s, length in catalog.segments.items() if length >= SEG_LEN / 2)
    if not long_enough:
        long_enough = sorted(catalog.segments) or [f"S{i}" for i in range(N_SEGMENTS)]
    return {f"S{i}": long_enough[i % len(long_enough)] for i in range(N_SEGMENTS)}


def _stocker_port(catalog: Catalog) -> str:
    stockers = {e for e, fam in catalog.equipment.items() if fam is None}
    ports = sorted(p for p, eq in catalog.ports.items() if eq in stockers)
    return ports[0] if ports else f"{STOCKER}.P1"


def feed_for(kind: str, catalog: Catalog, **kw: Any) -> EventFeed | None:
    """The feed named in the settings (``none`` -> None)."""
    if kind == "none":
        return None
    if kind == "synthetic":
        return SyntheticFeed(catalog, **kw)
    raise ValueError(f"unknown feed {kind!r} (accepted: none, synthetic)")
