"""The Warp kernel: one thread simulates one replication of one scenario, start to horizon.

It is the reference engine (:mod:`twin.whatif.reference.engine`) transcribed for the device:
the same event kinds and (time, kind, sequence) order, the same sequence counter (consumed by
every push and by every queue arrival), the same random streams (``rng.py``) drawn in the same
order, the same float64 expressions. Python objects become slots of fixed-capacity tables:

- state arrays are 1-D with the replication fastest-varying, ``a[slot * n + tid]``, so that
  neighbouring threads read neighbouring words (coalesced on a GPU);
- lots, jobs and heap entries live in pools with free lists; a full pool sets the thread's
  error code (``ERR_*``) and stops the thread: never a silent truncation;
- a family's queue is a doubly linked list of lots in arrival order (the reference's list or
  heap: keys end with the unique sequence number, so the best lot is the same);
- a tool's running jobs are a linked list in start order (the reference's ``tool.jobs``).

Model tables are 2-D ``[scenario, index]`` (``compile.py``); thread ``tid`` runs scenario
``scen[tid]`` with replication ``reps[tid]``.
"""

import warp as wp

from twin.whatif.kernel.layout import model_fields, state_fields
from twin.whatif.kernel.rng import next_u, seed_stream
from twin.whatif.reference import entities

# exact float64 agreement with the reference: no FMA contraction (CPU and CUDA)
wp.set_module_options(
    {
        "enable_backward": False,
        "fuse_fp": False,
        "cpu_compiler_flags": "-march=native -ffp-contract=off",
    }
)

# event kinds, in the order they run at equal times: the reference's own values
JOB_END = wp.constant(entities.JOB_END)
READY = wp.constant(entities.READY)
DOWN_END = wp.constant(entities.DOWN_END)
FAIL = wp.constant(entities.FAIL)
PM_TIME = wp.constant(entities.PM_TIME)
ARRIVE = wp.constant(entities.ARRIVE)
DELAY_END = wp.constant(entities.DELAY_END)
RELEASE_EV = wp.constant(entities.RELEASE_EV)
WARMUP = wp.constant(entities.WARMUP)

ERR_HEAP = wp.constant(1)
ERR_LOTS = wp.constant(2)
ERR_JOBS = wp.constant(3)
ERR_DEDIC = wp.constant(4)
DED_SLOTS = wp.constant(4)  # pending dedications per lot
ERR_RECORDS = 4  # bit flags on err_soft (the run goes on; records/samples beyond are dropped)
ERR_SAMPLES = 8

ZERO = wp.constant(wp.float64(0.0))
ONE = wp.constant(wp.float64(1.0))
DAY = wp.constant(wp.float64(86400.0))
MAXW = wp.constant(4)
# dispatch ranks (compile.RANK_CODES), up to MAX_RANKS per family in f_ranks, -1 after the last
RANK_HP = wp.constant(0)
RANK_SETUP = wp.constant(1)
RANK_FIFO = wp.constant(2)
RANK_CR = wp.constant(3)
MAX_RANKS = wp.constant(4)
vec5d = wp.types.vector(length=5, dtype=wp.float64)  # a lot's key: min-run flag, 4 ranks


_WP = {"f8": wp.float64, "i4": wp.int32, "i8": wp.int64, "u8": wp.uint64}


def _make_struct(name: str, ann: dict):
    cls = type(name, (), {"__annotations__": ann})
    cls.__module__ = __name__
    cls.__qualname__ = name
    return wp.struct(cls)


_KINDS = {"pool": None, "int": int, "u4_2d": wp.array2d(dtype=wp.uint32),
          "i4_2d": wp.array2d(dtype=wp.int32)}  # fmt: skip


def _annotations(fields: list[tuple[str, str, str]]) -> dict:
    return {
        name: wp.array(dtype=_WP[dt]) if kind == "pool" else _KINDS[kind]
        for name, kind, dt in fields
    }


State = _make_struct("State", _annotations(state_fields()))
Model = _make_struct("Model", _annotations(model_fields()))


@wp.struct
class Caps:
    heap: int
    lots: int
    jobs: int
    records: int
    samples: int
    hist_bins: int
    keep_records: int
    trace: int


# ---------------------------------------------------------------------------------------------
# small helpers


@wp.func
def draw(s: State, stream: int, n: int, tid: int, kind: int, lo: wp.float64, hi: wp.float64,
         mean: wp.float64) -> wp.float64:  # fmt: skip
    """kind 0 constant (no draw), 1 uniform [lo, hi), 2 exponential (the reference's draw)."""
    if kind == 1:
        return lo + (hi - lo) * next_u(s.u, s.o_rs + 4 * stream * n + tid, n)
    if kind == 0:
        return mean
    return -mean * wp.log(ONE - next_u(s.u, s.o_rs + 4 * stream * n + tid, n))


@wp.func
def window(m: Model, sc: int, a: wp.float64, b: wp.float64) -> wp.float64:
    """Length of [a, b] inside the measured window [warm-up end, end]."""
    lo = m.F[m.o_warm + sc * m.sF + 0]
    if a > lo:
        lo = a
    hi = m.F[m.o_end + sc * m.sF + 0]
    if b < hi:
        hi = b
    if hi > lo:
        return hi - lo
    return ZERO


@wp.func
def ev_less(s: State, a: int, b: int) -> bool:
    ta = s.f[s.o_ev_t + a]
    tb = s.f[s.o_ev_t + b]
    if ta != tb:
        return ta < tb
    ka = s.i[s.o_ev_kind + a]
    kb = s.i[s.o_ev_kind + b]
    if ka != kb:
        return ka < kb
    return s.i[s.o_ev_seq + a] < s.i[s.o_ev_seq + b]


@wp.func
def ev_swap(s: State, a: int, b: int):
    t = s.f[s.o_ev_t + a]
    s.f[s.o_ev_t + a] = s.f[s.o_ev_t + b]
    s.f[s.o_ev_t + b] = t
    k = s.i[s.o_ev_kind + a]
    s.i[s.o_ev_kind + a] = s.i[s.o_ev_kind + b]
    s.i[s.o_ev_kind + b] = k
    q = s.i[s.o_ev_seq + a]
    s.i[s.o_ev_seq + a] = s.i[s.o_ev_seq + b]
    s.i[s.o_ev_seq + b] = q
    o = s.i[s.o_ev_obj + a]
    s.i[s.o_ev_obj + a] = s.i[s.o_ev_obj + b]
    s.i[s.o_ev_obj + b] = o
    x = s.i[s.o_ev_aux + a]
    s.i[s.o_ev_aux + a] = s.i[s.o_ev_aux + b]
    s.i[s.o_ev_aux + b] = x


@wp.func
def next_seq(s: State, tid: int) -> int:
    q = s.i[s.o_seq + tid]
    s.i[s.o_seq + tid] = q + 1
    return q


@wp.func
def push(s: State, cap: Caps, n: int, tid: int, t: wp.float64, kind: int, obj: int, aux: int):
    """heappush((t, kind, next(seq), obj)) on the thread's binary heap."""
    h = s.i[s.o_hn + tid]
    if h >= cap.heap:
        s.i[s.o_err + tid] = ERR_HEAP
        return
    q = next_seq(s, tid)
    i = h * n + tid
    s.f[s.o_ev_t + i] = t
    s.i[s.o_ev_kind + i] = kind
    s.i[s.o_ev_seq + i] = q
    s.i[s.o_ev_obj + i] = obj
    s.i[s.o_ev_aux + i] = aux
    s.i[s.o_hn + tid] = h + 1
    if h + 1 > s.i[s.o_heap_peak + tid]:
        s.i[s.o_heap_peak + tid] = h + 1
    while h > 0:
        p = (h - 1) // 2
        if ev_less(s, h * n + tid, p * n + tid):
            ev_swap(s, h * n + tid, p * n + tid)
            h = p
        else:
            break


@wp.func
def pop(s: State, n: int, tid: int):
    """Remove the heap's top (the caller has read it)."""
    h = s.i[s.o_hn + tid] - 1
    s.i[s.o_hn + tid] = h
    if h == 0:
        return
    ev_swap(s, tid, h * n + tid)
    i = wp.int32(0)
    while True:
        left = 2 * i + 1
        if left >= h:
            break
        best = left
        right = left + 1
        if right < h:
            if ev_less(s, right * n + tid, left * n + tid):
                best = right
        if ev_less(s, best * n + tid, i * n + tid):
            ev_swap(s, best * n + tid, i * n + tid)
            i = best
        else:
            break


