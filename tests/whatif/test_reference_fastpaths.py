"""The reference engine's fast paths give, bit for bit, what the plain formulation gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from twin.whatif.reference.calendars import CalendarsMixin, _due
from twin.whatif.reference.compiled import CFamily
from twin.whatif.reference.entities import Tool
from twin.whatif.reference.streams import Stream


def naive_pms(pmws: list[list], runs: list[int]) -> list[list]:
    """Per run: subtract its wafers from every count; a count at or below 0 is due (+interval)."""
    out = []
    for w in runs:
        due = []
        for pmw in pmws:
            pmw[0] -= w
            if pmw[0] <= 0:
                pmw[0] += pmw[1]
                due.append(pmw[2])
        out.append(due)
    return out, [pmw[0] for pmw in pmws]


def lazy_pms(pmws: list[list], runs: list[int]) -> list[list]:
    """The engine's way: a running wafer total, PM counts brought up to date only when due."""
    tool = Tool("T#1", CFamily(0, "T"))
    for left, interval, name in pmws:
        tool.pm_wafer.append([left, interval, name, tool.wafers])
        tool.pm_due = min(tool.pm_due, _due(left, tool.wafers))
    out = []
    for w in runs:
        tool.wafers += w
        out.append(CalendarsMixin._wafer_pms(None, tool) if tool.wafers >= tool.pm_due else [])
    return out, [left - (tool.wafers - since) for left, _, _, since in tool.pm_wafer]


counts = st.floats(min_value=0.0, max_value=5000.0, allow_nan=False)
intervals = st.one_of(st.integers(1, 3000), st.floats(0.5, 3000.0, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(counts, intervals), min_size=1, max_size=3),
    st.lists(st.integers(0, 200), max_size=400),
)
def test_lazy_wafer_pm_counts_equal_run_by_run_subtraction(pms, runs):
    """Wafer-count PMs fall due at the same runs, in the same order, with the same counts left."""
    naive = [[left, interval, f"pm{i}"] for i, (left, interval) in enumerate(pms)]
    lazy = [[left, interval, f"pm{i}"] for i, (left, interval) in enumerate(pms)]
    assert lazy_pms(lazy, runs) == naive_pms(naive, runs)


def test_stream_buffer_pop_is_the_next_u():
    """Taking ``buf.pop()`` (or ``u()`` when empty) gives the numbers ``u()`` alone gives."""
    a, b = Stream(7, 1, 2, 3), Stream(7, 1, 2, 3)
    mixed = []
    for k in range(5000):
        if k % 3:
            buf = b.buf
            mixed.append(buf.pop() if buf else b.u())
        else:
            mixed.append(b.u())
    assert mixed == [a.u() for _ in range(5000)]
