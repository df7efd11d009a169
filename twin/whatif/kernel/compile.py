"""A process model plus a start state, compiled to the flat tables the Warp kernel reads.

Everything the reference engine (:mod:`twin.whatif.reference.engine`) derives from the model
at construction is derived here once, on the host, in the same order: the steps and families
(through the reference's own ``compile_routes``/``compile_families``, so the numbers are the
same), the per-tool calendar operations in the order the reference schedules them, the
release streams, the initial lots, and the word lists that key every random stream by
(seed, replication, purpose, index) exactly like ``twin.whatif.reference.streams.Stream``.

``compile_model`` returns a :class:`Compiled` (numpy tables keyed by the kernel's field
names, plus the sizes of the kernel's per-replication tables); ``stack`` pads the tables of
several scenarios to one shape so that one launch runs them all.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from twin.errors import ConfigError, InputError
from twin.process.model import PER_BATCH, PER_PIECE, FabModel, dispatch_ranks
from twin.whatif.reference.calendars import first_factor
from twin.whatif.reference.compiled import compile_families, compile_routes
from twin.whatif.reference.config import DAY, SimConfig, StartState
from twin.whatif.reference.dispatch import RULES
from twin.whatif.reference.results import busy_intervals
from twin.whatif.reference.start import (
    STATUSES,
    shares_draw,
    start_lot_check,
    start_tool_problem,
    time_left_problem,
    time_left_table,
)
from twin.whatif.reference.streams import (
    KIND_CODES,
    PM,
    PROCESS,
    RELEASE,
    ROUTING,
    START,
    TOOL,
    TRANSPORT,
)

RULE_CODES = {"hot_first": 0, "least_setup": 1, "fifo": 2, "critical_ratio": 3}
RANK_CODES = {
    "hp": 0,
    "setup": 1,
    "fifo": 2,
    "cr": 3,
    "started": 4,
}  # f_ranks: a family's dispatch ranks
MAX_RANKS = len(RANK_CODES)  # f_ranks holds this many per family, -1 after the last
STATUS_CODES = {s: k for k, s in enumerate(STATUSES)}  # queued 0, transport 1, processing 2
MAX_WORDS = 4  # uint32 words of (purpose, index) per stream
HIST_BINS = 512  # cycle-time histogram bins per lot type (percentiles on the device path)

# names of the per-scenario tables, by group (the kernel's Model struct has one field each)
F64 = "f8"
I32 = "i4"
TABLES: dict[str, str] = {
    # scalars per scenario
    "t0": F64, "warm": F64, "end": F64, "sample_dt": F64, "hist_w": F64, "busy_nb": I32,
    "tr_kind": I32, "tr_lo": F64, "tr_hi": F64, "tr_mean": F64, "transport_on": I32,
    "pm_from_end": I32, "skip_idle_downs": I32, "wake_first": I32, "no_delay_tr": I32,
    "min_run_hold": I32, "due_ties": I32, "start_together": I32,
    "n_fam": I32, "n_tools": I32, "n_rel": I32, "n_init_tools": I32, "n_init_lots": I32,
    "n_cal_ops": I32, "n_streams": I32, "n_setups": I32, "n_types": I32,
    # families
    "f_cap": I32, "f_load": F64, "f_unload": F64, "f_rule": I32, "f_batching": I32,
    "f_ranks": I32, "f_scan": I32,
    "f_setups": I32, "f_wake_least": I32, "f_delay": I32, "f_tool0": I32, "f_ntools": I32,
    # steps (global index); s_bkey: the reference's batch key (SimConfig.batch_by)
    "s_fam": I32, "s_delay": I32, "s_kind": I32, "s_lo": F64, "s_hi": F64, "s_mean": F64,
    "s_per": I32, "s_bmin": I32, "s_bmax": I32, "s_setup": I32, "s_setup_time": F64,
    "s_has_bint": I32, "s_bint": F64, "s_has_pint": I32, "s_pint": F64, "s_rwk_to": I32,
    "s_rwk_p": F64, "s_rwk_bit": I32, "s_sample_p": F64, "s_cqt_to": I32, "s_cqt_limit": F64,
    "s_rpt": F64, "s_ded": I32, "s_bkey": I32,
    # routes
    "r_start": I32, "r_len": I32,
    # setups: matrix (from+1, to) with NaN where the table has no entry; minimum runs (-1: none)
    "su_mat": F64, "su_minrun": I32,
    # tools
    "t_fam": I32, "t_stream": I32, "t_pmw0": I32, "t_npmw": I32,
    # wafer-count PM entries of the tools
    "w_first": F64, "w_interval": F64, "w_kind": I32, "w_lo": F64, "w_hi": F64, "w_mean": F64,
    # breakdown calendars: time to failure (f_) and to repair (r_)
    "d_fkind": I32, "d_flo": F64, "d_fhi": F64, "d_fmean": F64,
    "d_rkind": I32, "d_rlo": F64, "d_rhi": F64, "d_rmean": F64,
    # time-based PM calendars
    "p_interval": F64, "p_kind": I32, "p_lo": F64, "p_hi": F64, "p_mean": F64,
    # calendar operations at the start, in the reference's order (0 breakdown, 1 time PM,
    # 2 first count of a wafer PM); a constant first occurrence is staggered over the tools
    "c_type": I32, "c_tool": I32, "c_cal": I32, "c_kind": I32, "c_lo": F64, "c_hi": F64,
    "c_mean": F64, "c_stagger": F64,
    # random streams: purpose and index words (seed and replication are added on the device)
    "str_words": "u4", "str_nwords": I32,
    # release streams
    "rel_on": I32, "rel_start": F64, "rel_exp": I32, "rel_interval": F64, "rel_count": I32,
    "rel_lpr": I32, "rel_prio": I32, "rel_wafers": I32, "rel_due_off": F64, "rel_type": I32,
    "rel_route": I32, "rel_stream": I32,
    # start state: tools (in the StartState's order), lots (WIP or StartState lots)
    "it_tool": I32, "it_setup": I32, "it_busy": F64, "it_down": F64,
    # times left drawn per replication (ToolState.down_left, LotState.until_left): per start
    # tool and lot its components' count and first index (a lot: 1 when it takes the lot
    # before's draw), per component (start.time_left_table) the cumulative share, kind, low,
    # high, mean, offset; the start's stream (-1: none)
    "it_dn": I32, "it_d0": I32, "il_dn": I32, "il_d0": I32, "il_share": I32,
    "dl_cum": F64, "dl_kind": I32, "dl_lo": F64, "dl_hi": F64, "dl_mean": F64, "dl_off": F64,
    "start_stream": I32,
    "il_route": I32, "il_idx": I32, "il_prio": I32, "il_wafers": I32, "il_release": F64,
    "il_due": F64, "il_type": I32, "il_status": I32, "il_tool": I32, "il_until": F64,
}  # fmt: skip


@dataclass
class Compiled:
    """One scenario's tables (numpy, 1-D) and what the host needs to read the results back."""

    name: str
    tables: dict[str, np.ndarray]
    lot_types: list[str]  # type index -> name
    product_of_type: dict[str, str]
    families: list[str]  # family index -> name (delay families included)
    family_tools: list[int]
    family_areas: list[str]
    family_delay: list[bool]
    init_ids: list[str]  # initial lot index -> lot id
    rel_types: list[str]  # release index -> lot type
    raw_process_time: dict[str, float]  # product -> mean raw processing time (s)
    sizes: dict[str, int] = field(default_factory=dict)  # capacities of the per-thread tables
    t0: float = 0.0
    warm: float = 0.0
    end: float = 0.0