@wp.func
def enter_fab(s: State, tid: int, t: wp.float64):
    s.f[s.o_fab_area + tid] = s.f[s.o_fab_area + tid] + wp.float64(s.i[s.o_fab_n + tid]) * (
        t - s.f[s.o_fab_last + tid]
    )
    s.f[s.o_fab_last + tid] = t
    s.i[s.o_fab_n + tid] = s.i[s.o_fab_n + tid] + 1


@wp.func
def fam_area(s: State, f: int, t: wp.float64):
    s.f[s.o_f_area + f] = s.f[s.o_f_area + f] + wp.float64(s.i[s.o_f_n + f]) * (
        t - s.f[s.o_f_last + f]
    )
    s.f[s.o_f_last + f] = t


@wp.func
def new_lot(s: State, cap: Caps, n: int, tid: int, route: int, type_: int, prio: int,
            wafers: int, release: wp.float64, due: wp.float64, src: int, num: int) -> int:  # fmt: skip
    lot = s.i[s.o_lot_free + tid]
    if lot < 0:
        s.i[s.o_err + tid] = ERR_LOTS
        return -1
    i = lot * n + tid
    s.i[s.o_lot_free + tid] = s.i[s.o_l_next + i]
    s.i[s.o_lots_used + tid] = s.i[s.o_lots_used + tid] + 1
    if s.i[s.o_lots_used + tid] > s.i[s.o_lots_peak + tid]:
        s.i[s.o_lots_peak + tid] = s.i[s.o_lots_used + tid]
    s.i[s.o_l_route + i] = route
    s.i[s.o_l_idx + i] = 0
    s.i[s.o_l_prio + i] = prio
    s.i[s.o_l_wafers + i] = wafers
    s.f[s.o_l_release + i] = release
    s.f[s.o_l_due + i] = due
    s.f[s.o_l_arrived + i] = release
    s.f[s.o_l_left + i] = release
    s.i[s.o_l_seq + i] = 0
    s.i[s.o_l_cqt_to + i] = -1
    s.f[s.o_l_cqt_dl + i] = ZERO
    s.l[s.o_l_rwk + i] = wp.int64(0)
    s.f[s.o_l_qt + i] = ZERO
    s.f[s.o_l_pt + i] = ZERO
    s.f[s.o_l_tt + i] = ZERO
    s.i[s.o_l_nsteps + i] = 0
    s.i[s.o_l_type + i] = type_
    s.i[s.o_l_src + i] = src
    s.i[s.o_l_num + i] = num
    s.i[s.o_l_next + i] = -1
    s.i[s.o_l_prev + i] = -1
    s.i[s.o_l_jnext + i] = -1
    s.i[s.o_l_only + i] = -1
    s.i[s.o_l_nded + i] = 0
    return lot


@wp.func
def lot_step(m: Model, s: State, sc: int, i: int) -> int:
    """Global step index of the lot at state index i."""
    return m.I[m.o_r_start + sc * m.sI + s.i[s.o_l_route + i]] + s.i[s.o_l_idx + i]


# ---------------------------------------------------------------------------------------------
# lots


@wp.func
def complete(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, lot: int, t: wp.float64):
    i = lot * n + tid
    s.f[s.o_fab_area + tid] = s.f[s.o_fab_area + tid] + wp.float64(s.i[s.o_fab_n + tid]) * (
        t - s.f[s.o_fab_last + tid]
    )
    s.f[s.o_fab_last + tid] = t
    s.i[s.o_fab_n + tid] = s.i[s.o_fab_n + tid] - 1
    c = s.i[s.o_ncomp + tid]
    if cap.keep_records != 0:
        if c < cap.records:
            r = c * n + tid
            s.i[s.o_rc_src + r] = s.i[s.o_l_src + i]
            s.i[s.o_rc_num + r] = s.i[s.o_l_num + i]
            s.f[s.o_rc_release + r] = s.f[s.o_l_release + i]
            s.f[s.o_rc_due + r] = s.f[s.o_l_due + i]
            s.f[s.o_rc_comp + r] = t
            s.f[s.o_rc_qt + r] = s.f[s.o_l_qt + i]
            s.f[s.o_rc_pt + r] = s.f[s.o_l_pt + i]
            s.f[s.o_rc_tt + r] = s.f[s.o_l_tt + i]
            s.i[s.o_rc_nsteps + r] = s.i[s.o_l_nsteps + i]
        else:
            s.i[s.o_err_soft + tid] = s.i[s.o_err_soft + tid] | ERR_RECORDS
    s.i[s.o_ncomp + tid] = c + 1
    if t >= m.F[m.o_warm + sc * m.sF + 0]:
        ty = s.i[s.o_l_type + i]
        k = ty * n + tid
        ct = (t - s.f[s.o_l_release + i]) / DAY
        s.i[s.o_lt_n + k] = s.i[s.o_lt_n + k] + 1
        s.f[s.o_lt_sum + k] = s.f[s.o_lt_sum + k] + ct
        s.f[s.o_lt_sq + k] = s.f[s.o_lt_sq + k] + ct * ct
        if t <= s.f[s.o_l_due + i]:
            s.i[s.o_lt_ontime + k] = s.i[s.o_lt_ontime + k] + 1
        b = int(wp.floor(ct / m.F[m.o_hist_w + sc * m.sF + 0]))
        if b < 0:
            b = 0
        if b >= cap.hist_bins:
            b = cap.hist_bins - 1
        h = (ty * cap.hist_bins + b) * n + tid
        s.i[s.o_hist + h] = s.i[s.o_hist + h] + 1
    # free the slot
    s.i[s.o_l_next + i] = s.i[s.o_lot_free + tid]
    s.i[s.o_lot_free + tid] = lot
    s.i[s.o_lots_used + tid] = s.i[s.o_lots_used + tid] - 1


@wp.func
def next_step(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, lot: int,
              t: wp.float64, transport: int):  # fmt: skip
    """Move past sampled-out steps; complete the lot or send it on (with transport)."""
    li = lot * n + tid
    r = s.i[s.o_l_route + li]
    r0 = m.I[m.o_r_start + sc * m.sI + r]
    nr = m.I[m.o_r_len + sc * m.sI + r]
    i = s.i[s.o_l_idx + li] + 1
    while i < nr:
        p = m.F[m.o_s_sample_p + sc * m.sF + r0 + i]
        if p >= ONE:
            break
        if next_u(s.u, s.o_rs + tid, n) < p:  # stream 0: routing
            break
        i += 1
    if i >= nr:
        complete(m, s, cap, sc, n, tid, lot, t)
        return
    s.i[s.o_l_idx + li] = i
    s.f[s.o_l_left + li] = t
    ta = t
    if transport != 0 and m.I[m.o_transport_on + sc * m.sI + 0] != 0:
        k = m.I[m.o_tr_kind + sc * m.sI + 0]
        lo = m.F[m.o_tr_lo + sc * m.sF + 0]
        hi = m.F[m.o_tr_hi + sc * m.sF + 0]
        if transport == 2 and k == 1:
            # the reference's inlined after-step path rounds (t + lo) first
            ta = t + lo + (hi - lo) * next_u(s.u, s.o_rs + 4 * n + tid, n)
        else:
            ta = t + draw(s, 1, n, tid, k, lo, hi, m.F[m.o_tr_mean + sc * m.sF + 0])
    push(s, cap, n, tid, ta, ARRIVE, lot, 0)


