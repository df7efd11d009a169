"""What a reference run returns: per-lot records (compact columns) and a KPI summary."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

DAY = 86400.0


@dataclass
class LotRecords:
    """Completed lots, one entry per lot in each column (times in s on the engine clock).

    ``steps[i]`` is, when the run recorded steps, a list of (step number, queue s, process s,
    transport s) for every step lot i executed (sampled-out steps are absent, reworked steps
    appear twice); otherwise ``steps`` is empty.
    """

    id: list[str] = field(default_factory=list)
    lot_type: list[str] = field(default_factory=list)
    product: list[str] = field(default_factory=list)
    priority: list[int] = field(default_factory=list)
    wafers: list[int] = field(default_factory=list)
    release: list[float] = field(default_factory=list)
    due: list[float] = field(default_factory=list)
    completion: list[float] = field(default_factory=list)
    queue_time: list[float] = field(default_factory=list)  # s, summed over the lot's steps
    process_time: list[float] = field(default_factory=list)  # s, incl. setups, load, downs
    transport_time: list[float] = field(default_factory=list)  # s
    steps_done: list[int] = field(default_factory=list)
    steps: list[list[tuple[int, float, float, float]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.id)

    def fingerprint(self) -> str:
        """SHA-256 (hex) over every lot's id, release, completion and steps executed, in
        completion order, times as exact float hex: equal for two runs exactly when these
        agree to the last bit (the golden values in tests/whatif/test_fingerprints.py)."""
        h = hashlib.sha256()
        for i in range(len(self.id)):
            row = (
                f"{ascii(self.id[i])}|{float(self.release[i]).hex()}|"
                f"{float(self.completion[i]).hex()}|{int(self.steps_done[i])}\n"
            )  # ascii(): quoted and escaped, so any id (a "|", a lone surrogate) is one field
            h.update(row.encode("ascii"))
        return h.hexdigest()

    def record(self, i: int) -> dict:
        """Lot i as a dict (for printing or JSON)."""
        out = {
            k: getattr(self, k)[i]
            for k in (
                "id", "lot_type", "product", "priority", "wafers", "release", "due",
                "completion", "queue_time", "process_time", "transport_time", "steps_done",
            )
        }  # fmt: skip
        if self.steps:
            out["steps"] = self.steps[i]
        return out


@dataclass
class FamilyStats:
    """Per-family accumulators over the measured window (after warm-up)."""

    tools: int
    area: str
    busy: float = 0.0  # s of tool time processing (all tools)
    setup: float = 0.0  # s of tool time in setups
    down: float = 0.0  # s of tool time in unscheduled downs
    pm: float = 0.0  # s of tool time in preventive maintenance
    lots_started: int = 0
    queue_time: float = 0.0  # s summed over started lots
    wip_area: float = 0.0  # lot·s: integral of lots in the family (queued + in process)
    departures: int = 0  # lots that left the family after warm-up
    sojourn: float = 0.0  # s summed over those lots (arrival in queue to end of processing)
    # s of tool time processing in each WIP sample interval [start + i dt, start + (i+1) dt)
    # within the measured window (SimConfig.busy_by_interval; else empty)
    busy_by: list[float] = field(default_factory=list)


def busy_intervals(start: float, end: float, dt: float) -> int:
    """The WIP sample intervals [start + i dt, start + (i + 1) dt) that cover [start, end]
    (both engines size SimConfig.busy_by_interval's accumulators by this)."""
    return max(1, math.ceil((end - start) / dt - 1e-9))


@dataclass
class SimResult:
    """Outcome of one replication. ``kpis()`` counts only lots completed after warm-up."""

    lots: LotRecords
    families: dict[str, FamilyStats]
    released: dict[str, int]  # lot type -> lots released during the run (after warm-up)
    raw_process_time: dict[str, float]  # product -> mean raw processing time of its route, s
    wip_times: list[float]  # s, sample times of the fab WIP
    wip_lots: list[int]  # lots in the fab at those times
    fab_wip_area: float  # lot·s after warm-up
    cqt_checks: int  # steps that ended a critical queue time window, after warm-up
    cqt_violations: int  # of which the window was exceeded
    start: float  # s, clock at the start
    warmup_end: float  # s
    end: float  # s
    events: int
    wall_seconds: float
    wip_end: int  # lots still in the fab at the end
    product_of_type: dict[str, str] = field(default_factory=dict)
    amhs: dict | None = None  # AMHS KPIs (twin.amhs.transport) when the AMHS moved the lots
    sample_dt: float = 0.0  # s between WIP samples (the intervals of FamilyStats.busy_by)

    def _by_interval(self, f: FamilyStats) -> list[float]:
        """A family's utilisation in each WIP sample interval (of its part in the measured
        window; 0 for an interval wholly in the warm-up)."""
        out = []
        for i, busy in enumerate(f.busy_by):
            a = self.start + i * self.sample_dt
            b = a + self.sample_dt
            span = min(b, self.end) - max(a, self.warmup_end)
            cap = max(f.tools, 1) * span
            out.append(busy / cap if span > 0 else 0.0)
        return out

    @property
    def measured_days(self) -> float:
        """Length of the measured window (after warm-up) in days."""
        return (self.end - self.warmup_end) / DAY

    def kpis(self) -> dict:
        """KPI summary: per lot type, per family, fab WIP, queue-time violations, run cost."""
        lots = self.lots
        comp = np.asarray(lots.completion, dtype=float)
        rel = np.asarray(lots.release, dtype=float)
        due = np.asarray(lots.due, dtype=float)
        types = np.asarray(lots.lot_type, dtype=object)
        keep = comp >= self.warmup_end
        days = max(self.measured_days, 1e-12)
        lot_types: dict[str, dict] = {}
        for lt in sorted(set(self.released) | set(lots.lot_type)):
            sel = keep & (types == lt) if len(types) else np.zeros(0, dtype=bool)
            ct = (comp[sel] - rel[sel]) / DAY
            n = int(sel.sum())
            rpt = self.raw_process_time.get(self.product_of_type.get(lt, ""), 0.0) / DAY
            lot_types[lt] = {
                "lots_completed": n,
                "lots_released": int(self.released.get(lt, 0)),
                "throughput_per_day": n / days,
                "cycle_time_days": {
                    "mean": float(ct.mean()) if n else float("nan"),
                    "p50": float(np.percentile(ct, 50)) if n else float("nan"),
                    "p95": float(np.percentile(ct, 95)) if n else float("nan"),
                },
                "x_factor": float(ct.mean() / rpt) if n and rpt > 0 else float("nan"),
                "on_time_share": float((comp[sel] <= due[sel]).mean()) if n else float("nan"),
            }
        span = self.end - self.warmup_end
        families = {}
        for name, f in self.families.items():
            cap = max(f.tools, 1) * span
            families[name] = {
                "area": f.area,
                "tools": f.tools,
                "utilisation": f.busy / cap if cap > 0 else 0.0,
                "setup_share": f.setup / cap if cap > 0 else 0.0,
                "down_share": f.down / cap if cap > 0 else 0.0,
                "pm_share": f.pm / cap if cap > 0 else 0.0,
                "lots_started": f.lots_started,
                "mean_queue_hours": f.queue_time / f.lots_started / 3600 if f.lots_started else 0.0,
                "mean_wip": f.wip_area / span if span > 0 else 0.0,
                "departures_per_day": f.departures / days,
                "mean_sojourn_hours": f.sojourn / f.departures / 3600 if f.departures else 0.0,
            }
            if f.busy_by and self.sample_dt > 0:
                families[name]["utilisation_by_interval"] = self._by_interval(f)
        total = int(keep.sum())
        fab_ct = float(((comp[keep] - rel[keep]) / DAY).mean()) if total else float("nan")
        wt = np.asarray(self.wip_times)
        wl = np.asarray(self.wip_lots, dtype=float)
        out = {
            "lot_types": lot_types,
            "families": families,
            "fab": {
                "lots_completed": total,
                "throughput_per_day": total / days,
                "cycle_time_days": fab_ct,
                "wip_mean": self.fab_wip_area / span if span > 0 else 0.0,
                "wip_end": self.wip_end,
            },
            "wip": {
                "times_days": (wt / DAY).tolist(),
                "lots": wl.astype(int).tolist(),
            },
            "queue_time_violations": self.cqt_violations,
            "queue_time_checks": self.cqt_checks,
            "events": self.events,
            "wall_seconds": self.wall_seconds,
            "simulated_days": (self.end - self.start) / DAY,
        }
        if self.amhs is not None:
            out["amhs"] = self.amhs
        return out