def _dist(d, mode: str) -> tuple[int, float, float, float]:
    lo, hi = d.bounds(mode)
    return KIND_CODES.get(d.kind, 0), lo, hi, d.mean


def _words(x: int) -> list[int]:
    """numpy's SeedSequence coercion of one non-negative int to uint32 words."""
    if x == 0:
        return [0]
    out = []
    while x > 0:
        out.append(x & 0xFFFFFFFF)
        x >>= 32
    return out


def check_config(cfg: SimConfig) -> None:
    """Options of SimConfig the kernel does not implement are refused, not ignored."""
    if cfg.record_steps:
        raise ConfigError(
            "kernel engine", ["record_steps=True: per-step records are reference-only"]
        )


def _check_model(model: FabModel) -> None:
    """A valid model whose families' rules the kernel implements."""
    problems = model.validate()
    if problems:
        raise InputError(f"process model {model.name}", problems)
    unknown = sorted({f.rule for f in model.families.values() if f.rule not in RULE_CODES})
    if unknown:
        known = sorted(RULE_CODES)
        extra = sorted(set(RULES) - set(RULE_CODES))
        msg = f"rule(s) {unknown} not in the kernel; it has {known}"
        if extra:
            msg += f" (plug-in rules {extra} run on the reference engine only)"
        raise ConfigError("kernel dispatching", [msg])