@wp.func
def step_done(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, lot: int, t: wp.float64):
    """The lot finished its current step at t: CQT window, rework, next step."""
    li = lot * n + tid
    st = lot_step(m, s, sc, li)
    s.i[s.o_l_nsteps + li] = s.i[s.o_l_nsteps + li] + 1
    if m.I[m.o_s_cqt_to + sc * m.sI + st] >= 0:
        s.i[s.o_l_cqt_to + li] = m.I[m.o_s_cqt_to + sc * m.sI + st]
        s.f[s.o_l_cqt_dl + li] = t + m.F[m.o_s_cqt_limit + sc * m.sF + st]
    rp = m.F[m.o_s_rwk_p + sc * m.sF + st]
    if rp > ZERO and m.I[m.o_s_rwk_to + sc * m.sI + st] >= 0:
        if next_u(s.u, s.o_rs + tid, n) < rp:
            bit = wp.int64(1) << wp.int64(m.I[m.o_s_rwk_bit + sc * m.sI + st])
            if (s.l[s.o_l_rwk + li] & bit) == wp.int64(0):
                s.l[s.o_l_rwk + li] = s.l[s.o_l_rwk + li] | bit
                s.i[s.o_l_idx + li] = m.I[m.o_s_rwk_to + sc * m.sI + st] - 1
    next_step(m, s, cap, sc, n, tid, lot, t, 1)


@wp.func
def release(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, r: int, t: wp.float64):
    k = s.i[s.o_rel_k + r * n + tid]
    lpr = m.I[m.o_rel_lpr + sc * m.sI + r]
    for j in range(lpr):
        num = k * lpr + j + 1
        lot = new_lot(s, cap, n, tid, m.I[m.o_rel_route + sc * m.sI + r], m.I[m.o_rel_type + sc * m.sI + r], m.I[m.o_rel_prio + sc * m.sI + r],
                      m.I[m.o_rel_wafers + sc * m.sI + r], t, t + m.F[m.o_rel_due_off + sc * m.sF + r], -(r + 1), num)  # fmt: skip
        if lot < 0:
            return
        if t >= m.F[m.o_warm + sc * m.sF + 0]:
            s.i[s.o_rel_done + r * n + tid] = s.i[s.o_rel_done + r * n + tid] + 1
        enter_fab(s, tid, t)
        s.i[s.o_l_idx + lot * n + tid] = -1
        next_step(m, s, cap, sc, n, tid, lot, t, 0)
    k += 1
    s.i[s.o_rel_k + r * n + tid] = k
    if k < m.I[m.o_rel_count + sc * m.sI + r]:
        dt = m.F[m.o_rel_interval + sc * m.sF + r]
        if m.I[m.o_rel_exp + sc * m.sI + r] != 0:
            dt = -dt * wp.log(
                ONE - next_u(s.u, s.o_rs + 4 * m.I[m.o_rel_stream + sc * m.sI + r] * n + tid, n)
            )
        push(s, cap, n, tid, t + dt, RELEASE_EV, r, 0)


# ---------------------------------------------------------------------------------------------
# queues


@wp.func
def heap_before(m: Model, s: State, sc: int, n: int, tid: int, f: int, a: int, b: int) -> bool:
    """Order of the reference's per-setup heaps (CFamily.static): the family's ranks that
    depend on neither tool nor clock (hp, fifo) in its order, then seq."""
    ai = a * n + tid
    bi = b * n + tid
    for k in range(MAX_RANKS):
        r = m.I[m.o_f_ranks + sc * m.sI + f * MAX_RANKS + k]
        if r == RANK_HP:
            pa = s.i[s.o_l_prio + ai]
            pb = s.i[s.o_l_prio + bi]
            if pa != pb:
                return pa > pb
        elif r == RANK_FIFO:
            ta = s.f[s.o_l_arrived + ai]
            tb = s.f[s.o_l_arrived + bi]
            if ta != tb:
                return ta < tb
    return s.i[s.o_l_seq + ai] < s.i[s.o_l_seq + bi]


@wp.func
def class_count(m: Model, s: State, sc: int, n: int, tid: int, f: int, lot: int, d: int):
    """Waiting lots per setup class of the family (or dedicated to a tool) change by d."""
    li = lot * n + tid
    only = s.i[s.o_l_only + li]
    if only >= 0:
        s.i[s.o_t_nded + only * n + tid] = s.i[s.o_t_nded + only * n + tid] + d
        return
    nc = m.I[m.o_n_setups + sc * m.sI + 0] + 2
    c = (f * nc + m.I[m.o_s_setup + sc * m.sI + lot_step(m, s, sc, li)] + 1) * n + tid
    before = s.i[s.o_fc + c]
    s.i[s.o_fc + c] = before + d
    fi = f * n + tid
    if before == 0:
        s.i[s.o_f_ncls + fi] = s.i[s.o_f_ncls + fi] + 1
    elif before + d == 0:
        s.i[s.o_f_ncls + fi] = s.i[s.o_f_ncls + fi] - 1


@wp.func
def q_append(m: Model, s: State, sc: int, n: int, tid: int, f: int, lot: int):
    """Insert the lot in the family's queue in the reference's heap order (heap_before:
    (-priority, arrival, seq) for the usual ranks, arrival and seq for fifo families):
    arrivals come in time order, so only lots that go before the tail walk back."""
    fi = f * n + tid
    li = lot * n + tid
    prev = s.i[s.o_q_tail + fi]
    while prev >= 0:
        if heap_before(m, s, sc, n, tid, f, lot, prev):
            prev = s.i[s.o_l_prev + prev * n + tid]
        else:
            break
    nxt = s.i[s.o_q_head + fi]
    if prev >= 0:
        nxt = s.i[s.o_l_next + prev * n + tid]
        s.i[s.o_l_next + prev * n + tid] = lot
    else:
        s.i[s.o_q_head + fi] = lot
    if nxt >= 0:
        s.i[s.o_l_prev + nxt * n + tid] = lot
    else:
        s.i[s.o_q_tail + fi] = lot
    s.i[s.o_l_prev + li] = prev
    s.i[s.o_l_next + li] = nxt
    class_count(m, s, sc, n, tid, f, lot, 1)
    if m.I[m.o_f_batching + sc * m.sI + f] != 0:
        g = m.I[m.o_s_bkey + sc * m.sI + lot_step(m, s, sc, li)] * n + tid
        s.i[s.o_g_w + g] = s.i[s.o_g_w + g] + s.i[s.o_l_wafers + li]


@wp.func
def q_remove(m: Model, s: State, sc: int, n: int, tid: int, f: int, lot: int):
    fi = f * n + tid
    li = lot * n + tid
    p = s.i[s.o_l_prev + li]
    x = s.i[s.o_l_next + li]
    if p >= 0:
        s.i[s.o_l_next + p * n + tid] = x
    else:
        s.i[s.o_q_head + fi] = x
    if x >= 0:
        s.i[s.o_l_prev + x * n + tid] = p
    else:
        s.i[s.o_q_tail + fi] = p
    s.i[s.o_l_next + li] = -1
    s.i[s.o_l_prev + li] = -1
    class_count(m, s, sc, n, tid, f, lot, -1)
    if m.I[m.o_f_batching + sc * m.sI + f] != 0:
        g = m.I[m.o_s_bkey + sc * m.sI + lot_step(m, s, sc, li)] * n + tid
        s.i[s.o_g_w + g] = s.i[s.o_g_w + g] - s.i[s.o_l_wafers + li]


@wp.func
def setup_time(m: Model, sc: int, cur: int, st: int) -> wp.float64:
    """Seconds to change from setup ``cur`` to the step's setup (model.setup_time)."""
    new = m.I[m.o_s_setup + sc * m.sI + st]
    if new < 0 or new == cur:
        return ZERO
    ns = m.I[m.o_n_setups + sc * m.sI + 0]
    v = m.F[m.o_su_mat + sc * m.sF + (cur + 1) * ns + new]
    if wp.isnan(v):
        v = m.F[m.o_su_mat + sc * m.sF + new]
    if wp.isnan(v):
        v = m.F[m.o_s_setup_time + sc * m.sF + st]
    return v


@wp.func
def key_less(a0: int, a1: wp.float64, a2: wp.float64, a3: wp.float64, a4: int, b0: int,
             b1: wp.float64, b2: wp.float64, b3: wp.float64, b4: int) -> bool:  # fmt: skip
    """Tuple comparison (a0, a1, a2, a3, a4) < (b0, ...)."""
    if a0 != b0:
        return a0 < b0
    if a1 != b1:
        return a1 < b1
    if a2 != b2:
        return a2 < b2
    if a3 != b3:
        return a3 < b3
    return a4 < b4


# ---------------------------------------------------------------------------------------------
# tools


