"""Runner-facing engine of the Warp kernel: compile, allocate, launch, read back, KPIs.

``simulate_batch(models, config, replications)`` runs S scenarios × R replications in one
launch per memory-sized chunk (thread tid -> scenario tid // R, replication reps[tid % R]) and
returns one :class:`KernelRun` per thread. ``KernelRun.result()`` rebuilds the reference's
``SimResult`` from the per-lot records, so ``kpis()`` is the reference's own code;
``KernelRun.kpis()`` uses the device statistics instead when records were not kept
(percentiles from the per-type cycle-time histograms).

``KernelEngine`` implements the runner's engine protocol and is registered as ``"kernel"``.
"""

from __future__ import annotations

import math
import operator
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.errors import ConfigError, TwinError
from twin.process.model import FabModel
from twin.whatif.kernel.compile import HIST_BINS, Compiled, compile_model, stack
from twin.whatif.reference.config import DAY, MAX_REPLICATION, SimConfig, StartState
from twin.whatif.reference.results import FamilyStats, LotRecords, SimResult

SIZE_KEY = {1: "heap", 2: "lots", 3: "jobs", 4: "dedications"}  # device error code -> size
TABLE_NAMES = {
    "heap": "event heap",
    "lots": "lot table",
    "jobs": "job table",
    "dedications": "per-lot dedication table (4 pending same-tool steps)",
    "records": "per-lot record table",
    "samples": "WIP sample table",
}


class CapacityError(TwinError):
    """A per-replication table of the kernel was too small (named, with the size tried)."""

    def __init__(self, table: str, size: int, key: str):
        self.table, self.size, self.key = table, size, key
        super().__init__(
            f"kernel {table} overflowed at {size} entries per replication; rerun with "
            f"capacity {{'{key}': {2 * size}}} or more (KernelEngine(capacity=...))"
        )


def _wp():
    import warp as wp

    quiet(wp)
    wp.init()
    return wp


def quiet(wp) -> None:
    """No banner or per-module messages on stdout (``--json`` output must stay JSON)."""
    wp.config.quiet = True
    if hasattr(wp, "LOG_WARNING") and hasattr(wp.config, "log_level"):
        wp.config.log_level = max(wp.config.log_level, wp.LOG_WARNING)


def default_device() -> str:
    """``cuda:0`` when Warp sees a GPU, else ``cpu``."""
    wp = _wp()
    return "cuda:0" if wp.get_cuda_device_count() > 0 else "cpu"


def check_device(wp, device: str) -> None:
    """A device Warp can launch on, or a TwinError saying which ones it sees."""
    known = [str(d) for d in wp.get_devices()]
    name = "cuda:0" if device == "cuda" else device
    if name not in known:
        raise TwinError(f"device {device!r} is not available to Warp; devices: {', '.join(known)}")


def state_sizes(sizes: dict[str, int], hist_bins: int) -> dict[str, int]:
    """Slots per replication of every state size key."""
    return {
        1: 1,
        "heap": sizes["heap"],
        "streams4": 4 * sizes["n_streams"],
        "lots": sizes["lots"],
        "lots4": 4 * sizes["lots"],
        "classes": sizes["n_setups"] + 2,
        "famcls": sizes["n_fam"] * (sizes["n_setups"] + 2),
        "fams": sizes["n_fam"],
        "steps": sizes["n_steps"],
        "tools": sizes["n_tools"],
        "pmw": max(1, sizes.get("n_pmw", 1)),
        "jobs": sizes["jobs"],
        "rels": sizes["n_rel"],
        "types": sizes["n_types"],
        "hist": sizes["n_types"] * hist_bins,
        "samples": sizes["samples"],
        "famsamp": sizes["n_fam"] * sizes["samples"] if sizes.get("busy_by") else 1,
        "records": sizes["records"],
        "trace": max(1, sizes.get("trace", 1)),
    }


def bytes_per_replication(sizes: dict[str, int], records: bool = True) -> int:
    """Device bytes one replication's state takes (records optional)."""
    from twin.whatif.kernel.layout import STATE

    slots = state_sizes(sizes, HIST_BINS)
    total = 0
    for dt, key in STATE.values():
        k = slots[key]
        if key == "records" and not records:
            k = 1
        total += np.dtype(dt).itemsize * k
    return total


