"""The event feeds of `twin up`: the fab emulator behind the EventFeed seam."""

from __future__ import annotations

import itertools
import time

import pytest

from twin.emulator.emulator import EPOCH, Emulator, EmulatorConfig
from twin.errors import ConfigError
from twin.live.catalog import Catalog
from twin_api.feed import EmulatorFeed, feed_for


@pytest.fixture(scope="module")
def demo():
    from twin.process import load_model
    from twin.scene.load import load_scene

    scene = load_scene("scenes/demo-fab")
    return scene, load_model(scene.metadata["process_dir"])


class ListSink:
    def __init__(self) -> None:
        self.events: list = []

    def publish(self, event) -> None:
        self.events.append(event)


def test_emulator_feed_publishes_the_emulators_stream_and_stops_promptly(demo):
    """The feed publishes exactly the emulator's own stream (same seed, same start), in
    order, and stop() ends its thread within a second even while it waits for the next event."""
    scene, model = demo
    sink = ListSink()
    feed = EmulatorFeed(scene, model, speed=600.0, seed=3, start=EPOCH)
    feed.start(sink)
    deadline = time.monotonic() + 60
    while len(sink.events) < 150:
        assert time.monotonic() < deadline and feed.running(), feed.error
        time.sleep(0.05)
    t0 = time.monotonic()
    feed.stop()
    assert time.monotonic() - t0 < 1.0 and not feed.running()
    n = len(sink.events)
    assert feed.published == n and feed.error is None and feed.kpis is not None
    time.sleep(0.3)
    assert len(sink.events) == n  # nothing published after stop
    cfg = EmulatorConfig(seed=3, hours=feed.emulator.cfg.hours, start=EPOCH)
    expected = list(itertools.islice(Emulator(scene, model, config=cfg).events(), n))
    assert sink.events == expected


def test_emulator_feed_is_paced_by_speed(demo):
    """At `speed` fab s per wall s, no event is published before its fab time / speed."""
    scene, model = demo
    sink = ListSink()
    feed = EmulatorFeed(scene, model, speed=100.0, start=EPOCH)
    wall0 = time.monotonic()
    feed.start(sink)
    time.sleep(1.5)
    feed.stop()
    elapsed = time.monotonic() - wall0
    assert sink.events, "nothing published in 1.5 s"
    # the stream's fab time covered can not exceed wall time × speed (plus the event in hand)
    assert sink.events[-2].time - EPOCH <= elapsed * 100.0


def test_feed_for_names_the_feeds_and_needs_a_model_for_the_emulator(demo):
    """feed_for: 'none' is no feed, the emulator without a process model is a clear error,
    an unknown name lists the accepted ones."""
    scene, model = demo
    catalog = Catalog.from_scene(scene, model)
    assert feed_for("none", catalog) is None
    assert isinstance(feed_for("emulator", catalog, scene=scene, model=model), EmulatorFeed)
    with pytest.raises(ConfigError, match="names no process model"):
        feed_for("emulator", catalog, scene=scene, model=None)
    with pytest.raises(ValueError, match="accepted: none, emulator, synthetic"):
        feed_for("replay", catalog)