@wp.func
def idle_remove(s: State, n: int, tid: int, base: int, cnt: int, pos: int):
    """Remove entry ``pos`` of the idle list stored at tool slots [base, base + cnt)."""
    for k in range(pos, cnt - 1):
        s.i[s.o_idle + (base + k) * n + tid] = s.i[s.o_idle + (base + k + 1) * n + tid]


@wp.func
def set_dedication(s: State, n: int, tid: int, lot: int, step: int, tool: int):
    """lot.dedic[step] = tool (a small table per lot; a full one stops the thread)."""
    li = lot * n + tid
    nd = s.i[s.o_l_nded + li]
    for j in range(nd):
        e = (lot * DED_SLOTS + j) * n + tid
        if s.i[s.o_l_dk + e] == step:
            s.i[s.o_l_dt + e] = tool
            return
    if nd >= DED_SLOTS:
        s.i[s.o_err + tid] = ERR_DEDIC
        return
    e = (lot * DED_SLOTS + nd) * n + tid
    s.i[s.o_l_dk + e] = step
    s.i[s.o_l_dt + e] = tool
    s.i[s.o_l_nded + li] = nd + 1


@wp.func
def pop_dedication(s: State, n: int, tid: int, lot: int, step: int) -> int:
    """lot.dedic.pop(step, None) as a tool index or -1."""
    li = lot * n + tid
    nd = s.i[s.o_l_nded + li]
    for j in range(nd):
        e = (lot * DED_SLOTS + j) * n + tid
        if s.i[s.o_l_dk + e] == step:
            tool = s.i[s.o_l_dt + e]
            last = (lot * DED_SLOTS + nd - 1) * n + tid
            s.i[s.o_l_dk + e] = s.i[s.o_l_dk + last]
            s.i[s.o_l_dt + e] = s.i[s.o_l_dt + last]
            s.i[s.o_l_nded + li] = nd - 1
            return tool
    return -1


@wp.func
def start(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int, head: int,
          nlots: int, wafers: int, st: int, t: wp.float64):  # fmt: skip
    """Track the lots in: setup, load, process, unload; schedule the end (and readiness)."""
    ti = tool * n + tid
    f = m.I[m.o_t_fam + sc * m.sI + tool]
    setup = setup_time(m, sc, s.i[s.o_t_setup + ti], st)
    ss = m.I[m.o_s_setup + sc * m.sI + st]
    if ss >= 0:
        if setup > ZERO and m.I[m.o_su_minrun + sc * m.sI + ss] >= 0:
            s.i[s.o_t_mr_left + ti] = m.I[m.o_su_minrun + sc * m.sI + ss]
            s.i[s.o_t_mr_setup + ti] = ss
        s.i[s.o_t_setup + ti] = ss
    if s.i[s.o_t_mr_left + ti] > 0:
        s.i[s.o_t_mr_left + ti] = s.i[s.o_t_mr_left + ti] - nlots
    base = draw(s, 2 + f, n, tid, m.I[m.o_s_kind + sc * m.sI + st], m.F[m.o_s_lo + sc * m.sF + st], m.F[m.o_s_hi + sc * m.sF + st],
                m.F[m.o_s_mean + sc * m.sF + st])  # fmt: skip
    per = m.I[m.o_s_per + sc * m.sI + st]
    has_casc = wp.int32(0)
    casc = wp.float64(0.0)
    proc = base
    if per == 2:
        if m.I[m.o_s_has_bint + sc * m.sI + st] != 0:
            has_casc = 1
            casc = m.F[m.o_s_bint + sc * m.sF + st]
    elif per == 1:
        if m.I[m.o_s_has_pint + sc * m.sI + st] != 0:
            pint = m.F[m.o_s_pint + sc * m.sF + st]
            proc = base + pint * wp.float64(wafers - 1)
            has_casc = 1
            casc = pint * wp.float64(wafers)
        else:
            proc = base * wp.float64(wafers)
    else:
        if m.I[m.o_s_has_bint + sc * m.sI + st] != 0:
            has_casc = 1
            casc = m.F[m.o_s_bint + sc * m.sF + st]
    run = m.F[m.o_f_load + sc * m.sF + f] + proc + m.F[m.o_f_unload + sc * m.sF + f]
    begin = t + setup
    end = begin + run
    busy_end = end
    if has_casc != 0:
        busy_end = begin + casc
    s.f[s.o_t_ready + ti] = busy_end
    # the job
    job = s.i[s.o_job_free + tid]
    if job < 0:
        s.i[s.o_err + tid] = ERR_JOBS
        return
    ji = job * n + tid
    s.i[s.o_job_free + tid] = s.i[s.o_j_next + ji]
    s.i[s.o_j_tool + ji] = tool
    s.i[s.o_j_gen + ji] = s.i[s.o_j_gen + ji] + 1
    s.i[s.o_j_step + ji] = st
    s.f[s.o_j_start + ji] = t
    s.f[s.o_j_end + ji] = end
    s.i[s.o_j_lots + ji] = head
    s.i[s.o_j_pms + ji] = 0
    tail = s.i[s.o_t_jtail + ti]
    s.i[s.o_j_prev + ji] = tail
    s.i[s.o_j_next + ji] = -1
    if tail >= 0:
        s.i[s.o_j_next + tail * n + tid] = job
    else:
        s.i[s.o_t_jhead + ti] = job
    s.i[s.o_t_jtail + ti] = job
    s.i[s.o_t_inflight + ti] = s.i[s.o_t_inflight + ti] + 1
    push(s, cap, n, tid, end, JOB_END, job, s.i[s.o_j_gen + ji])
    if has_casc != 0:
        push(s, cap, n, tid, s.f[s.o_t_ready + ti], READY, tool, 0)
    fi = f * n + tid
    warm = m.F[m.o_warm + sc * m.sF + 0]
    if busy_end > warm:
        if t >= warm and busy_end <= m.F[m.o_end + sc * m.sF + 0]:
            s.f[s.o_fs_busy + fi] = s.f[s.o_fs_busy + fi] + (busy_end - begin)
            s.f[s.o_fs_setup + fi] = s.f[s.o_fs_setup + fi] + setup
        else:
            s.f[s.o_fs_busy + fi] = s.f[s.o_fs_busy + fi] + window(m, sc, begin, busy_end)
            s.f[s.o_fs_setup + fi] = s.f[s.o_fs_setup + fi] + window(m, sc, t, begin)
    w0 = m.I[m.o_t_pmw0 + sc * m.sI + tool]
    for k in range(m.I[m.o_t_npmw + sc * m.sI + tool]):
        wi = (w0 + k) * n + tid
        left = s.f[s.o_w_left + wi] - wp.float64(wafers)
        if left <= ZERO:
            left = left + m.F[m.o_w_interval + sc * m.sF + w0 + k]
            s.i[s.o_j_pms + ji] = s.i[s.o_j_pms + ji] | (1 << k)
        s.f[s.o_w_left + wi] = left
    measured = t >= warm
    lot = head
    while lot >= 0:
        li = lot * n + tid
        s.i[s.o_l_only + li] = -1
        # the lot's own step: a batch of one operation may mix routes
        ded_to = m.I[m.o_s_ded + sc * m.sI + lot_step(m, s, sc, li)]
        if ded_to >= 0:  # SVESTN/FORSTEP: that later step must run on this tool
            set_dedication(s, n, tid, lot, ded_to, tool)
        q = t - s.f[s.o_l_arrived + li]
        s.f[s.o_l_qt + li] = s.f[s.o_l_qt + li] + q
        if measured:
            s.i[s.o_fs_started + fi] = s.i[s.o_fs_started + fi] + 1
            s.f[s.o_fs_qtime + fi] = s.f[s.o_fs_qtime + fi] + q
        ct = s.i[s.o_l_cqt_to + li]
        if ct >= 0 and ct == s.i[s.o_l_idx + li]:
            if measured:
                s.i[s.o_cqt_checks + tid] = s.i[s.o_cqt_checks + tid] + 1
                if t > s.f[s.o_l_cqt_dl + li]:
                    s.i[s.o_cqt_viol + tid] = s.i[s.o_cqt_viol + tid] + 1
            s.i[s.o_l_cqt_to + li] = -1
        lot = s.i[s.o_l_jnext + li]