class _Names:
    """Names in order of first use; ``index`` adds a name the first time it is asked for."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def index(self, name: str) -> int:
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name)

    def setup(self, name: str | None) -> int:
        """A setup's index; -1 for none."""
        return -1 if name is None else self.index(name)


class _LotTypes(_Names):
    """Lot types in order of first use, each with the product it was first seen with."""

    def __init__(self) -> None:
        super().__init__()
        self.product_of: dict[str, str] = {}

    def of(self, lot_type: str, product: str) -> int:
        idx = self.index(lot_type)
        self.product_of.setdefault(lot_type, product)
        return idx


def compile_model(
    model: FabModel, cfg: SimConfig, start: StartState | None = None, *, name: str = ""
) -> Compiled:
    """Tables of ``model`` under ``cfg`` (seed/replication are ignored: per-thread)."""
    check_config(cfg)
    _check_model(model)
    mode = model.ptime_spread_mode
    fams = compile_families(model, cfg)
    routes = compile_routes(model, cfg, fams)
    tb: dict[str, list] = {k: [] for k in TABLES}
    t0 = start.time if start else 0.0
    warm, end = t0 + cfg.warmup_days * DAY, t0 + cfg.days * DAY
    # streams: 0 routing, 1 transport, then one per family, two per tool, one per release
    streams: list[tuple[int, int]] = [(ROUTING, 0), (TRANSPORT, 0)]
    fam_names = list(fams)
    setups = _Names()  # every name a step, the setup table, min runs or the start state uses
    types = _LotTypes()
    tool_of = _families(tb, model, fams, streams, cfg.unstarted_last)
    route_of_product = _steps(tb, model, routes, fam_names, setups)
    _calendars(tb, model, cfg, fam_names, tool_of, mode)
    init_ids = _initial_lots(tb, model, cfg, start, tool_of, route_of_product, setups, types)
    tb["start_stream"] = [-1]
    if tb["dl_cum"]:  # the start's stream (reference: created at the first down drawn)
        tb["start_stream"] = [len(streams)]
        streams.append((START, 0))
    rel_types = _releases(tb, model, streams, route_of_product, types)
    _setup_matrix(tb, model, setups)
    _stream_words(tb, streams)
    raw = {p: (routes[pr.route][0].rpt if routes[pr.route] else 0.0)
           for p, pr in model.products.items()}  # fmt: skip
    _scalars(tb, model, cfg, mode, t0, warm, end, raw)
    tb["n_fam"] = [len(fam_names)]
    tb["n_tools"] = [len(tb["t_fam"])]
    tb["n_init_lots"] = [len(init_ids)]
    tb["n_streams"] = [len(streams)]
    tb["n_setups"] = [len(setups.names)]
    tb["n_types"] = [len(types.names)]
    tables = {k: np.asarray(v, dtype=TABLES[k]) for k, v in tb.items()}
    comp = Compiled(
        name=name or model.name,
        tables=tables,
        lot_types=types.names,
        product_of_type=types.product_of,
        families=fam_names,
        family_tools=[0 if model.families[n].is_delay else model.families[n].count
                      for n in fam_names],
        family_areas=[model.families[n].area for n in fam_names],
        family_delay=[model.families[n].is_delay for n in fam_names],
        init_ids=init_ids,
        rel_types=rel_types,
        raw_process_time=raw,
        t0=t0,
        warm=warm,
        end=end,
    )  # fmt: skip
    comp.sizes = _sizes(model, comp, cfg, routes)
    return comp


