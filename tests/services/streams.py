"""Event streams for the API tests: the live helper's synthetic generator on the demo fab."""

from __future__ import annotations

from functools import lru_cache

from twin.live.catalog import Catalog
from twin.live.events import Event, make_event


@lru_cache(maxsize=1)
def demo_catalog() -> Catalog:
    from twin.process import load_model
    from twin.scene.load import load_scene
    from twin_api.settings import DEFAULT_SCENE

    scene = load_scene(DEFAULT_SCENE)
    return Catalog.from_scene(scene, load_model(scene.metadata["process_dir"]))


def demo_stream(lots: int = 6, seed: int = 3, prefix: str = "") -> list[Event]:
    """A valid stream on the demo fab (the feed of `twin up`), sources renamed with ``prefix``
    so several tests can share one server without their sequences colliding."""
    from twin_api.feed import SyntheticFeed

    feed = SyntheticFeed(demo_catalog(), lots=lots, seed=seed)
    feed.stream_cfg.process_time, feed.stream_cfg.release_gap = 600.0, 300.0
    seqs: dict[str, int] = {}
    out = []
    for ev in feed.cycle(0, 1_800_000_000.0):
        src = prefix + ev.source
        seq = seqs[src] = seqs.get(src, 0) + 1
        subject = ev.subject
        data = dict(ev.data)
        if prefix and ev.type.startswith(("lot.", "carrier.")):
            subject = prefix + subject
            for key in ("lot", "transfer"):
                if key in data:
                    data[key] = prefix + data[key]
        out.append(Event(f"{src}:{seq}", src, seq, ev.time, ev.type, subject, data))
    return out


def tool_events(source: str, tools: list[str], n: int, t0: float = 1_800_000_000.0) -> list[Event]:
    """``n`` legal E10 changes per tool (standby <-> productive) from one source."""
    out = []
    seq = 0
    for k in range(n):
        for tool in tools:
            seq += 1
            state = "standby" if k % 2 == 0 else "productive"
            out.append(
                make_event(source, seq, t0 + k, "equipment.state", tool, state=state, reason="t")
            )
    return out


def dicts(events: list[Event]) -> list[dict]:
    return [e.to_dict() for e in events]