@dataclass
class KernelRun:
    """What one thread (one replication of one scenario) produced, read back to the host."""

    comp: Compiled
    replication: int
    seed: int
    out: dict[str, np.ndarray]  # state name -> this thread's slots
    records: bool
    wall_seconds: float
    sample_dt: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return int(self.out["events"][0])

    def lot_records(self) -> LotRecords:
        """Completed lots in completion order (the reference's LotRecords)."""
        c, o = self.comp, self.out
        k = int(o["ncomp"][0])
        t = c.tables
        src, num = o["rc_src"][:k], o["rc_num"][:k]
        rec = LotRecords()
        for i in range(k):
            s = int(src[i])
            if s >= 0:
                rec.id.append(c.init_ids[s])
                ty = int(t["il_type"][s])
                rec.priority.append(int(t["il_prio"][s]))
                rec.wafers.append(int(t["il_wafers"][s]))
            else:
                r = -s - 1
                rec.id.append(f"{c.rel_types[r]}_{int(num[i])}")
                ty = int(t["rel_type"][r])
                rec.priority.append(int(t["rel_prio"][r]))
                rec.wafers.append(int(t["rel_wafers"][r]))
            lt = c.lot_types[ty]
            rec.lot_type.append(lt)
            rec.product.append(c.product_of_type[lt])
        rec.release = o["rc_release"][:k].tolist()
        rec.due = o["rc_due"][:k].tolist()
        rec.completion = o["rc_comp"][:k].tolist()
        rec.queue_time = o["rc_qt"][:k].tolist()
        rec.process_time = o["rc_pt"][:k].tolist()
        rec.transport_time = o["rc_tt"][:k].tolist()
        rec.steps_done = o["rc_nsteps"][:k].astype(int).tolist()
        return rec

    def _families(self) -> dict[str, FamilyStats]:
        c, o = self.comp, self.out
        fams = {}
        for f, name in enumerate(c.families):
            if c.family_delay[f]:
                continue
            fams[name] = FamilyStats(
                tools=c.family_tools[f],
                area=c.family_areas[f],
                busy=float(o["fs_busy"][f]),
                setup=float(o["fs_setup"][f]),
                down=float(o["fs_down"][f]),
                pm=float(o["fs_pm"][f]),
                lots_started=int(o["fs_started"][f]),
                queue_time=float(o["fs_qtime"][f]),
                wip_area=float(o["f_area"][f]),
                departures=int(o["fs_dep"][f]),
                sojourn=float(o["fs_sojourn"][f]),
                busy_by=self._busy_by(f),
            )
        return fams

    def _busy_by(self, f: int) -> list[float]:
        """Family f's busy time per sample interval (SimConfig.busy_by_interval), else []."""
        nb = int(self.comp.tables["busy_nb"][0])
        if not nb:
            return []
        samples = len(self.out["samp"])  # the run's sample slots: fs_bint's stride
        return [float(x) for x in self.out["fs_bint"][f * samples : f * samples + nb]]

    def _released(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r, lt in enumerate(self.comp.rel_types):
            if self.comp.tables["rel_on"][r]:
                v = int(self.out["rel_done"][r])
                if v or lt not in out:
                    out[lt] = out.get(lt, 0) + v
        return {k: v for k, v in out.items() if v}

    def _wip(self) -> tuple[list[float], list[int]]:
        k = int(self.out["nsamp"][0])
        times, t = [], self.comp.t0
        for _ in range(k):  # the reference adds sample_dt repeatedly: same rounding
            times.append(t)
            t += self.sample_dt
        return times, self.out["samp"][:k].astype(int).tolist()

    def result(self) -> SimResult:
        """The reference's SimResult (needs the per-lot records)."""
        if not self.records:
            raise ConfigError("kernel result", ["records were not kept; use kpis()"])
        wt, wl = self._wip()
        return SimResult(
            lots=self.lot_records(),
            families=self._families(),
            released=self._released(),
            raw_process_time=self.comp.raw_process_time,
            wip_times=wt,
            wip_lots=wl,
            fab_wip_area=float(self.out["fab_area"][0]),
            cqt_checks=int(self.out["cqt_checks"][0]),
            cqt_violations=int(self.out["cqt_viol"][0]),
            start=self.comp.t0,
            warmup_end=self.comp.warm,
            end=self.comp.end,
            events=self.events,
            wall_seconds=self.wall_seconds,
            wip_end=int(self.out["fab_n"][0]),
            product_of_type=self.comp.product_of_type,
            sample_dt=self.sample_dt,
        )

    def kpis(self) -> dict:
        """The reference's KPI dict; from records when kept, else from device statistics."""
        if self.records:
            return self.result().kpis()
        return self._device_kpis()

    def _device_kpis(self) -> dict:
        c, o = self.comp, self.out
        # a SimResult without lots gives the family/fab/wip parts; lot types from the device
        wt, wl = self._wip()
        base = SimResult(
            lots=LotRecords(),
            families=self._families(),
            released=self._released(),
            raw_process_time=c.raw_process_time,
            wip_times=wt,
            wip_lots=wl,
            fab_wip_area=float(o["fab_area"][0]),
            cqt_checks=int(o["cqt_checks"][0]),
            cqt_violations=int(o["cqt_viol"][0]),
            start=c.t0,
            warmup_end=c.warm,
            end=c.end,
            events=self.events,
            wall_seconds=self.wall_seconds,
            wip_end=int(o["fab_n"][0]),
            product_of_type=c.product_of_type,
            sample_dt=self.sample_dt,
        ).kpis()
        days = max(base["simulated_days"] - c.warm / DAY + c.t0 / DAY, 1e-12)
        width = float(c.tables["hist_w"][0])
        total, ct_sum = 0, 0.0
        for ty, lt in enumerate(c.lot_types):
            n = int(o["lt_n"][ty])
            if n == 0 and lt not in base["lot_types"]:
                continue
            s = float(o["lt_sum"][ty])
            hist = o["hist"][ty * HIST_BINS : (ty + 1) * HIST_BINS]
            rpt = c.raw_process_time.get(c.product_of_type.get(lt, ""), 0.0) / DAY
            mean = s / n if n else math.nan
            base["lot_types"][lt] = {
                "lots_completed": n,
                "lots_released": int(base["lot_types"].get(lt, {}).get("lots_released", 0)),
                "throughput_per_day": n / days,
                "cycle_time_days": {
                    "mean": mean,
                    "p50": _hist_percentile(hist, width, 50) if n else math.nan,
                    "p95": _hist_percentile(hist, width, 95) if n else math.nan,
                },
                "x_factor": mean / rpt if n and rpt > 0 else math.nan,
                "on_time_share": int(o["lt_ontime"][ty]) / n if n else math.nan,
            }
            total += n
            ct_sum += s
        base["lot_types"] = dict(sorted(base["lot_types"].items()))
        base["fab"]["lots_completed"] = total
        base["fab"]["throughput_per_day"] = total / days
        base["fab"]["cycle_time_days"] = ct_sum / total if total else math.nan
        return base


def _hist_percentile(hist: np.ndarray, width: float, q: float) -> float:
    """Percentile of a histogram, linear inside the bin (numpy's 'linear' on bin centres)."""
    n = int(hist.sum())
    target = q / 100.0 * (n - 1)
    cum = np.cumsum(hist)
    b = int(np.searchsorted(cum, target, side="right"))
    below = cum[b - 1] if b > 0 else 0
    frac = (target - below + 0.5) / max(int(hist[b]), 1)
    return (b + min(max(frac, 0.0), 1.0)) * width


def pool_slots(sizes: dict[str, int], records: bool) -> dict[str, tuple[dict[str, int], int]]:
    """Per state pool: field -> first slot, and the pool's slots per replication."""
    from twin.whatif.kernel.layout import STATE, STATE_POOLS

    slots = state_sizes(sizes, HIST_BINS)
    out: dict[str, tuple[dict[str, int], int]] = {}
    for dt, pool in STATE_POOLS.items():
        base, offs = 0, {}
        for name, (fdt, key) in STATE.items():
            if fdt != dt:
                continue
            offs[name] = base
            base += 1 if key == "records" and not records else slots[key]
        out[pool] = (offs, max(base, 1))
    return out


LAYOUTS = ("interleaved", "blocked")


def default_layout(device: str) -> str:
    """The state layout that pays on ``device``: ``interleaved`` on CUDA (the replication
    fastest-varying: neighbouring threads read neighbouring words), ``blocked`` on the CPU
    (each replication's state contiguous: Warp runs the threads one after the other, and
    interleaving would put one useful word in each cache line)."""
    return "interleaved" if str(device).startswith("cuda") else "blocked"


def _layout(layout: str | None, device: str) -> str:
    if layout is None:
        return default_layout(device)
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ConfigError("layout", [f"{repr(layout)[:40]}: must be one of {', '.join(LAYOUTS)}"])
    return layout


def _alloc(wp, sizes: dict[str, int], n: int, records: bool, device: str):
    """One zeroed pool per dtype for n threads; returns the State (interleaved offsets) and,
    per pool, (field -> first slot, slots per thread)."""
    from twin.whatif.kernel.kernel import State
    from twin.whatif.kernel.layout import STATE_POOLS

    st = State()
    wpt = _WPT(wp)
    pools = pool_slots(sizes, records)
    for dt, pool in STATE_POOLS.items():
        offs, total = pools[pool]
        setattr(st, pool, wp.zeros(total * n, dtype=wpt[dt], device=device))
        for name, base in offs.items():
            setattr(st, f"o_{name}", base * n)
    return st, pools


def _block(st, pools, j: int) -> None:
    """Point ``st``'s offsets at thread j's block of the blocked layout: launched alone (one
    thread, n = 1, tid = 0), its field x slot k is ``pool[j * total + base_x + k]``."""
    for offs, total in pools.values():
        for name, base in offs.items():
            setattr(st, f"o_{name}", j * total + base)


def _read_state(st, sizes: dict[str, int], n: int, records: bool) -> dict[str, np.ndarray]:
    """Every state field as a (slots, n) host array, from the interleaved layout."""
    from twin.whatif.kernel.layout import STATE, STATE_POOLS

    slots = state_sizes(sizes, HIST_BINS)
    pools = {p: getattr(st, p).numpy() for p in STATE_POOLS.values()}
    out = {}
    for name, (dt, key) in STATE.items():
        k = 1 if key == "records" and not records else slots[key]
        o = getattr(st, f"o_{name}")
        out[name] = pools[STATE_POOLS[dt]][o : o + k * n].reshape(k, n)
    return out


def _read_blocked(st, pools, sizes: dict[str, int], n: int, records: bool):
    """Every state field as a (slots, n) host array, from the blocked layout."""
    from twin.whatif.kernel.layout import STATE, STATE_POOLS

    slots = state_sizes(sizes, HIST_BINS)
    host = {}
    for pool, (_, total) in pools.items():
        host[pool] = getattr(st, pool).numpy().reshape(n, total)
    out = {}
    for name, (dt, key) in STATE.items():
        k = 1 if key == "records" and not records else slots[key]
        pool = STATE_POOLS[dt]
        base = pools[pool][0][name]
        out[name] = host[pool][:, base : base + k].T
    return out


def _WPT(wp):
    return {"f8": wp.float64, "i4": wp.int32, "i8": wp.int64, "u8": wp.uint64, "u4": wp.uint32}


def pack_model(tables: dict[str, np.ndarray]):
    """Model tables -> (pool name -> flat array, field offsets, pool strides per scenario)."""
    from twin.whatif.kernel.layout import MODEL_POOLS, MODEL_SEPARATE

    n_sc = next(iter(tables.values())).shape[0]
    pools, offs, strides = {}, {}, {}
    for dt, pool in MODEL_POOLS.items():
        names = [k for k, a in tables.items() if a.dtype.str[1:] == dt and k not in MODEL_SEPARATE]
        stride = max(1, sum(tables[k].shape[1] for k in names))
        flat = np.zeros((n_sc, stride), dtype=dt)
        o = 0
        for k in names:
            w = tables[k].shape[1]
            flat[:, o : o + w] = tables[k]
            offs[f"o_{k}"] = o
            o += w
        pools[pool] = flat.ravel()
        strides[f"s{pool}"] = stride
    return pools, offs, strides


def _model_struct(wp, tables: dict[str, np.ndarray], device: str):
    from twin.whatif.kernel.kernel import Model
    from twin.whatif.kernel.layout import MODEL_SEPARATE

    m = Model()
    wpt = _WPT(wp)
    pools, offs, strides = pack_model(tables)
    for pool, a in pools.items():
        setattr(m, pool, wp.array(a, dtype=wpt[a.dtype.str[1:]], device=device))
    for k, v in {**offs, **strides}.items():
        setattr(m, k, v)
    for k in MODEL_SEPARATE:
        setattr(m, k, wp.array(tables[k], dtype=wpt[tables[k].dtype.str[1:]], device=device))
    return m


def memory_budget(device: str) -> int:
    """Bytes a launch may use: 60 % of free GPU memory, or 25 % of the host's memory."""
    wp = _wp()
    if device.startswith("cuda"):
        d = wp.get_device(device)
        free = getattr(d, "free_memory", 0) or d.total_memory
        return int(0.6 * free)
    try:
        return int(0.25 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def simulate_batch(
    models: Sequence[FabModel],
    config: SimConfig,
    replications: Sequence[int],
    *,
    start: StartState | None = None,
    device: str | None = None,
    records: bool = True,
    capacity: dict[str, int] | None = None,
    max_threads: int | None = None,
    grow: bool = True,
    trace: int = 0,
    layout: str | None = None,
) -> list[list[KernelRun]]:
    """Run every model (scenario) for every replication; result[s][i] is scenario s,
    replication ``replications[i]``. ``config.seed`` keys the streams; ``config.replication``
    is ignored. A table that overflows is reported by the device; with ``grow`` it is doubled
    (records: sized to what was needed) and the chunk rerun, at most 11 times, else
    CapacityError names it. ``trace`` > 0 keeps the first ``trace`` events (time, kind, object)
    of every thread in ``KernelRun.out`` (tr_t, tr_k, tr_o). ``layout`` is the state's memory
    layout (``LAYOUTS``; default ``default_layout(device)``): the results are the same in both,
    bit for bit."""
    wp = _wp()
    device = device or default_device()
    check_device(wp, device)
    layout = _layout(layout, device)
    comps = [compile_model(m, config, start) for m in models]
    tables, sizes = stack(comps)
    sizes["n_pmw"] = max(1, tables["w_first"].shape[1])
    if capacity:
        sizes.update(capacity)
    sizes["trace"] = max(1, trace)
    reps = _replications(replications)
    per = bytes_per_replication(sizes, records)
    budget = memory_budget(device)
    widest = max(total for _, total in pool_slots(sizes, records).values())
    chunk = max(1, min(budget // max(per, 1), (2**31 - 1) // widest, max_threads or 1 << 30))
    pairs = [(s, r) for s in range(len(comps)) for r in range(len(reps))]
    runs: dict[tuple[int, int], KernelRun] = {}
    m = _model_struct(wp, tables, device)
    from twin.whatif.kernel.kernel import simulate_kernel

    for lo in range(0, len(pairs), chunk):
        part = pairs[lo : lo + chunk]
        for attempt in range(12):
            err = _launch(wp, simulate_kernel, m, comps, sizes, part, reps, config, records,
                          device, runs, layout)  # fmt: skip
            if err is None:
                break
            key, size, need = err
            if not grow or attempt == 11:
                raise CapacityError(TABLE_NAMES[key], size, key)
            sizes[key] = max(need, 2 * size)
    return [[runs[(s, r)] for r in range(len(reps))] for s in range(len(comps))]


def _replications(replications) -> list[int]:
    """The replication numbers as ints, each in SimConfig's range (a 32-bit word on the
    device), else a ConfigError naming the bad ones."""
    reps, bad = [], []
    for r in replications:
        try:
            v = None if isinstance(r, bool) else operator.index(r)
        except TypeError:
            v = None
        if v is None or not 0 <= v <= MAX_REPLICATION:
            bad.append(repr(r)[:40])
        else:
            reps.append(v)
    if bad:
        raise ConfigError(
            "replications",
            [
                f"{', '.join(bad[:5])}: each must be an integer from 0 to {MAX_REPLICATION}"
            ],  # fmt: skip
        )
    return reps


def _launch(wp, kernel, m, comps, sizes, part, reps, config, records, device, runs,
            layout="interleaved"):  # fmt: skip
    from twin.whatif.kernel.kernel import Caps

    n = len(part)
    st, pools = _alloc(wp, sizes, n, records, device)
    cap = Caps()
    cap.heap, cap.lots, cap.jobs = sizes["heap"], sizes["lots"], sizes["jobs"]
    cap.records, cap.samples = sizes["records"], sizes["samples"]
    cap.hist_bins, cap.keep_records = HIST_BINS, int(records)
    cap.trace = sizes.get("trace", 0)
    scen = wp.array(np.array([p[0] for p in part], np.int32), dtype=wp.int32, device=device)
    rr = wp.array(np.array([reps[p[1]] for p in part], np.int32), dtype=wp.int32, device=device)
    seed = wp.int64(config.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    if layout == "blocked":  # one launch per thread, each on its own contiguous block
        for j in range(n):
            _block(st, pools, j)
            wp.launch(kernel, dim=1, inputs=[m, st, cap, scen[j : j + 1], rr[j : j + 1], seed],
                      device=device)  # fmt: skip
    else:
        wp.launch(kernel, dim=n, inputs=[m, st, cap, scen, rr, seed], device=device)
    wp.synchronize_device(device)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if layout == "blocked":
        host = _read_blocked(st, pools, sizes, n, records)
    else:
        host = _read_state(st, sizes, n, records)
    err = host["err"][0]
    if err.any():
        key = SIZE_KEY[int(err[err != 0][0])]
        if key == "dedications":
            raise CapacityError(TABLE_NAMES[key], 4, key)
        return key, sizes[key], 2 * sizes[key]
    soft = host["err_soft"][0]
    if (soft & 4).any():  # more completions than record slots: rerun with what was needed
        return "records", sizes["records"], int(host["ncomp"][0].max()) + 8
    if (soft & 8).any():
        return "samples", sizes["samples"], int(host["nsamp"][0].max()) + 2
    dt = float(comps[0].tables["sample_dt"][0])
    for j, (s, r) in enumerate(part):
        out = {name: np.ascontiguousarray(a[:, j]) for name, a in host.items()}
        runs[(s, r)] = KernelRun(
            comp=comps[s],
            replication=reps[r],
            seed=config.seed,
            out=out,
            records=records,
            wall_seconds=wall / n,
            sample_dt=float(comps[s].tables["sample_dt"][0]) or dt,
            extra={
                "launch_seconds": wall,
                "launch_cpu_seconds": cpu,
                "threads": n,
                "device": device,
                "layout": layout,
            },  # fmt: skip
        )
    return None


def simulate(
    model: FabModel,
    config: SimConfig,
    *,
    start: StartState | None = None,
    device: str | None = None,
) -> SimResult:
    """One replication (``config.replication``) on the kernel: the reference's ``simulate``."""
    return simulate_batch([model], config, [config.replication], start=start, device=device)[0][
        0
    ].result()


class KernelEngine:
    """The runner's engine protocol on the Warp kernel (``--engine kernel``)."""

    name = "kernel"

    def __init__(self, device: str | None = None, records: bool = True, capacity=None):
        self.device = device or os.environ.get("TWIN_KERNEL_DEVICE") or None
        self.records = records
        self.capacity = capacity

    @property
    def batch_size(self) -> int:
        # CPU: Warp runs a launch's threads one after the other, so one replication per work
        # item lets the runner's process pool keep every core busy. GPU: one launch for all.
        dev = self.device or ""
        return 4096 if dev.startswith("cuda") else 1

    def run(self, model: FabModel, replications: Sequence[int], config, start: Any = None):
        from twin.whatif.results import lot_columns
        from twin.whatif.runner import Replication
        from twin.whatif.stats import flatten_kpis, flatten_series

        sim = SimConfig(
            days=config.days, warmup_days=config.warmup_days, seed=config.seed, **config.options
        )
        if sim.transport and getattr(getattr(model, "amhs", None), "enabled", False):
            from twin.errors import InputError

            raise InputError(
                "kernel engine",
                [
                    "transport amhs (the vehicle fleet on the layout) runs on the reference "
                    "engine only: use --engine reference, or transport: table (docs/amhs.md)"
                ],
            )
        runs = simulate_batch(
            [model], sim, replications, start=start, device=self.device, records=self.records,
            capacity=self.capacity,
        )[0]  # fmt: skip
        lots = getattr(config, "lot_records", False)
        out = []
        for kr in runs:
            k = kr.kpis()
            out.append(
                Replication(
                    scenario=model.name,
                    replication=kr.replication,
                    kpis=flatten_kpis(k),
                    events=kr.events,
                    wall_seconds=kr.wall_seconds,
                    series=flatten_series(k) if lots else {},
                    lots=lot_columns(kr.lot_records()) if self.records and lots else {},
                )
            )
        return out