def _families(
    tb: dict, model: FabModel, fams: dict, streams: list, unstarted_last: bool = False
) -> dict[str, int]:
    """Families and their tools (tool index order = the reference's self.tools order), with
    the process stream of each family and the two streams of each tool; tool id -> index."""
    fam_names = list(fams)
    fam_key = {n: zlib.crc32(n.encode()) for n in fam_names}
    for n in fam_names:
        streams.append((PROCESS, fam_key[n]))
    tool_of: dict[str, int] = {}
    n_tools = 0
    for n in fam_names:
        c, f = fams[n], model.families[n]
        tb["f_cap"].append(c.capacity)
        tb["f_load"].append(c.load)
        tb["f_unload"].append(c.unload)
        tb["f_rule"].append(RULE_CODES[c.rule])
        # the reference's order (twin.process.model.dispatch_ranks); f_scan: a rank that
        # depends on the clock (cr) makes the reference scan the queue instead of class heads
        ranks = dispatch_ranks(c.rule, f.ranks)
        if unstarted_last:  # SimConfig.unstarted_last: the "started" rank first, as the reference
            ranks = ("started", *ranks)
        codes = [RANK_CODES[r] for r in ranks]
        tb["f_ranks"].extend(codes + [-1] * (MAX_RANKS - len(codes)))
        tb["f_scan"].append(int("cr" in ranks))
        tb["f_batching"].append(int(c.batching))
        tb["f_setups"].append(int(c.has_setups))
        tb["f_wake_least"].append(int(bool(c.wake_least_setup)))
        tb["f_delay"].append(int(f.is_delay))
        count = 0 if f.is_delay else f.count
        tb["f_tool0"].append(n_tools)
        tb["f_ntools"].append(count)
        for k in range(count):
            tool_of[f"{n}#{k + 1}"] = n_tools
            tb["t_fam"].append(fam_names.index(n))
            tb["t_stream"].append(len(streams))
            streams.append((TOOL, fam_key[n] * 4096 + k))
            streams.append((PM, fam_key[n] * 4096 + k))
            n_tools += 1
    return tool_of


def _steps(tb: dict, model: FabModel, routes: dict, fam_names: list, setups: _Names) -> dict:
    """Steps (global index), in the reference's key order, and the routes' spans of them;
    product -> route index."""
    route_names = list(model.routes)
    rwk_problems = []
    for rname in route_names:
        steps = routes[rname]
        tb["r_start"].append(len(tb["s_fam"]))
        tb["r_len"].append(len(steps))
        bits = 0
        for c in steps:
            tb["s_fam"].append(fam_names.index(c.fam.name))
            tb["s_delay"].append(int(c.delay))
            tb["s_kind"].append(c.kind)
            tb["s_lo"].append(c.lo)
            tb["s_hi"].append(c.hi)
            tb["s_mean"].append(c.mean)
            tb["s_per"].append(2 if c.batch else (1 if c.per_piece else 0))
            tb["s_bmin"].append(c.bmin)
            tb["s_bmax"].append(c.bmax)
            tb["s_setup"].append(setups.setup(c.setup))
            tb["s_setup_time"].append(c.setup_time)
            tb["s_has_bint"].append(int(c.batch_interval is not None))
            tb["s_bint"].append(c.batch_interval or 0.0)
            tb["s_has_pint"].append(int(c.part_interval is not None))
            tb["s_pint"].append(c.part_interval or 0.0)
            tb["s_rwk_to"].append(c.rework_to)
            tb["s_rwk_p"].append(c.rework_p)
            if c.rework_p > 0.0 and c.rework_to >= 0:
                tb["s_rwk_bit"].append(bits)
                bits += 1
            else:
                tb["s_rwk_bit"].append(-1)
            tb["s_sample_p"].append(c.sample_p)
            tb["s_cqt_to"].append(c.cqt_to)
            tb["s_cqt_limit"].append(c.cqt_limit)
            tb["s_rpt"].append(c.rpt)
            tb["s_ded"].append(getattr(c, "dedicate_to", -1))
            tb["s_bkey"].append(c.key)  # a global step index or an earlier one's
        if bits > 62:
            rwk_problems.append(f"route {rname}: {bits} rework steps, the kernel handles 62")
    if rwk_problems:
        raise InputError("kernel model", rwk_problems)
    return {p: route_names.index(pr.route) for p, pr in model.products.items()}


