"""Event feeds: something that publishes a live event stream into the runtime's in-process bus.

``EventFeed`` is the seam. Two feeds plug into it:

- ``EmulatorFeed`` (the default of ``twin up``) runs the fab emulator (``twin.emulator``,
  the stream of ``twin emulate``) on the runtime's scene and process model in scaled real time:
  the fab starts from its model's initial WIP at the wall-clock time the feed starts, lots are
  released, carried by the OHT and processed, tools break down and get PMs.
- ``SyntheticFeed`` replays ``twin.live.synthetic`` streams on the scene's own tools, ports,
  vehicles and routes: the generator's abstract rail segments and stocker port are mapped onto
  real ones of the scene, event times follow the wall clock, and the stream repeats with fresh
  lot, carrier and transfer ids so it never ends. It needs no process model.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from typing import Any, Protocol

from twin.errors import ConfigError
from twin.live.catalog import Catalog
from twin.live.events import Event
from twin.live.synthetic import N_SEGMENTS, SEG_LEN, STOCKER, StreamConfig, synthetic_stream

log = logging.getLogger("twin.api")

FEEDS = ("none", "emulator", "synthetic")
EMULATOR_HOURS = 24.0 * 365  # fab hours the emulator feed runs for (a year: it does not end)


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


class EmulatorFeed:
    """The fab emulator on ``scene`` and ``model``, published at ``speed`` fab s per wall s."""

    def __init__(
        self,
        scene: Any,
        model: Any,
        *,
        speed: float = 60.0,  # fab s per wall s
        seed: int = 0,
        hours: float = EMULATOR_HOURS,  # h of fab time; the feed ends there
        start: float | None = None,  # s, UTC epoch of the fab's time 0 (None: now)
    ) -> None:
        from twin.emulator.emulator import Emulator, EmulatorConfig

        # built here, not in the thread, so a scene that does not fit its model fails at start
        cfg = EmulatorConfig(
            seed=seed, hours=hours, start=float(int(_time.time() if start is None else start))
        )
        self.emulator = Emulator(scene, model, config=cfg)
        self.speed = speed
        self.published = 0
        self.kpis: dict[str, Any] | None = None  # the emulator's own, once its run has ended
        self.error: str | None = None  # why the run ended early, if it failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, sink: Sink) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(sink,), name="twin-feed", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()  # the emulator asks at least every 0.2 s
        if self._thread is not None:
            self._thread.join(timeout=5)

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, sink: Sink) -> None:
        feed = self

        class Counting:
            def publish(self, event: Event) -> None:
                sink.publish(event)
                feed.published += 1

        try:
            self.kpis = self.emulator.run(Counting(), speed=self.speed, stop=self._stop.is_set)
        except Exception as exc:  # the API keeps serving what was published
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("emulator feed stopped")


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


def feed_for(
    kind: str, catalog: Catalog, *, scene: Any = None, model: Any = None, **kw: Any
) -> EventFeed | None:
    """The feed named in the settings (``none`` -> None); the emulator needs the scene and its
    process model."""
    if kind == "none":
        return None
    if kind == "synthetic":
        return SyntheticFeed(catalog, **kw)
    if kind == "emulator":
        if scene is None or model is None:
            raise ConfigError(
                "emulator feed",
                ["the scene names no process model (scene.yaml 'process:' or TWIN_PROCESS)"],
            )
        return EmulatorFeed(scene, model, **kw)
    raise ValueError(f"unknown feed {kind!r} (accepted: {', '.join(FEEDS)})")