@wp.func
def dispatch_batch(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int,
                   f: int, t: wp.float64) -> bool:  # fmt: skip
    """Batch families: the best group of one batch key with enough wafers. The queue
    is in (-priority, arrival, seq) order (arrival, seq for fifo families), so the first lot
    of an eligible group is the best group head, and the group's lots follow in the order the
    reference sorts them. The batch
    runs with the head lot's step (processing, setup, intervals), as in the reference."""
    best = wp.int32(-1)
    lot = s.i[s.o_q_head + f * n + tid]
    while lot >= 0:
        li = lot * n + tid
        st = lot_step(m, s, sc, li)
        if m.I[m.o_s_per + sc * m.sI + st] != 2:
            best = lot
            break
        if (
            s.i[s.o_g_w + m.I[m.o_s_bkey + sc * m.sI + st] * n + tid]
            >= m.I[m.o_s_bmin + sc * m.sI + st]
        ):
            best = lot
            break
        lot = s.i[s.o_l_next + li]
    if best < 0:
        return False
    gst = lot_step(m, s, sc, best * n + tid)
    if m.I[m.o_s_per + sc * m.sI + gst] != 2:
        q_remove(m, s, sc, n, tid, f, best)
        s.i[s.o_l_jnext + best * n + tid] = -1
        start(m, s, cap, sc, n, tid, tool, best, 1, s.i[s.o_l_wafers + best * n + tid], gst, t)
        return True
    bmax = m.I[m.o_s_bmax + sc * m.sI + gst]
    gkey = m.I[m.o_s_bkey + sc * m.sI + gst]  # lots of steps with this batch key join
    head = wp.int32(-1)
    tail = wp.int32(-1)
    nl = wp.int32(0)
    w = wp.int32(0)
    lot = best
    while lot >= 0:
        li = lot * n + tid
        nxt = s.i[s.o_l_next + li]
        if m.I[m.o_s_bkey + sc * m.sI + lot_step(m, s, sc, li)] == gkey:
            pw = s.i[s.o_l_wafers + li]
            if w + pw > bmax and nl > 0:
                break
            q_remove(m, s, sc, n, tid, f, lot)
            s.i[s.o_l_jnext + li] = -1
            if tail >= 0:
                s.i[s.o_l_jnext + tail * n + tid] = lot
            else:
                head = lot
            tail = lot
            nl += 1
            w += pw
        lot = nxt
    start(m, s, cap, sc, n, tid, tool, head, nl, w, gst, t)
    return True


@wp.func
def lot_key(m: Model, s: State, sc: int, n: int, tid: int, lot: int, f: int, cur: int,
            mr_left: int, mr_setup: int, t: wp.float64) -> vec5d:  # fmt: skip
    """The family's key of a lot for this tool, less the final sequence number: (minimum-run
    flag, one number per rank of f_ranks), zeros after the last rank (same order as the
    reference's tuples, twin.whatif.reference.dispatch.rank_key)."""
    li = lot * n + tid
    st = lot_step(m, s, sc, li)
    key = vec5d()
    if mr_left > 0 and m.I[m.o_s_setup + sc * m.sI + st] != mr_setup:
        key[0] = ONE
    for k in range(MAX_RANKS):
        r = m.I[m.o_f_ranks + sc * m.sI + f * MAX_RANKS + k]
        v = ZERO
        if r == RANK_HP:
            v = -wp.float64(s.i[s.o_l_prio + li])
        elif r == RANK_SETUP:
            v = setup_time(m, sc, cur, st)
        elif r == RANK_FIFO:
            v = s.f[s.o_l_arrived + li]
        elif r == RANK_CR:
            rpt = m.F[m.o_s_rpt + sc * m.sF + st]
            if rpt > ZERO:
                v = (s.f[s.o_l_due + li] - t) / rpt
        key[k + 1] = v
    return key


@wp.func
def key_before(a: vec5d, qa: int, b: vec5d, qb: int) -> bool:
    for k in range(5):
        if a[k] != b[k]:
            return a[k] < b[k]
    return qa < qb


@wp.func
def dispatch(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int,
             t: wp.float64) -> bool:  # fmt: skip
    """Start the best waiting lot (or batch) on the tool; False when nothing can start.

    Ranks without cr: the reference keeps one heap per setup (plus one per tool for dedicated
    lots) and compares the heads' keys, so the kernel finds each class's head first. With cr
    (f_scan): every lot's key. Lots dedicated to another tool are not candidates."""
    f = m.I[m.o_t_fam + sc * m.sI + tool]
    if m.I[m.o_f_batching + sc * m.sI + f] != 0:
        return dispatch_batch(m, s, cap, sc, n, tid, tool, f, t)
    lot = s.i[s.o_q_head + f * n + tid]
    if lot < 0:
        return False
    ti = tool * n + tid
    cur = s.i[s.o_t_setup + ti]
    mr_left = s.i[s.o_t_mr_left + ti]
    mr_setup = s.i[s.o_t_mr_setup + ti]
    best = wp.int32(-1)
    bk = vec5d()
    bq = wp.int32(0)
    if m.I[m.o_f_scan + sc * m.sI + f] != 0:
        while lot >= 0:
            li = lot * n + tid
            only = s.i[s.o_l_only + li]
            if only < 0 or only == tool:
                k = lot_key(m, s, sc, n, tid, lot, f, cur, mr_left, mr_setup, t)
                q = s.i[s.o_l_seq + li]
                if best < 0 or key_before(k, q, bk, bq):
                    best = lot
                    bk = k
                    bq = q
            lot = s.i[s.o_l_next + li]
    else:
        # the queue is in heap order: the first lot of each class is that class's head;
        # stop once every non-empty class (and this tool's dedicated lots) has been seen
        nc = m.I[m.o_n_setups + sc * m.sI + 0] + 2
        need = s.i[s.o_f_ncls + f * n + tid]
        if s.i[s.o_t_nded + ti] > 0:
            need += 1
        stamp = s.i[s.o_stamp + tid] + 1
        s.i[s.o_stamp + tid] = stamp
        found = wp.int32(0)
        while lot >= 0 and found < need:
            li = lot * n + tid
            only = s.i[s.o_l_only + li]
            if only < 0 or only == tool:
                c = nc - 1
                if only < 0:
                    c = m.I[m.o_s_setup + sc * m.sI + lot_step(m, s, sc, li)] + 1
                if s.i[s.o_cls_head + c * n + tid] != stamp:
                    s.i[s.o_cls_head + c * n + tid] = stamp
                    found += 1
                    k = lot_key(m, s, sc, n, tid, lot, f, cur, mr_left, mr_setup, t)
                    q = s.i[s.o_l_seq + li]
                    if best < 0 or key_before(k, q, bk, bq):
                        best = lot
                        bk = k
                        bq = q
            lot = s.i[s.o_l_next + li]
    if best < 0:
        return False
    q_remove(m, s, sc, n, tid, f, best)
    bi = best * n + tid
    s.i[s.o_l_jnext + bi] = -1
    start(m, s, cap, sc, n, tid, tool, best, 1, s.i[s.o_l_wafers + bi], lot_step(m, s, sc, bi), t)
    return True


@wp.func
def idle_take(m: Model, s: State, sc: int, n: int, tid: int, tool: int):
    """fam.idle.remove(tool); the tool is no longer idle."""
    f = m.I[m.o_t_fam + sc * m.sI + tool]
    fi = f * n + tid
    base = m.I[m.o_f_tool0 + sc * m.sI + f]
    cnt = s.i[s.o_f_nidle + fi]
    for k in range(cnt):
        if s.i[s.o_idle + (base + k) * n + tid] == tool:
            idle_remove(s, n, tid, base, cnt, k)
            s.i[s.o_f_nidle + fi] = cnt - 1
            break
    s.i[s.o_t_inidle + tool * n + tid] = 0


@wp.func
def idle_push(m: Model, s: State, sc: int, n: int, tid: int, tool: int):
    f = m.I[m.o_t_fam + sc * m.sI + tool]
    fi = f * n + tid
    k = s.i[s.o_f_nidle + fi]
    s.i[s.o_idle + (m.I[m.o_f_tool0 + sc * m.sI + f] + k) * n + tid] = tool
    s.i[s.o_f_nidle + fi] = k + 1
    s.i[s.o_t_inidle + tool * n + tid] = 1