def _calendars(tb: dict, model: FabModel, cfg: SimConfig, fam_names: list, tool_of: dict,
               mode: str) -> None:  # fmt: skip
    """Breakdown and PM calendars and the calendar operations at the start, in the order the
    reference attaches them; wafer-count PM entries per tool."""
    down_names: list[str] = []
    pm_names: list[str] = []
    pmw_by_tool: dict[int, list] = {}
    for n in fam_names:
        f = model.families[n]
        if f.is_delay or f.count == 0:
            continue

        for att in model.calendars_of(n):
            first = _dist(att.first, mode)
            if att.kind == "down" and cfg.breakdowns and att.calendar in model.downs:
                if att.calendar not in down_names:
                    down_names.append(att.calendar)
                    cal = model.downs[att.calendar]
                    for pre, d in (("d_f", cal.mttf), ("d_r", cal.mttr)):
                        k, lo, hi, mean = _dist(d, mode)
                        tb[pre + "kind"].append(k)
                        tb[pre + "lo"].append(lo)
                        tb[pre + "hi"].append(hi)
                        tb[pre + "mean"].append(mean)
                for k in range(f.count):
                    _cal_op(tb, 0, tool_of[f"{n}#{k + 1}"], down_names.index(att.calendar),
                            first, first_factor(cfg, k, f.count))  # fmt: skip
            elif att.kind == "pm" and cfg.pms and att.calendar in model.pms:
                cal = model.pms[att.calendar]
                if cal.by == "wafers":
                    for k in range(f.count):
                        tool = tool_of[f"{n}#{k + 1}"]
                        entries = pmw_by_tool.setdefault(tool, [])
                        entries.append((cal.interval, _dist(cal.duration, mode)))
                        # the kernel sets the entry's first count; c_cal is fixed up below
                        _cal_op(tb, 2, tool, len(entries) - 1, first, first_factor(cfg, k, f.count))
                    continue
                if att.calendar not in pm_names:
                    pm_names.append(att.calendar)
                    k_, lo, hi, mean = _dist(cal.duration, mode)
                    tb["p_interval"].append(cal.interval)
                    tb["p_kind"].append(k_)
                    tb["p_lo"].append(lo)
                    tb["p_hi"].append(hi)
                    tb["p_mean"].append(mean)
                for k in range(f.count):
                    _cal_op(tb, 1, tool_of[f"{n}#{k + 1}"], pm_names.index(att.calendar),
                            first, first_factor(cfg, k, f.count))  # fmt: skip
    for t in range(len(tb["t_fam"])):
        entries = pmw_by_tool.get(t, [])
        if len(entries) > 30:
            raise InputError("kernel model", [f"tool {t}: {len(entries)} wafer PMs (max 30)"])
        tb["t_pmw0"].append(len(tb["w_first"]))
        tb["t_npmw"].append(len(entries))
        for interval, (k, lo, hi, mean) in entries:
            tb["w_first"].append(0.0)
            tb["w_interval"].append(interval)
            tb["w_kind"].append(k)
            tb["w_lo"].append(lo)
            tb["w_hi"].append(hi)
            tb["w_mean"].append(mean)

    for c, typ in enumerate(tb["c_type"]):  # wafer PM ops: (tool, j) -> global entry index
        if typ == 2:
            tb["c_cal"][c] += tb["t_pmw0"][tb["c_tool"][c]]


def _initial_lots(tb: dict, model: FabModel, cfg: SimConfig, start: StartState | None,
                  tool_of: dict, route_of_product: dict, setups: _Names,
                  types: _LotTypes) -> list[str]:  # fmt: skip
    """The initial lots (the model's WIP, or the start state's lots and tools); their ids."""
    init_ids: list[str] = []
    lot_problems: list[str] = []
    if start is None:
        for w in model.wip if cfg.initial_wip else []:
            r = route_of_product[w.product]
            _init_lot(tb, r, model.route_of(w.product).index_of(w.step), w.priority, w.wafers,
                      w.release, w.due, types.of(w.lot_type, w.product), 0, -1, 0.0)  # fmt: skip
            for key in ("il_dn", "il_d0", "il_share"):
                tb[key].append(0)
            init_ids.append(w.id)
    else:
        for ts_id, ts in start.tools.items():
            problem = start_tool_problem(ts_id, tool_of) or time_left_problem(
                f"tool {ts_id!r}: down_left", ts.down_left
            )
            if problem:
                lot_problems.append(problem)
                continue
            tb["it_tool"].append(tool_of[ts_id])
            tb["it_setup"].append(setups.setup(ts.setup))
            tb["it_busy"].append(ts.busy_until)
            tb["it_down"].append(ts.down_until)
            tb["it_dn"].append(len(ts.down_left))
            tb["it_d0"].append(_time_left(tb, ts.down_left))
        prev = None
        for ls in start.lots:
            idx, problem = start_lot_check(model, ls, tool_of)
            share, prev = shares_draw(prev, ls), ls
            if problem:
                lot_problems.append(problem)
                continue
            tb["il_dn"].append(len(ls.until_left))
            tb["il_d0"].append(_time_left(tb, ls.until_left))
            tb["il_share"].append(int(share))
            tool = tool_of[ls.tool] if ls.status == "processing" else -1
            _init_lot(tb, route_of_product[ls.product], idx, ls.priority, ls.wafers, ls.release,
                      ls.due, types.of(ls.lot_type or ls.product, ls.product),
                      STATUS_CODES[ls.status], tool, ls.until)  # fmt: skip
            init_ids.append(ls.id)
    if lot_problems:
        raise InputError("start state", lot_problems)
    return init_ids


