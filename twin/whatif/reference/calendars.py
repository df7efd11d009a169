"""Breakdowns and preventive maintenance of the reference engine's tools (a mixin of Engine).

Downs preempt: work on the tool resumes after the repair, its end moved back by the down's
length; a down that hits a tool already down starts when the first one ends.

Calendar events (each tool's next breakdown and next PM, mostly far ahead) wait in a heap of
their own, ``cal_wait``; only the earliest of them are in the event heap (``cal_due`` lists
those). This keeps the event heap, where every event of the run is pushed and popped, about
half as large. The order of events is the one a single heap gives: keys (time, kind, sequence)
are unique, and a calendar event moves to the event heap while an earlier calendar event is
still there, so before the loop can reach its time.
"""

from __future__ import annotations

import math
from heapq import heappop, heappush

from twin.whatif.reference.config import SimConfig
from twin.whatif.reference.entities import DOWN_END, FAIL, JOB_END, PM_TIME, READY, Tool
from twin.whatif.reference.streams import KIND_CODES, Stream, draw


class CalendarsMixin:
    """Attach down/PM calendars to tools, draw their times, take tools down and up."""

    def _calendars(self) -> None:
        """Attach breakdown and PM calendars to every tool and schedule their first events."""
        self.cal_wait: list = []  # heap of calendar events not yet in the event heap
        self.cal_due: list = []  # heap of the calendar events in the event heap
        for fam in self.families.values():
            for att in self.model.calendars_of(fam.name) if fam.tools else []:
                for k, tool in enumerate(fam.tools):
                    self._attach(tool, att, first_factor(self.cfg, k, len(fam.tools)))

    def _attach(self, tool: Tool, att, stagger: float) -> None:
        """One calendar on one tool. A constant first occurrence F is staggered over the
        family's n tools (tool k at F·k/n, ``stagger`` = k/n), so that a family never goes to
        PM all at once, or is F on every tool (``SimConfig.pm_first="same"``, stagger 1)."""
        m, cfg = self.model, self.cfg
        first = att.first
        if att.kind == "down" and cfg.breakdowns and att.calendar in m.downs:
            cal = m.downs[att.calendar]
            t = self.t0 + self._first(tool.stream, first, stagger)
            self._push_calendar(t, FAIL, (tool, cal.mttf, cal.mttr))
        elif att.kind == "pm" and cfg.pms and att.calendar in m.pms:
            cal = m.pms[att.calendar]
            if cal.by == "wafers":
                left = self._first(tool.pm_stream, first, stagger) or cal.interval
                tool.pm_wafer.append([left, cal.interval, cal.duration, tool.wafers])
                tool.pm_due = min(tool.pm_due, _due(left, tool.wafers))
            else:
                t = self._first(tool.pm_stream, first, stagger)
                if t < self.t0:  # warm start: the next occurrence on the calendar
                    t += cal.interval * (1 + (self.t0 - t) // cal.interval)
                self._push_calendar(t, PM_TIME, (tool, cal))

    def _push_calendar(self, t: float, kind: int, item) -> None:
        """Schedule a breakdown or PM (see the module docstring)."""
        heappush(self.cal_wait, (t, kind, next(self.seq), item))
        self._calendar_refill()

    def _calendar_refill(self) -> None:
        """Move waiting calendar events to the event heap until the earliest one waiting is
        later than a calendar event already there (or none waits)."""
        wait, due = self.cal_wait, self.cal_due
        while wait and (not due or wait[0] < due[0]):
            ev = heappop(wait)
            heappush(self.heap, ev)
            heappush(due, ev)

    def _calendar_done(self) -> None:
        """The event loop has taken the earliest calendar event (the one being handled)."""
        heappop(self.cal_due)
        self._calendar_refill()

    def _first(self, stream: Stream, first, stagger: float) -> float:
        if first.kind == "constant":
            return first.mean * stagger
        return self._draw_dist(stream, first)

    def _draw_dist(self, stream: Stream, d) -> float:
        lo, hi = d.bounds(self.model.ptime_spread_mode)
        return draw(stream, KIND_CODES.get(d.kind, 0), lo, hi, d.mean)

    def _down(
        self, tool: Tool, t: float, duration: float, kind: str, calendar: bool = False
    ) -> float:
        """Take the tool down for ``duration`` s (after any down in progress); work waits.
        Returns the end of this down. With ``SimConfig.idle_downs="skip"`` a breakdown or
        calendar PM (``calendar``) of an idle tool that is up leaves it up (the down ends,
        unseen, at ``t + duration``); wafer-count PMs follow a run and always apply."""
        if calendar and self.skip_idle_downs and tool.in_idle and tool.down_until <= t:
            return t + duration
        start = max(t, tool.down_until)
        tool.down_until = start + duration
        if tool.in_idle:
            tool.fam.idle.remove(tool)
            tool.in_idle = False
        for job in tool.jobs:  # preempt-resume: running work ends later by the down's length
            job.end += duration
            self._push(job.end, JOB_END, job)
        if tool.ready > t:
            tool.ready += duration
            self._push(tool.ready, READY, tool)
        fs = self.stats[tool.fam.name]
        if kind == "pm":
            fs.pm += self._window(start, tool.down_until)
        else:
            fs.down += self._window(start, tool.down_until)
        self._push(tool.down_until, DOWN_END, tool)
        if self.obs is not None:
            state = "scheduled_down" if kind == "pm" else "unscheduled_down"
            self._state(tool, t, state, "pm" if kind == "pm" else "breakdown")
        return tool.down_until

    def _pm(self, item, t: float) -> None:
        """A calendar PM; the next one ``interval`` after this one's start or its end."""
        self._calendar_done()
        tool, cal = item
        duration = self._draw_dist(tool.pm_stream, cal.duration)
        self._down(tool, t, duration, "pm", calendar=True)
        self._push_calendar(
            t + cal.interval + (duration if self.pm_from_end else 0.0), PM_TIME, item
        )

    def _wafer_pms(self, tool: Tool) -> list:
        """Durations of the wafer-count PMs that fall due now (``tool.wafers`` has reached
        ``tool.pm_due``); each PM's count starts again.

        A PM's count of wafers left is only brought up to date here: ``left - (wafers since)``
        is, bit for bit, what subtracting every run's wafers one by one gives (whole numbers
        taken from a float stay exact until the count crosses zero, where both round once).
        """
        due, w = [], tool.wafers
        for pmw in tool.pm_wafer:
            left = pmw[0] - (w - pmw[3])
            if left <= 0:
                pmw[0], pmw[3] = left + pmw[1], w
                due.append(pmw[2])
        tool.pm_due = min(_due(pmw[0], pmw[3]) for pmw in tool.pm_wafer)
        return due

    def _fail(self, item, t: float) -> None:
        """A breakdown: repair now (after any down in progress); next failure after repair."""
        self._calendar_done()
        tool, mttf, mttr = item
        repaired = self._down(tool, t, self._draw_dist(tool.stream, mttr), "down", calendar=True)
        self._push_calendar(repaired + self._draw_dist(tool.stream, mttf), FAIL, item)


def first_factor(cfg: SimConfig, k: int, count: int) -> float:
    """The factor on a constant first occurrence F for tool k (from 0) of ``count``: (k + 1) /
    count when staggered, 1 with ``SimConfig.pm_first="same"`` (the kernel compiles the same)."""
    return 1.0 if cfg.pm_first == "same" else (k + 1) / count


def _due(left: float, since: int) -> float:
    """Wafer count at which a PM with ``left`` wafers to go at count ``since`` falls due."""
    return since + math.ceil(left) if math.isfinite(left) else math.inf