@wp.func
def check(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int, t: wp.float64):
    """Make the tool work if it is available, else leave it; idle if nothing to do."""
    ti = tool * n + tid
    if s.i[s.o_t_inidle + ti] != 0 or s.f[s.o_t_down + ti] > t or s.f[s.o_t_ready + ti] > t:
        return
    if s.i[s.o_t_inflight + ti] >= m.I[m.o_f_cap + sc * m.sI + m.I[m.o_t_fam + sc * m.sI + tool]]:
        return
    if not dispatch(m, s, cap, sc, n, tid, tool, t):
        idle_push(m, s, sc, n, tid, tool)


@wp.func
def wake(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, f: int, st: int,
         t: wp.float64):  # fmt: skip
    """Give the new work to an idle tool (least setup first where the family says so)."""
    fi = f * n + tid
    cnt = s.i[s.o_f_nidle + fi]
    base = m.I[m.o_f_tool0 + sc * m.sI + f]
    pos = cnt - 1
    first = m.I[m.o_wake_first + sc * m.sI + 0] != 0  # SimConfig.wake="first"
    if (
        m.I[m.o_f_wake_least + sc * m.sI + f] != 0
        and m.I[m.o_f_setups + sc * m.sI + f] != 0
        and cnt > 1
    ):
        pos = wp.int32(0)
        bv = setup_time(m, sc, s.i[s.o_t_setup + s.i[s.o_idle + base * n + tid] * n + tid], st)
        for k in range(1, cnt):
            v = setup_time(
                m, sc, s.i[s.o_t_setup + s.i[s.o_idle + (base + k) * n + tid] * n + tid], st
            )
            # ties: the first in the idle list, or the first tool of the family
            if v < bv or (
                first
                and v == bv
                and s.i[s.o_idle + (base + k) * n + tid] < s.i[s.o_idle + (base + pos) * n + tid]
            ):
                bv = v
                pos = k
    elif first and cnt > 1:
        pos = wp.int32(0)
        for k in range(1, cnt):
            if s.i[s.o_idle + (base + k) * n + tid] < s.i[s.o_idle + (base + pos) * n + tid]:
                pos = k
    tool = s.i[s.o_idle + (base + pos) * n + tid]
    idle_remove(s, n, tid, base, cnt, pos)
    s.i[s.o_f_nidle + fi] = cnt - 1
    s.i[s.o_t_inidle + tool * n + tid] = 0
    if not dispatch(m, s, cap, sc, n, tid, tool, t):
        idle_push(m, s, sc, n, tid, tool)


@wp.func
def arrive(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, lot: int, t: wp.float64):
    """The lot reaches the queue of its current step."""
    li = lot * n + tid
    last_tt = t - s.f[s.o_l_left + li]
    s.f[s.o_l_tt + li] = s.f[s.o_l_tt + li] + last_tt
    st = lot_step(m, s, sc, li)
    f = m.I[m.o_s_fam + sc * m.sI + st]
    if m.I[m.o_s_delay + sc * m.sI + st] != 0:
        d = draw(s, 2 + f, n, tid, m.I[m.o_s_kind + sc * m.sI + st], m.F[m.o_s_lo + sc * m.sF + st], m.F[m.o_s_hi + sc * m.sF + st],
                 m.F[m.o_s_mean + sc * m.sF + st])  # fmt: skip
        s.f[s.o_l_arrived + li] = t
        push(s, cap, n, tid, t + d, DELAY_END, lot, 0)
        return
    fi = f * n + tid
    fam_area(s, fi, t)
    s.i[s.o_f_n + fi] = s.i[s.o_f_n + fi] + 1
    s.f[s.o_l_arrived + li] = t
    s.i[s.o_l_seq + li] = next_seq(s, tid)
    if m.I[m.o_f_batching + sc * m.sI + f] == 0 and s.i[s.o_l_nded + li] > 0:
        # a step that must run on the tool of an earlier one waits for that tool only
        tool = pop_dedication(s, n, tid, lot, s.i[s.o_l_idx + li])
        if tool >= 0 and m.I[m.o_t_fam + sc * m.sI + tool] == f:
            s.i[s.o_l_only + li] = tool
            q_append(m, s, sc, n, tid, f, lot)
            if s.i[s.o_t_inidle + tool * n + tid] != 0:
                idle_take(m, s, sc, n, tid, tool)
                if not dispatch(m, s, cap, sc, n, tid, tool, t):
                    idle_push(m, s, sc, n, tid, tool)
            return
    q_append(m, s, sc, n, tid, f, lot)
    if s.i[s.o_f_nidle + fi] > 0:
        wake(m, s, cap, sc, n, tid, f, st, t)


@wp.func
def down(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int, t: wp.float64,
         duration: wp.float64, pm: int, calendar: int) -> wp.float64:  # fmt: skip
    """Take the tool down for ``duration`` s (after any down in progress); work waits. Returns
    the down's end; a breakdown or calendar PM (``calendar``) of an idle, up tool has no
    effect with SimConfig.idle_downs="skip" (the reference's _down)."""
    ti = tool * n + tid
    if calendar != 0 and m.I[m.o_skip_idle_downs + sc * m.sI + 0] != 0:
        if s.i[s.o_t_inidle + ti] != 0 and s.f[s.o_t_down + ti] <= t:
            return t + duration
    f = m.I[m.o_t_fam + sc * m.sI + tool]
    fi = f * n + tid
    st = t
    if s.f[s.o_t_down + ti] > st:
        st = s.f[s.o_t_down + ti]
    du = st + duration
    s.f[s.o_t_down + ti] = du
    if s.i[s.o_t_inidle + ti] != 0:
        idle_take(m, s, sc, n, tid, tool)
    job = s.i[s.o_t_jhead + ti]
    while job >= 0:
        ji = job * n + tid
        s.f[s.o_j_end + ji] = s.f[s.o_j_end + ji] + duration
        push(s, cap, n, tid, s.f[s.o_j_end + ji], JOB_END, job, s.i[s.o_j_gen + ji])
        job = s.i[s.o_j_next + ji]
    if s.f[s.o_t_ready + ti] > t:
        s.f[s.o_t_ready + ti] = s.f[s.o_t_ready + ti] + duration
        push(s, cap, n, tid, s.f[s.o_t_ready + ti], READY, tool, 0)
    if pm != 0:
        s.f[s.o_fs_pm + fi] = s.f[s.o_fs_pm + fi] + window(m, sc, st, du)
    else:
        s.f[s.o_fs_down + fi] = s.f[s.o_fs_down + fi] + window(m, sc, st, du)
    push(s, cap, n, tid, du, DOWN_END, tool, 0)
    return du