def _time_left(tb: dict, comps) -> int:
    """Append a checked drawn time left's components; the index of its first."""
    first = len(tb["dl_cum"])
    for cum, kind, lo, hi, mean, offset in time_left_table(comps) if comps else []:
        for key, v in zip(("dl_cum", "dl_kind", "dl_lo", "dl_hi", "dl_mean", "dl_off"),
                          (cum, kind, lo, hi, mean, offset), strict=True):  # fmt: skip
            tb[key].append(v)
    return first


def _releases(tb: dict, model: FabModel, streams: list, route_of_product: dict,
              types: _LotTypes) -> list[str]:  # fmt: skip
    """The release streams (one random stream each); release index -> lot type."""
    rel_types = []
    for i, rel in enumerate(model.releases):
        on = rel.count > 0 and rel.product in model.products
        tb["rel_on"].append(int(on))
        tb["rel_start"].append(rel.start)
        tb["rel_exp"].append(int(rel.dist != "constant"))
        tb["rel_interval"].append(rel.interval)
        tb["rel_count"].append(min(rel.count, 2**31 - 1))
        tb["rel_lpr"].append(rel.lots_per_release)
        tb["rel_prio"].append(rel.priority)
        tb["rel_wafers"].append(rel.wafers)
        tb["rel_due_off"].append(rel.due_offset)
        tb["rel_type"].append(types.of(rel.lot_type, rel.product) if on else 0)
        tb["rel_route"].append(route_of_product.get(rel.product, 0))
        tb["rel_stream"].append(len(streams))
        streams.append((RELEASE, i))
        rel_types.append(rel.lot_type)
    return rel_types


def _setup_matrix(tb: dict, model: FabModel, setups: _Names) -> None:
    """Setup matrix and minimum runs (after every setup name is known)."""
    for a, b in model.setup_times:
        setups.setup(a)
        setups.setup(b)
    for s in model.min_runs:
        setups.setup(s)
    ns = len(setups.names)
    mat = np.full((ns + 1, max(ns, 1)), np.nan)
    for (a, b), v in model.setup_times.items():
        mat[setups.setup(a) + 1, setups.setup(b)] = v
    tb["su_mat"] = list(mat.ravel())
    tb["su_minrun"] = [model.min_runs.get(s, -1) for s in setups.names]


def _stream_words(tb: dict, streams: list) -> None:
    """Stream words (purpose, index); numpy's SeedSequence coerces each int to uint32 words."""
    for purpose, index in streams:
        w = _words(purpose) + _words(index)
        assert len(w) <= MAX_WORDS
        tb["str_nwords"].append(len(w))
        tb["str_words"].extend(w + [0] * (MAX_WORDS - len(w)))


def _scalars(tb: dict, model: FabModel, cfg: SimConfig, mode: str, t0: float, warm: float,
             end: float, raw: dict) -> None:  # fmt: skip
    """Scalars per scenario: times, transport, SimConfig switches, table lengths."""
    tr = _dist(model.transport, mode)
    scal = {
        "t0": t0, "warm": warm, "end": end, "sample_dt": cfg.wip_sample_days * DAY,
        "busy_nb": busy_intervals(t0, end, cfg.wip_sample_days * DAY) if cfg.busy_by_interval
        else 0,
        "hist_w": _hist_width(raw, cfg.days),
        "tr_kind": tr[0], "tr_lo": tr[1], "tr_hi": tr[2], "tr_mean": tr[3],
        "transport_on": int(cfg.transport),
        "pm_from_end": int(cfg.pm_interval_from == "end"),
        "skip_idle_downs": int(cfg.idle_downs == "skip"), "wake_first": int(cfg.wake == "first"),
        "no_delay_tr": int(not cfg.delay_transport), "min_run_hold": int(cfg.min_runs == "hold"),
        "due_ties": int(cfg.due_ties), "start_together": int(cfg.start_together),
        "n_rel": len(model.releases), "n_init_tools": len(tb["it_tool"]),
        "n_cal_ops": len(tb["c_type"]),
    }  # fmt: skip
    for k, v in scal.items():
        tb[k] = [v]


