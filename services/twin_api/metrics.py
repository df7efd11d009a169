"""Prometheus metrics through ``prometheus_client``: exact integer counts (a counter of
1,117,969 reads 1117969.0, not 1.11797e+06), process metrics, and the runtime's figures
collected at scrape time (nothing to keep in step on the hot paths).

One ``CollectorRegistry`` per app, so several apps in one process (tests) do not share series.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client import Histogram as _Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# seconds; the request-latency and ingest-lag histogram buckets
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """A labelled histogram (not registered anywhere itself: the app's collector yields it)."""

    def __init__(self, name: str, help: str, labels: tuple[str, ...]) -> None:
        self._h = _Histogram(name, help, labels, buckets=BUCKETS, registry=None)

    def observe(self, value: float, *label_values: str) -> None:
        self._h.labels(*label_values).observe(value)

    def collect(self) -> list[Metric]:
        return list(self._h.collect())


class RuntimeCollector:
    """The runtime's counters and gauges, read when Prometheus scrapes."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        rt = self.rt
        if rt.sync is None or rt.store is None:  # not started (or stopped): nothing to count
            return
        s = rt.stats()

        def counter(name: str, help: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, help, value=value)

        def gauge(name: str, help: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, help, value=value)

        yield counter("twin_events_ingested", "events accepted, stored and applied", s["accepted"])
        yield counter("twin_events_dead_lettered", "payloads rejected to the dead-letter table",
                      s["dead_lettered"])  # fmt: skip
        yield counter("twin_events_duplicate", "duplicates ignored", s["duplicates"])
        yield counter("twin_stream_gaps", "sequence gaps declared", s["gaps"])
        yield gauge("twin_events_held", "events waiting in the reorder buffer", s["held"])
        yield gauge("twin_events_stored", "events in the store", s["stored"])
        yield gauge("twin_ingest_lag_seconds", "receipt to durable commit of the latest batch",
                    rt.ingest_lag)  # fmt: skip
        yield from rt.ingest_seconds.collect()
        size = store_bytes(rt.settings.store)
        if size is not None:
            yield gauge("twin_store_bytes", "size of the event store on disk (with its WAL)", size)
        brokers = GaugeMetricFamily(
            "twin_mqtt_connected", "1 while the MQTT subscription is connected", labels=["broker"]
        )
        for src in rt.sources:
            if getattr(src, "connected", None) is not None:
                brokers.add_metric([f"{src.cfg.host}:{src.cfg.port}"], src.connected.is_set())
        yield brokers
        yield gauge("twin_store_write_failing",
                    "1 while the event store's last write failed (readiness: /ready)",
                    rt.sync.store_error is not None)  # fmt: skip
        yield gauge("twin_websocket_clients", "connected stream clients", len(rt.hub.clients))
        yield counter("twin_websocket_dropped", "stream clients dropped as too slow",
                      rt.hub.dropped)  # fmt: skip
        jobs = GaugeMetricFamily("twin_whatif_jobs", "what-if jobs by state", labels=["state"])
        for state, n in rt.jobs.counts().items():
            jobs.add_metric([state], n)
        yield jobs
        done = CounterMetricFamily("twin_whatif_jobs_finished", "what-if jobs finished",
                                   labels=["outcome"])  # fmt: skip
        for outcome in ("completed", "failed", "cancelled"):
            done.add_metric([outcome], getattr(rt.jobs, outcome))
        yield done
        yield counter("twin_ingest_errors", "errors caught by the ingest loop", rt.ingest_errors)
        world = getattr(rt.sync, "world", None)
        yield counter("twin_physics_errors", "physics world updates that failed",
                      getattr(world, "errors", 0))  # fmt: skip
        yield from rt.request_seconds.collect()


def store_bytes(path: str | None) -> int | None:
    """Bytes of an SQLite store and its WAL; None for a store not in a file."""
    if not path or "://" in path:
        return None
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.stat(path + suffix).st_size
        except OSError:
            pass
    return total


def registry_for(rt: Any) -> CollectorRegistry:
    """The app's registry: the runtime's figures and this process's CPU, memory and files."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(rt))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