@wp.func
def job_end(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, job: int, t: wp.float64):
    ji = job * n + tid
    tool = s.i[s.o_j_tool + ji]
    ti = tool * n + tid
    f = m.I[m.o_t_fam + sc * m.sI + tool]
    fi = f * n + tid
    # unlink from the tool's jobs
    p = s.i[s.o_j_prev + ji]
    x = s.i[s.o_j_next + ji]
    if p >= 0:
        s.i[s.o_j_next + p * n + tid] = x
    else:
        s.i[s.o_t_jhead + ti] = x
    if x >= 0:
        s.i[s.o_j_prev + x * n + tid] = p
    else:
        s.i[s.o_t_jtail + ti] = p
    s.i[s.o_t_inflight + ti] = s.i[s.o_t_inflight + ti] - 1
    s.i[s.o_j_tool + ji] = -1
    nl = wp.int32(0)
    lot = s.i[s.o_j_lots + ji]
    while lot >= 0:
        nl += 1
        lot = s.i[s.o_l_jnext + lot * n + tid]
    fam_area(s, fi, t)
    s.i[s.o_f_n + fi] = s.i[s.o_f_n + fi] - nl
    measured = t >= m.F[m.o_warm + sc * m.sF + 0]
    jstart = s.f[s.o_j_start + ji]
    jst = s.i[s.o_j_step + ji]
    # the reference inlines the common after-step path (no rework, no CQT window)
    plain = m.F[m.o_s_rwk_p + sc * m.sF + jst] == ZERO and m.I[m.o_s_cqt_to + sc * m.sI + jst] < 0
    lot = s.i[s.o_j_lots + ji]
    while lot >= 0:
        li = lot * n + tid
        nxt = s.i[s.o_l_jnext + li]
        s.f[s.o_l_pt + li] = s.f[s.o_l_pt + li] + (t - jstart)
        if measured:
            s.i[s.o_fs_dep + fi] = s.i[s.o_fs_dep + fi] + 1
            s.f[s.o_fs_sojourn + fi] = s.f[s.o_fs_sojourn + fi] + (t - s.f[s.o_l_arrived + li])
        if plain:
            s.i[s.o_l_nsteps + li] = s.i[s.o_l_nsteps + li] + 1
            next_step(m, s, cap, sc, n, tid, lot, t, 2)
        else:
            step_done(m, s, cap, sc, n, tid, lot, t)
        lot = nxt
    pms = s.i[s.o_j_pms + ji]
    # the job slot is free again (its generation tells stale events apart)
    s.i[s.o_j_next + ji] = s.i[s.o_job_free + tid]
    s.i[s.o_job_free + tid] = job
    if pms != 0:
        w0 = m.I[m.o_t_pmw0 + sc * m.sI + tool]
        ps = m.I[m.o_t_stream + sc * m.sI + tool] + 1
        for k in range(m.I[m.o_t_npmw + sc * m.sI + tool]):
            if (pms & (1 << k)) != 0:
                w = w0 + k
                d = draw(s, ps, n, tid, m.I[m.o_w_kind + sc * m.sI + w], m.F[m.o_w_lo + sc * m.sF + w], m.F[m.o_w_hi + sc * m.sF + w],
                         m.F[m.o_w_mean + sc * m.sF + w])  # fmt: skip
                down(m, s, cap, sc, n, tid, tool, t, d, 1, 0)
    check(m, s, cap, sc, n, tid, tool, t)


@wp.func
def fail(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int, c: int,
         t: wp.float64):  # fmt: skip
    """A breakdown of calendar c: repair now (after any down); next failure after repair."""
    ts = m.I[m.o_t_stream + sc * m.sI + tool]
    d = draw(
        s,
        ts,
        n,
        tid,
        m.I[m.o_d_rkind + sc * m.sI + c],
        m.F[m.o_d_rlo + sc * m.sF + c],
        m.F[m.o_d_rhi + sc * m.sF + c],
        m.F[m.o_d_rmean + sc * m.sF + c],
    )
    repaired = down(m, s, cap, sc, n, tid, tool, t, d, 0, 1)
    g = draw(
        s,
        ts,
        n,
        tid,
        m.I[m.o_d_fkind + sc * m.sI + c],
        m.F[m.o_d_flo + sc * m.sF + c],
        m.F[m.o_d_fhi + sc * m.sF + c],
        m.F[m.o_d_fmean + sc * m.sF + c],
    )
    push(s, cap, n, tid, repaired + g, FAIL, tool, c)


@wp.func
def warmup(m: Model, s: State, sc: int, n: int, tid: int, t: wp.float64):
    """Start of the measured window: reset the time integrals for Little's law."""
    for f in range(m.I[m.o_n_fam + sc * m.sI + 0]):
        fi = f * n + tid
        fam_area(s, fi, t)
        s.f[s.o_f_area + fi] = ZERO
    s.f[s.o_fab_area + tid] = ZERO
    s.f[s.o_fab_last + tid] = t


# ---------------------------------------------------------------------------------------------
# set-up of a replication


@wp.func
def init(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, seed: wp.int64, rep: int):
    t0 = m.F[m.o_t0 + sc * m.sF + 0]
    s.f[s.o_now + tid] = t0
    s.f[s.o_fab_last + tid] = t0
    s.f[s.o_next_sample + tid] = t0
    for k in range(m.I[m.o_n_streams + sc * m.sI + 0]):
        seed_stream(
            seed, rep, m.str_words, m.str_nwords, sc, k, MAXW, s.u, s.o_rs + 4 * k * n + tid, n
        )
    # free lists
    for k in range(cap.lots):
        s.i[s.o_l_next + k * n + tid] = k + 1
    s.i[s.o_l_next + (cap.lots - 1) * n + tid] = -1
    s.i[s.o_lot_free + tid] = 0
    for k in range(cap.jobs):
        s.i[s.o_j_next + k * n + tid] = k + 1
        s.i[s.o_j_tool + k * n + tid] = -1
    s.i[s.o_j_next + (cap.jobs - 1) * n + tid] = -1
    s.i[s.o_job_free + tid] = 0
    for f in range(m.I[m.o_n_fam + sc * m.sI + 0]):
        s.i[s.o_q_head + f * n + tid] = -1
        s.i[s.o_q_tail + f * n + tid] = -1
        s.f[s.o_f_last + f * n + tid] = t0
    for k in range(m.I[m.o_n_tools + sc * m.sI + 0]):
        ti = k * n + tid
        s.i[s.o_t_setup + ti] = -1
        s.i[s.o_t_mr_setup + ti] = -1
        s.i[s.o_t_failcal + ti] = -1
        s.i[s.o_t_jhead + ti] = -1
        s.i[s.o_t_jtail + ti] = -1
    # calendars, in the reference's order; a constant first occurrence F is staggered
    for c in range(m.I[m.o_n_cal_ops + sc * m.sI + 0]):
        tool = m.I[m.o_c_tool + sc * m.sI + c]
        ts = m.I[m.o_t_stream + sc * m.sI + tool]
        ctype = m.I[m.o_c_type + sc * m.sI + c]
        ck = m.I[m.o_c_kind + sc * m.sI + c]
        first = m.F[m.o_c_mean + sc * m.sF + c] * m.F[m.o_c_stagger + sc * m.sF + c]
        if ck != 0:
            cs = ts
            if ctype != 0:
                cs = ts + 1
            first = draw(s, cs, n, tid, ck, m.F[m.o_c_lo + sc * m.sF + c],
                         m.F[m.o_c_hi + sc * m.sF + c], m.F[m.o_c_mean + sc * m.sF + c])  # fmt: skip
        cal = m.I[m.o_c_cal + sc * m.sI + c]
        if ctype == 0:
            push(s, cap, n, tid, t0 + first, FAIL, tool, cal)
        elif ctype == 1:
            t = first
            if t < t0:
                iv = m.F[m.o_p_interval + sc * m.sF + cal]
                t = t + iv * (ONE + wp.floor((t0 - t) / iv))
            push(s, cap, n, tid, t, PM_TIME, tool, cal)
        else:
            if first == ZERO:
                first = m.F[m.o_w_interval + sc * m.sF + cal]
            s.f[s.o_w_left + cal * n + tid] = first
    # start-state tools
    for k in range(m.I[m.o_n_init_tools + sc * m.sI + 0]):
        tool = m.I[m.o_it_tool + sc * m.sI + k]
        ti = tool * n + tid
        s.i[s.o_t_setup + ti] = m.I[m.o_it_setup + sc * m.sI + k]
        if m.F[m.o_it_busy + sc * m.sF + k] > t0:
            s.f[s.o_t_ready + ti] = m.F[m.o_it_busy + sc * m.sF + k]
            push(s, cap, n, tid, m.F[m.o_it_busy + sc * m.sF + k], READY, tool, 0)
        if m.F[m.o_it_down + sc * m.sF + k] > t0:
            s.f[s.o_t_down + ti] = m.F[m.o_it_down + sc * m.sF + k]
            push(s, cap, n, tid, m.F[m.o_it_down + sc * m.sF + k], DOWN_END, tool, 0)
    # initial lots (the model's WIP or the start state's lots)
    for k in range(m.I[m.o_n_init_lots + sc * m.sI + 0]):
        lot = new_lot(s, cap, n, tid, m.I[m.o_il_route + sc * m.sI + k], m.I[m.o_il_type + sc * m.sI + k], m.I[m.o_il_prio + sc * m.sI + k],
                      m.I[m.o_il_wafers + sc * m.sI + k], m.F[m.o_il_release + sc * m.sF + k], m.F[m.o_il_due + sc * m.sF + k], k, 0)  # fmt: skip
        if lot < 0:
            return
        li = lot * n + tid
        s.i[s.o_l_idx + li] = m.I[m.o_il_idx + sc * m.sI + k]
        s.f[s.o_l_left + li] = t0
        status = m.I[m.o_il_status + sc * m.sI + k]
        enter_fab(s, tid, t0)
        if status == 0:
            push(s, cap, n, tid, t0, ARRIVE, lot, 0)
        elif status == 1:
            push(s, cap, n, tid, wp.max(m.F[m.o_il_until + sc * m.sF + k], t0), ARRIVE, lot, 0)
        else:
            tool = m.I[m.o_il_tool + sc * m.sI + k]
            ti = tool * n + tid
            s.f[s.o_l_arrived + li] = t0
            e = wp.max(m.F[m.o_il_until + sc * m.sF + k], t0) + wp.max(
                ZERO, s.f[s.o_t_down + ti] - t0
            )
            job = s.i[s.o_job_free + tid]
            if job < 0:
                s.i[s.o_err + tid] = ERR_JOBS
                return
            ji = job * n + tid
            s.i[s.o_job_free + tid] = s.i[s.o_j_next + ji]
            s.i[s.o_j_tool + ji] = tool
            s.i[s.o_j_gen + ji] = s.i[s.o_j_gen + ji] + 1
            s.i[s.o_j_step + ji] = lot_step(m, s, sc, li)
            s.f[s.o_j_start + ji] = t0
            s.f[s.o_j_end + ji] = e
            s.i[s.o_j_lots + ji] = lot
            s.i[s.o_j_pms + ji] = 0
            tail = s.i[s.o_t_jtail + ti]
            s.i[s.o_j_prev + ji] = tail
            s.i[s.o_j_next + ji] = -1
            if tail >= 0:
                s.i[s.o_j_next + tail * n + tid] = job
            else:
                s.i[s.o_t_jhead + ti] = job
            s.i[s.o_t_jtail + ti] = job
            s.i[s.o_t_inflight + ti] = s.i[s.o_t_inflight + ti] + 1
            s.f[s.o_t_ready + ti] = wp.max(s.f[s.o_t_ready + ti], e)
            f = m.I[m.o_t_fam + sc * m.sI + tool]
            s.i[s.o_f_n + f * n + tid] = s.i[s.o_f_n + f * n + tid] + 1
            push(s, cap, n, tid, e, JOB_END, job, s.i[s.o_j_gen + ji])
    # releases
    for r in range(m.I[m.o_n_rel + sc * m.sI + 0]):
        if m.I[m.o_rel_on + sc * m.sI + r] == 0:
            continue
        t = m.F[m.o_rel_start + sc * m.sF + r]
        k = wp.int32(0)
        iv = m.F[m.o_rel_interval + sc * m.sF + r]
        if t < t0 and m.I[m.o_rel_exp + sc * m.sI + r] == 0 and iv > ZERO:
            k = int(-wp.floor(-(t0 - t) / iv))
            t = t + wp.float64(k) * iv
        elif t < t0:
            t = t0 - iv * wp.log(
                ONE - next_u(s.u, s.o_rs + 4 * m.I[m.o_rel_stream + sc * m.sI + r] * n + tid, n)
            )
        s.i[s.o_rel_k + r * n + tid] = k
        if k < m.I[m.o_rel_count + sc * m.sI + r]:
            push(s, cap, n, tid, t, RELEASE_EV, r, 0)
    push(s, cap, n, tid, m.F[m.o_warm + sc * m.sF + 0], WARMUP, 0, 0)
    for k in range(m.I[m.o_n_tools + sc * m.sI + 0]):
        ti = k * n + tid
        if s.f[s.o_t_ready + ti] <= t0:
            s.f[s.o_t_ready + ti] = t0
            push(s, cap, n, tid, t0, READY, k, 0)