def _cal_op(tb: dict, kind: int, tool: int, cal: int, first: tuple, stagger: float) -> None:
    tb["c_stagger"].append(stagger)
    tb["c_type"].append(kind)
    tb["c_tool"].append(tool)
    tb["c_cal"].append(cal)
    tb["c_kind"].append(first[0])
    tb["c_lo"].append(first[1])
    tb["c_hi"].append(first[2])
    tb["c_mean"].append(first[3])


def _init_lot(tb, route, idx, prio, wafers, release, due, type_, status, tool, until) -> None:
    for k, v in zip(
        ("il_route", "il_idx", "il_prio", "il_wafers", "il_release", "il_due", "il_type",
         "il_status", "il_tool", "il_until"),
        (route, idx, prio, wafers, release, due, type_, status, tool, until),
        strict=True,
    ):  # fmt: skip
        tb[k].append(v)


def _hist_width(raw: dict[str, float], days: float) -> float:
    """Cycle-time histogram bin width (days): HIST_BINS bins cover the horizon."""
    longest = max([days, *(4 * v / DAY for v in raw.values())])
    return longest / HIST_BINS


def _released_in(model: FabModel, t0: float, end: float) -> int:
    """Upper estimate of the lots released in [t0, end] (exponential: mean + 6 sd + 16)."""
    total = 0
    for rel in model.releases:
        if rel.count <= 0 or rel.product not in model.products:
            continue
        span = max(0.0, end - max(t0, rel.start))
        if rel.interval <= 0:
            n = rel.count
        elif rel.dist == "constant":
            n = int(span // rel.interval) + 2
        else:
            m = span / rel.interval
            n = int(m + 6 * math.sqrt(m) + 16)
        total += min(n, rel.count) * rel.lots_per_release
    return total


def _sizes(model: FabModel, comp: Compiled, cfg: SimConfig, routes) -> dict[str, int]:
    """Capacities of the per-replication tables. Overflow is detected on the device; the
    engine then retries with the size it reports (see engine.py)."""
    t = comp.tables
    n_init = len(comp.init_ids)
    released = _released_in(model, comp.t0, comp.end)
    # lots in the fab at once: the initial ones plus releases over a few raw cycle times
    span = comp.end - comp.t0
    rate = sum(
        r.lots_per_release / r.interval
        for r in model.releases
        if r.interval > 0 and r.count > 0 and r.product in model.products
    )
    longest = max(comp.raw_process_time.values(), default=0.0)
    lots = n_init + min(released, int(rate * min(span, 6 * longest)) + 64)
    tools = int(t["n_tools"][0])
    caps = sum(int(c) * int(k) for c, k in zip(t["f_cap"], t["f_ntools"], strict=True))
    n_pm_ops = int((t["c_type"] == 1).sum())
    n_fail_ops = int((t["c_type"] == 0).sum())
    return {
        "lots": max(lots, 16),
        "heap": max(lots + tools * 6 + 2 * caps + n_pm_ops + n_fail_ops + len(model.releases) + 64,
                    64),
        "jobs": caps + n_init + 8,
        "records": n_init + released + 8,
        "samples": int(span // (cfg.wip_sample_days * DAY)) + 2,
        "busy_by": int(cfg.busy_by_interval),  # fs_bint: families x samples, else 1 slot
    }  # fmt: skip


def stack(comps: list[Compiled]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Pad every table to the longest scenario and stack them: (S, n) arrays; max sizes."""
    out = {}
    for k, dt in TABLES.items():
        rows = [c.tables[k] for c in comps]
        width = max(1, max(len(r) for r in rows))
        a = np.zeros((len(rows), width), dtype=dt)
        for i, r in enumerate(rows):
            a[i, : len(r)] = r
        out[k] = a
    sizes = {k: max(c.sizes[k] for c in comps) for k in comps[0].sizes}
    for k in ("n_fam", "n_tools", "n_streams", "n_types", "n_rel", "n_setups"):
        sizes[k] = max(1, max(int(c.tables[k][0]) for c in comps))
    sizes["n_steps"] = max(1, max(len(c.tables["s_fam"]) for c in comps))
    return out, sizes


__all__ = ["Compiled", "compile_model", "stack", "PER_BATCH", "PER_PIECE", "HIST_BINS"]
