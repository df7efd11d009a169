"""The reorder buffer: in-order release, duplicates, bounded window, timed gaps, late events."""

from __future__ import annotations

from twin.live.events import make_event
from twin.live.order import ReorderBuffer, ReorderConfig


def e(seq, source="s"):
    return make_event(source, seq, 1000.0 + seq, "vehicle.state", "V1", state="idle")


def seqs(events):
    return [(x.source, x.seq) for x in events]


def test_releases_each_source_in_seq_order():
    """Out-of-order events of two sources come out in seq order per source."""
    buf = ReorderBuffer()
    out = []
    for x in (e(2), e(1, "t"), e(3), e(1), e(2, "t")):
        out += buf.push(x).events
    assert seqs(out) == [("t", 1), ("s", 1), ("s", 2), ("s", 3), ("t", 2)]
    assert buf.held() == 0


def test_duplicates_are_dropped_whether_released_or_held():
    """A second copy of a released or of a waiting event is reported as a duplicate."""
    buf = ReorderBuffer()
    r1 = buf.push(e(1))
    r2 = buf.push(e(1))
    buf.push(e(3))
    r3 = buf.push(e(3))
    assert len(r1.events) == 1 and len(r2.duplicates) == 1 and len(r3.duplicates) == 1
    assert buf.duplicates == 2


def test_seq_beyond_the_window_is_refused_not_a_gap():
    """With window 3, an event more than 3 seqs past the highest seen is refused, declaring
    nothing; consecutive events after a loss are held, and the 4th held declares the gap."""
    buf = ReorderBuffer(ReorderConfig(window=3, max_wait=1e9))
    buf.push(e(1))
    for s in (3, 4):
        assert buf.push(e(s)).events == []
    hijack = buf.push(make_event("s", 10**15, 1000.0, "vehicle.state", "V1", state="idle"))
    assert hijack.refused and hijack.events == [] and not hijack.gaps
    assert "the next expected seq is 2 and seqs up to 7 are accepted" in hijack.refused[0][1]
    assert buf.push(e(8)).refused and buf.refused == 2
    assert buf.push(e(7)).events == [] and buf.held() == 3 and buf.positions() == {"s": 1}
    r = buf.push(e(9))  # within 3 of 7; a 4th event held: seq 2 is declared lost
    assert seqs(r.gaps) == [("gap:s", 2)] and [x.seq for x in r.events[1:]] == [3, 4]
    assert buf.positions() == {"s": 4} and buf.held() == 2


def test_gap_declared_when_an_early_event_waited_max_wait():
    """A missing seq is declared lost by a gap event once the next one waited max_wait."""
    now = [0.0]
    buf = ReorderBuffer(ReorderConfig(window=3, max_wait=1.0), clock=lambda: now[0])
    buf.push(e(1))
    assert buf.push(e(3)).events == []
    now[0] = 1.0
    r = buf.poll()
    assert [x.type for x in r.events] == ["stream.gap", "vehicle.state"]
    gap = r.gaps[0]
    assert (gap.source, gap.seq, gap.subject, gap.data) == (
        "gap:s",
        2,
        "s",
        {"from_seq": 2, "to_seq": 2},
    )
    late = buf.push(e(2))
    assert late.late == [e(2)] and buf.missing == 1


def test_gap_declared_after_max_wait():
    """An early event waits at most max_wait seconds (injected clock) before the gap is declared."""
    now = [0.0]
    buf = ReorderBuffer(ReorderConfig(window=100, max_wait=2.0), clock=lambda: now[0])
    buf.push(e(1))
    buf.push(e(4))
    now[0] = 1.9
    assert buf.poll().events == []
    now[0] = 2.0
    r = buf.poll()
    assert seqs(r.events) == [("gap:s", 2), ("s", 4)]
    assert r.gaps[0].data == {"from_seq": 2, "to_seq": 3}


def test_resumes_after_restart():
    """Started from a stored position, the buffer drops what is stored and waits for the next."""
    buf = ReorderBuffer(start={"s": 10})
    assert buf.push(e(10)).duplicates == [e(10)]
    assert seqs(buf.push(e(11)).events) == [("s", 11)]


def test_a_patient_source_waits_for_the_resend_instead_of_declaring_a_gap():
    """An end-to-end producer re-sends what is missing: no gap on the timer, at most window
    events held (more are deferred, not dead-lettered: they come again), and the re-sent seq
    releases them all."""
    now = [0.0]
    buf = ReorderBuffer(ReorderConfig(window=3, max_wait=1.0), clock=lambda: now[0])
    buf.be_patient("s")
    buf.push(e(1))
    for s in (3, 4, 5):
        assert buf.push(e(s)).events == []
    r = buf.push(e(6))  # the held buffer is full: deferred, its re-send comes later
    assert r.deferred and not r.refused and buf.refused == 0
    assert buf.push(e(10**6)).deferred and buf.refused == 0  # far ahead: deferred too
    now[0] = 100.0
    assert buf.poll().events == [] and buf.held() == 3
    r = buf.push(e(2))
    assert [x.seq for x in r.events] == [2, 3, 4, 5] and not r.gaps