# ---------------------------------------------------------------------------------------------
# the loop


@wp.kernel
def simulate_kernel(
    m: Model,
    s: State,
    cap: Caps,
    scen: wp.array(dtype=wp.int32),
    reps: wp.array(dtype=wp.int32),
    seed: wp.int64,
):
    tid = wp.tid()
    n = scen.shape[0]
    sc = scen[tid]
    init(m, s, cap, sc, n, tid, seed, reps[tid])
    end = m.F[m.o_end + sc * m.sF + 0]
    dt = m.F[m.o_sample_dt + sc * m.sF + 0]
    while s.i[s.o_hn + tid] > 0 and s.i[s.o_err + tid] == 0:
        t = s.f[s.o_ev_t + tid]
        if t > end:
            break
        kind = s.i[s.o_ev_kind + tid]
        obj = s.i[s.o_ev_obj + tid]
        aux = s.i[s.o_ev_aux + tid]
        pop(s, n, tid)
        ne = s.l[s.o_events + tid]
        if ne < wp.int64(cap.trace):
            e = int(ne) * n + tid
            s.f[s.o_tr_t + e] = t
            s.i[s.o_tr_k + e] = kind
            s.i[s.o_tr_o + e] = obj
        s.l[s.o_events + tid] = ne + wp.int64(1)
        while t >= s.f[s.o_next_sample + tid]:
            k = s.i[s.o_nsamp + tid]
            if k < cap.samples:
                s.i[s.o_samp + k * n + tid] = s.i[s.o_fab_n + tid]
            else:
                s.i[s.o_err_soft + tid] = s.i[s.o_err_soft + tid] | ERR_SAMPLES
            s.i[s.o_nsamp + tid] = k + 1
            s.f[s.o_next_sample + tid] = s.f[s.o_next_sample + tid] + dt
        s.f[s.o_now + tid] = t
        if kind == ARRIVE:
            arrive(m, s, cap, sc, n, tid, obj, t)
        elif kind == JOB_END:
            ji = obj * n + tid
            if (
                s.i[s.o_j_tool + ji] >= 0
                and s.i[s.o_j_gen + ji] == aux
                and s.f[s.o_j_end + ji] == t
            ):
                job_end(m, s, cap, sc, n, tid, obj, t)
        elif kind == READY:
            if s.f[s.o_t_ready + obj * n + tid] == t:
                check(m, s, cap, sc, n, tid, obj, t)
        elif kind == DELAY_END:
            li = obj * n + tid
            s.f[s.o_l_pt + li] = s.f[s.o_l_pt + li] + (t - s.f[s.o_l_arrived + li])
            step_done(m, s, cap, sc, n, tid, obj, t)
        elif kind == DOWN_END:
            if s.f[s.o_t_down + obj * n + tid] == t:
                check(m, s, cap, sc, n, tid, obj, t)
        elif kind == FAIL:
            fail(m, s, cap, sc, n, tid, obj, aux, t)
        elif kind == PM_TIME:
            d = draw(s, m.I[m.o_t_stream + sc * m.sI + obj] + 1, n, tid, m.I[m.o_p_kind + sc * m.sI + aux], m.F[m.o_p_lo + sc * m.sF + aux],
                     m.F[m.o_p_hi + sc * m.sF + aux], m.F[m.o_p_mean + sc * m.sF + aux])  # fmt: skip
            down(m, s, cap, sc, n, tid, obj, t, d, 1, 1)
            nxt = t + m.F[m.o_p_interval + sc * m.sF + aux]
            if m.I[m.o_pm_from_end + sc * m.sI + 0] != 0:  # SimConfig.pm_interval_from="end"
                nxt = nxt + d
            push(s, cap, n, tid, nxt, PM_TIME, obj, aux)
        elif kind == RELEASE_EV:
            release(m, s, cap, sc, n, tid, obj, t)
        else:
            warmup(m, s, sc, n, tid, t)
    # close the time integrals at the horizon
    for f in range(m.I[m.o_n_fam + sc * m.sI + 0]):
        fi = f * n + tid
        s.f[s.o_f_area + fi] = s.f[s.o_f_area + fi] + wp.float64(s.i[s.o_f_n + fi]) * (
            end - s.f[s.o_f_last + fi]
        )
    s.f[s.o_fab_area + tid] = s.f[s.o_fab_area + tid] + wp.float64(s.i[s.o_fab_n + tid]) * (
        end - s.f[s.o_fab_last + tid]
    )
