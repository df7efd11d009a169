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

from twin.whatif.kernel.rng import next_u, seed_stream

# exact float64 agreement with the reference: no FMA contraction (CPU and CUDA)
wp.set_module_options(
    {
        "enable_backward": False,
        "fuse_fp": False,
        "cpu_compiler_flags": "-march=native -ffp-contract=off",
    }
)

# event kinds, in the order they run at equal times (the reference's)
JOB_END = wp.constant(0)
READY = wp.constant(1)
DOWN_END = wp.constant(2)
FAIL = wp.constant(3)
PM_TIME = wp.constant(4)
ARRIVE = wp.constant(5)
DELAY_END = wp.constant(6)
RELEASE_EV = wp.constant(7)
WARMUP = wp.constant(8)

ERR_HEAP = wp.constant(1)
ERR_LOTS = wp.constant(2)
ERR_JOBS = wp.constant(3)
ERR_RECORDS = 4  # bit flags on err_soft (the run goes on; records/samples beyond are dropped)
ERR_SAMPLES = 8

ZERO = wp.constant(wp.float64(0.0))
ONE = wp.constant(wp.float64(1.0))
DAY = wp.constant(wp.float64(86400.0))
MAXW = wp.constant(4)


@wp.struct
class Model:
    t0: wp.array2d(dtype=wp.float64)
    warm: wp.array2d(dtype=wp.float64)
    end: wp.array2d(dtype=wp.float64)
    sample_dt: wp.array2d(dtype=wp.float64)
    hist_w: wp.array2d(dtype=wp.float64)
    tr_kind: wp.array2d(dtype=wp.int32)
    tr_lo: wp.array2d(dtype=wp.float64)
    tr_hi: wp.array2d(dtype=wp.float64)
    tr_mean: wp.array2d(dtype=wp.float64)
    transport_on: wp.array2d(dtype=wp.int32)
    n_fam: wp.array2d(dtype=wp.int32)
    n_tools: wp.array2d(dtype=wp.int32)
    n_rel: wp.array2d(dtype=wp.int32)
    n_init_tools: wp.array2d(dtype=wp.int32)
    n_init_lots: wp.array2d(dtype=wp.int32)
    n_cal_ops: wp.array2d(dtype=wp.int32)
    n_streams: wp.array2d(dtype=wp.int32)
    n_setups: wp.array2d(dtype=wp.int32)
    n_types: wp.array2d(dtype=wp.int32)
    f_cap: wp.array2d(dtype=wp.int32)
    f_load: wp.array2d(dtype=wp.float64)
    f_unload: wp.array2d(dtype=wp.float64)
    f_rule: wp.array2d(dtype=wp.int32)
    f_batching: wp.array2d(dtype=wp.int32)
    f_setups: wp.array2d(dtype=wp.int32)
    f_wake_least: wp.array2d(dtype=wp.int32)
    f_delay: wp.array2d(dtype=wp.int32)
    f_tool0: wp.array2d(dtype=wp.int32)
    f_ntools: wp.array2d(dtype=wp.int32)
    s_fam: wp.array2d(dtype=wp.int32)
    s_delay: wp.array2d(dtype=wp.int32)
    s_kind: wp.array2d(dtype=wp.int32)
    s_lo: wp.array2d(dtype=wp.float64)
    s_hi: wp.array2d(dtype=wp.float64)
    s_mean: wp.array2d(dtype=wp.float64)
    s_per: wp.array2d(dtype=wp.int32)
    s_bmin: wp.array2d(dtype=wp.int32)
    s_bmax: wp.array2d(dtype=wp.int32)
    s_setup: wp.array2d(dtype=wp.int32)
    s_setup_time: wp.array2d(dtype=wp.float64)
    s_has_bint: wp.array2d(dtype=wp.int32)
    s_bint: wp.array2d(dtype=wp.float64)
    s_has_pint: wp.array2d(dtype=wp.int32)
    s_pint: wp.array2d(dtype=wp.float64)
    s_rwk_to: wp.array2d(dtype=wp.int32)
    s_rwk_p: wp.array2d(dtype=wp.float64)
    s_rwk_bit: wp.array2d(dtype=wp.int32)
    s_sample_p: wp.array2d(dtype=wp.float64)
    s_cqt_to: wp.array2d(dtype=wp.int32)
    s_cqt_limit: wp.array2d(dtype=wp.float64)
    s_rpt: wp.array2d(dtype=wp.float64)
    r_start: wp.array2d(dtype=wp.int32)
    r_len: wp.array2d(dtype=wp.int32)
    su_mat: wp.array2d(dtype=wp.float64)
    su_minrun: wp.array2d(dtype=wp.int32)
    t_fam: wp.array2d(dtype=wp.int32)
    t_stream: wp.array2d(dtype=wp.int32)
    t_pmw0: wp.array2d(dtype=wp.int32)
    t_npmw: wp.array2d(dtype=wp.int32)
    w_first: wp.array2d(dtype=wp.float64)
    w_interval: wp.array2d(dtype=wp.float64)
    w_kind: wp.array2d(dtype=wp.int32)
    w_lo: wp.array2d(dtype=wp.float64)
    w_hi: wp.array2d(dtype=wp.float64)
    w_mean: wp.array2d(dtype=wp.float64)
    d_fkind: wp.array2d(dtype=wp.int32)
    d_flo: wp.array2d(dtype=wp.float64)
    d_fhi: wp.array2d(dtype=wp.float64)
    d_fmean: wp.array2d(dtype=wp.float64)
    d_rkind: wp.array2d(dtype=wp.int32)
    d_rlo: wp.array2d(dtype=wp.float64)
    d_rhi: wp.array2d(dtype=wp.float64)
    d_rmean: wp.array2d(dtype=wp.float64)
    p_interval: wp.array2d(dtype=wp.float64)
    p_kind: wp.array2d(dtype=wp.int32)
    p_lo: wp.array2d(dtype=wp.float64)
    p_hi: wp.array2d(dtype=wp.float64)
    p_mean: wp.array2d(dtype=wp.float64)
    c_type: wp.array2d(dtype=wp.int32)
    c_tool: wp.array2d(dtype=wp.int32)
    c_cal: wp.array2d(dtype=wp.int32)
    c_kind: wp.array2d(dtype=wp.int32)
    c_lo: wp.array2d(dtype=wp.float64)
    c_hi: wp.array2d(dtype=wp.float64)
    c_mean: wp.array2d(dtype=wp.float64)
    str_words: wp.array2d(dtype=wp.uint32)
    str_nwords: wp.array2d(dtype=wp.int32)
    rel_on: wp.array2d(dtype=wp.int32)
    rel_start: wp.array2d(dtype=wp.float64)
    rel_exp: wp.array2d(dtype=wp.int32)
    rel_interval: wp.array2d(dtype=wp.float64)
    rel_count: wp.array2d(dtype=wp.int32)
    rel_lpr: wp.array2d(dtype=wp.int32)
    rel_prio: wp.array2d(dtype=wp.int32)
    rel_wafers: wp.array2d(dtype=wp.int32)
    rel_due_off: wp.array2d(dtype=wp.float64)
    rel_type: wp.array2d(dtype=wp.int32)
    rel_route: wp.array2d(dtype=wp.int32)
    rel_stream: wp.array2d(dtype=wp.int32)
    it_tool: wp.array2d(dtype=wp.int32)
    it_setup: wp.array2d(dtype=wp.int32)
    it_busy: wp.array2d(dtype=wp.float64)
    it_down: wp.array2d(dtype=wp.float64)
    il_route: wp.array2d(dtype=wp.int32)
    il_idx: wp.array2d(dtype=wp.int32)
    il_prio: wp.array2d(dtype=wp.int32)
    il_wafers: wp.array2d(dtype=wp.int32)
    il_release: wp.array2d(dtype=wp.float64)
    il_due: wp.array2d(dtype=wp.float64)
    il_type: wp.array2d(dtype=wp.int32)
    il_status: wp.array2d(dtype=wp.int32)
    il_tool: wp.array2d(dtype=wp.int32)
    il_until: wp.array2d(dtype=wp.float64)


# per-thread state: name -> (dtype, size key); the engine allocates size * n of each
STATE = {
    # one per thread
    "now": ("f8", 1), "seq": ("i4", 1), "hn": ("i4", 1), "err": ("i4", 1), "err_soft": ("i4", 1),
    "fab_n": ("i4", 1), "fab_area": ("f8", 1), "fab_last": ("f8", 1), "cqt_checks": ("i4", 1),
    "cqt_viol": ("i4", 1), "events": ("i8", 1), "nsamp": ("i4", 1), "next_sample": ("f8", 1),
    "lot_free": ("i4", 1), "job_free": ("i4", 1), "ncomp": ("i4", 1), "lots_used": ("i4", 1),
    "lots_peak": ("i4", 1), "heap_peak": ("i4", 1),
    # heap
    "ev_t": ("f8", "heap"), "ev_kind": ("i4", "heap"), "ev_seq": ("i4", "heap"),
    "ev_obj": ("i4", "heap"), "ev_aux": ("i4", "heap"),
    # random streams (4 words each)
    "rs": ("u8", "streams4"),
    # lots
    "l_route": ("i4", "lots"), "l_idx": ("i4", "lots"), "l_prio": ("i4", "lots"),
    "l_wafers": ("i4", "lots"), "l_release": ("f8", "lots"), "l_due": ("f8", "lots"),
    "l_arrived": ("f8", "lots"), "l_seq": ("i4", "lots"), "l_left": ("f8", "lots"),
    "l_cqt_to": ("i4", "lots"), "l_cqt_dl": ("f8", "lots"), "l_rwk": ("i8", "lots"),
    "l_qt": ("f8", "lots"), "l_pt": ("f8", "lots"), "l_tt": ("f8", "lots"),
    "l_nsteps": ("i4", "lots"), "l_type": ("i4", "lots"), "l_src": ("i4", "lots"),
    "l_num": ("i4", "lots"), "l_next": ("i4", "lots"), "l_prev": ("i4", "lots"),
    "l_jnext": ("i4", "lots"),
    # families
    "q_head": ("i4", "fams"), "q_tail": ("i4", "fams"), "f_nidle": ("i4", "fams"),
    "f_n": ("i4", "fams"), "f_area": ("f8", "fams"), "f_last": ("f8", "fams"),
    "fs_busy": ("f8", "fams"), "fs_setup": ("f8", "fams"), "fs_down": ("f8", "fams"),
    "fs_pm": ("f8", "fams"), "fs_started": ("i4", "fams"), "fs_qtime": ("f8", "fams"),
    "fs_dep": ("i4", "fams"), "fs_sojourn": ("f8", "fams"),
    # wafers waiting per route step (batch groups)
    "g_w": ("i4", "steps"),
    # tools
    "idle": ("i4", "tools"), "t_setup": ("i4", "tools"), "t_mr_left": ("i4", "tools"),
    "t_mr_setup": ("i4", "tools"), "t_ready": ("f8", "tools"), "t_inflight": ("i4", "tools"),
    "t_down": ("f8", "tools"), "t_inidle": ("i4", "tools"), "t_failcal": ("i4", "tools"),
    "t_jhead": ("i4", "tools"), "t_jtail": ("i4", "tools"),
    "w_left": ("f8", "pmw"),
    # jobs
    "j_tool": ("i4", "jobs"), "j_gen": ("i4", "jobs"), "j_step": ("i4", "jobs"),
    "j_start": ("f8", "jobs"), "j_end": ("f8", "jobs"), "j_lots": ("i4", "jobs"),
    "j_pms": ("i4", "jobs"), "j_next": ("i4", "jobs"), "j_prev": ("i4", "jobs"),
    # releases
    "rel_k": ("i4", "rels"), "rel_done": ("i4", "rels"),
    # statistics per lot type (completions after warm-up) and cycle-time histograms
    "lt_n": ("i4", "types"), "lt_sum": ("f8", "types"), "lt_sq": ("f8", "types"),
    "lt_ontime": ("i4", "types"), "hist": ("i4", "hist"),
    # fab WIP samples and per-lot records
    "samp": ("i4", "samples"),
    "rc_src": ("i4", "records"), "rc_num": ("i4", "records"), "rc_release": ("f8", "records"),
    "rc_due": ("f8", "records"), "rc_comp": ("f8", "records"), "rc_qt": ("f8", "records"),
    "rc_pt": ("f8", "records"), "rc_tt": ("f8", "records"), "rc_nsteps": ("i4", "records"),
    # optional event trace (time, kind, object) for agreement checks; size 1 when off
    "tr_t": ("f8", "trace"), "tr_k": ("i4", "trace"), "tr_o": ("i4", "trace"),
}  # fmt: skip

_WP = {"f8": wp.float64, "i4": wp.int32, "i8": wp.int64, "u8": wp.uint64}


def _state_struct():
    cls = type(
        "State", (), {"__annotations__": {k: wp.array(dtype=_WP[v[0]]) for k, v in STATE.items()}}
    )
    cls.__module__ = __name__
    cls.__qualname__ = "State"
    return wp.struct(cls)


State = _state_struct()


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
        return lo + (hi - lo) * next_u(s.rs, 4 * stream * n + tid, n)
    if kind == 0:
        return mean
    return -mean * wp.log(ONE - next_u(s.rs, 4 * stream * n + tid, n))


@wp.func
def window(m: Model, sc: int, a: wp.float64, b: wp.float64) -> wp.float64:
    """Length of [a, b] inside the measured window [warm-up end, end]."""
    lo = m.warm[sc, 0]
    if a > lo:
        lo = a
    hi = m.end[sc, 0]
    if b < hi:
        hi = b
    if hi > lo:
        return hi - lo
    return ZERO


@wp.func
def ev_less(s: State, a: int, b: int) -> bool:
    ta = s.ev_t[a]
    tb = s.ev_t[b]
    if ta != tb:
        return ta < tb
    ka = s.ev_kind[a]
    kb = s.ev_kind[b]
    if ka != kb:
        return ka < kb
    return s.ev_seq[a] < s.ev_seq[b]


@wp.func
def ev_swap(s: State, a: int, b: int):
    t = s.ev_t[a]
    s.ev_t[a] = s.ev_t[b]
    s.ev_t[b] = t
    k = s.ev_kind[a]
    s.ev_kind[a] = s.ev_kind[b]
    s.ev_kind[b] = k
    q = s.ev_seq[a]
    s.ev_seq[a] = s.ev_seq[b]
    s.ev_seq[b] = q
    o = s.ev_obj[a]
    s.ev_obj[a] = s.ev_obj[b]
    s.ev_obj[b] = o
    x = s.ev_aux[a]
    s.ev_aux[a] = s.ev_aux[b]
    s.ev_aux[b] = x


@wp.func
def next_seq(s: State, tid: int) -> int:
    q = s.seq[tid]
    s.seq[tid] = q + 1
    return q


@wp.func
def push(s: State, cap: Caps, n: int, tid: int, t: wp.float64, kind: int, obj: int, aux: int):
    """heappush((t, kind, next(seq), obj)) on the thread's binary heap."""
    h = s.hn[tid]
    if h >= cap.heap:
        s.err[tid] = ERR_HEAP
        return
    q = next_seq(s, tid)
    i = h * n + tid
    s.ev_t[i] = t
    s.ev_kind[i] = kind
    s.ev_seq[i] = q
    s.ev_obj[i] = obj
    s.ev_aux[i] = aux
    s.hn[tid] = h + 1
    if h + 1 > s.heap_peak[tid]:
        s.heap_peak[tid] = h + 1
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
    h = s.hn[tid] - 1
    s.hn[tid] = h
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
    s.fab_area[tid] = s.fab_area[tid] + wp.float64(s.fab_n[tid]) * (t - s.fab_last[tid])
    s.fab_last[tid] = t
    s.fab_n[tid] = s.fab_n[tid] + 1


@wp.func
def fam_area(s: State, f: int, t: wp.float64):
    s.f_area[f] = s.f_area[f] + wp.float64(s.f_n[f]) * (t - s.f_last[f])
    s.f_last[f] = t


@wp.func
def new_lot(s: State, cap: Caps, n: int, tid: int, route: int, type_: int, prio: int,
            wafers: int, release: wp.float64, due: wp.float64, src: int, num: int) -> int:  # fmt: skip
    lot = s.lot_free[tid]
    if lot < 0:
        s.err[tid] = ERR_LOTS
        return -1
    i = lot * n + tid
    s.lot_free[tid] = s.l_next[i]
    s.lots_used[tid] = s.lots_used[tid] + 1
    if s.lots_used[tid] > s.lots_peak[tid]:
        s.lots_peak[tid] = s.lots_used[tid]
    s.l_route[i] = route
    s.l_idx[i] = 0
    s.l_prio[i] = prio
    s.l_wafers[i] = wafers
    s.l_release[i] = release
    s.l_due[i] = due
    s.l_arrived[i] = release
    s.l_left[i] = release
    s.l_seq[i] = 0
    s.l_cqt_to[i] = -1
    s.l_cqt_dl[i] = ZERO
    s.l_rwk[i] = wp.int64(0)
    s.l_qt[i] = ZERO
    s.l_pt[i] = ZERO
    s.l_tt[i] = ZERO
    s.l_nsteps[i] = 0
    s.l_type[i] = type_
    s.l_src[i] = src
    s.l_num[i] = num
    s.l_next[i] = -1
    s.l_prev[i] = -1
    s.l_jnext[i] = -1
    return lot


@wp.func
def lot_step(m: Model, s: State, sc: int, i: int) -> int:
    """Global step index of the lot at state index i."""
    return m.r_start[sc, s.l_route[i]] + s.l_idx[i]


# ---------------------------------------------------------------------------------------------
# lots


@wp.func
def complete(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, lot: int, t: wp.float64):
    i = lot * n + tid
    s.fab_area[tid] = s.fab_area[tid] + wp.float64(s.fab_n[tid]) * (t - s.fab_last[tid])
    s.fab_last[tid] = t
    s.fab_n[tid] = s.fab_n[tid] - 1
    c = s.ncomp[tid]
    if cap.keep_records != 0:
        if c < cap.records:
            r = c * n + tid
            s.rc_src[r] = s.l_src[i]
            s.rc_num[r] = s.l_num[i]
            s.rc_release[r] = s.l_release[i]
            s.rc_due[r] = s.l_due[i]
            s.rc_comp[r] = t
            s.rc_qt[r] = s.l_qt[i]
            s.rc_pt[r] = s.l_pt[i]
            s.rc_tt[r] = s.l_tt[i]
            s.rc_nsteps[r] = s.l_nsteps[i]
        else:
            s.err_soft[tid] = s.err_soft[tid] | ERR_RECORDS
    s.ncomp[tid] = c + 1
    if t >= m.warm[sc, 0]:
        ty = s.l_type[i]
        k = ty * n + tid
        ct = (t - s.l_release[i]) / DAY
        s.lt_n[k] = s.lt_n[k] + 1
        s.lt_sum[k] = s.lt_sum[k] + ct
        s.lt_sq[k] = s.lt_sq[k] + ct * ct
        if t <= s.l_due[i]:
            s.lt_ontime[k] = s.lt_ontime[k] + 1
        b = int(wp.floor(ct / m.hist_w[sc, 0]))
        if b < 0:
            b = 0
        if b >= cap.hist_bins:
            b = cap.hist_bins - 1
        h = (ty * cap.hist_bins + b) * n + tid
        s.hist[h] = s.hist[h] + 1
    # free the slot
    s.l_next[i] = s.lot_free[tid]
    s.lot_free[tid] = lot
    s.lots_used[tid] = s.lots_used[tid] - 1


@wp.func
def next_step(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, lot: int,
              t: wp.float64, transport: int):  # fmt: skip
    """Move past sampled-out steps; complete the lot or send it on (with transport)."""
    li = lot * n + tid
    r = s.l_route[li]
    r0 = m.r_start[sc, r]
    nr = m.r_len[sc, r]
    i = s.l_idx[li] + 1
    while i < nr:
        p = m.s_sample_p[sc, r0 + i]
        if p >= ONE:
            break
        if next_u(s.rs, tid, n) < p:  # stream 0: routing
            break
        i += 1
    if i >= nr:
        complete(m, s, cap, sc, n, tid, lot, t)
        return
    s.l_idx[li] = i
    s.l_left[li] = t
    ta = t
    if transport != 0 and m.transport_on[sc, 0] != 0:
        k = m.tr_kind[sc, 0]
        lo = m.tr_lo[sc, 0]
        hi = m.tr_hi[sc, 0]
        if transport == 2 and k == 1:
            # the reference's inlined after-step path rounds (t + lo) first
            ta = t + lo + (hi - lo) * next_u(s.rs, 4 * n + tid, n)
        else:
            ta = t + draw(s, 1, n, tid, k, lo, hi, m.tr_mean[sc, 0])
    push(s, cap, n, tid, ta, ARRIVE, lot, 0)


@wp.func
def step_done(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, lot: int, t: wp.float64):
    """The lot finished its current step at t: CQT window, rework, next step."""
    li = lot * n + tid
    st = lot_step(m, s, sc, li)
    s.l_nsteps[li] = s.l_nsteps[li] + 1
    if m.s_cqt_to[sc, st] >= 0:
        s.l_cqt_to[li] = m.s_cqt_to[sc, st]
        s.l_cqt_dl[li] = t + m.s_cqt_limit[sc, st]
    rp = m.s_rwk_p[sc, st]
    if rp > ZERO and m.s_rwk_to[sc, st] >= 0:
        if next_u(s.rs, tid, n) < rp:
            bit = wp.int64(1) << wp.int64(m.s_rwk_bit[sc, st])
            if (s.l_rwk[li] & bit) == wp.int64(0):
                s.l_rwk[li] = s.l_rwk[li] | bit
                s.l_idx[li] = m.s_rwk_to[sc, st] - 1
    next_step(m, s, cap, sc, n, tid, lot, t, 1)


@wp.func
def release(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, r: int, t: wp.float64):
    k = s.rel_k[r * n + tid]
    lpr = m.rel_lpr[sc, r]
    for j in range(lpr):
        num = k * lpr + j + 1
        lot = new_lot(s, cap, n, tid, m.rel_route[sc, r], m.rel_type[sc, r], m.rel_prio[sc, r],
                      m.rel_wafers[sc, r], t, t + m.rel_due_off[sc, r], -(r + 1), num)  # fmt: skip
        if lot < 0:
            return
        if t >= m.warm[sc, 0]:
            s.rel_done[r * n + tid] = s.rel_done[r * n + tid] + 1
        enter_fab(s, tid, t)
        s.l_idx[lot * n + tid] = -1
        next_step(m, s, cap, sc, n, tid, lot, t, 0)
    k += 1
    s.rel_k[r * n + tid] = k
    if k < m.rel_count[sc, r]:
        dt = m.rel_interval[sc, r]
        if m.rel_exp[sc, r] != 0:
            dt = -dt * wp.log(ONE - next_u(s.rs, 4 * m.rel_stream[sc, r] * n + tid, n))
        push(s, cap, n, tid, t + dt, RELEASE_EV, r, 0)


# ---------------------------------------------------------------------------------------------
# queues


@wp.func
def q_append(m: Model, s: State, sc: int, n: int, tid: int, f: int, lot: int):
    fi = f * n + tid
    li = lot * n + tid
    tail = s.q_tail[fi]
    s.l_prev[li] = tail
    s.l_next[li] = -1
    if tail >= 0:
        s.l_next[tail * n + tid] = lot
    else:
        s.q_head[fi] = lot
    s.q_tail[fi] = lot
    if m.f_batching[sc, f] != 0:
        g = lot_step(m, s, sc, li) * n + tid
        s.g_w[g] = s.g_w[g] + s.l_wafers[li]


@wp.func
def q_remove(m: Model, s: State, sc: int, n: int, tid: int, f: int, lot: int):
    fi = f * n + tid
    li = lot * n + tid
    p = s.l_prev[li]
    x = s.l_next[li]
    if p >= 0:
        s.l_next[p * n + tid] = x
    else:
        s.q_head[fi] = x
    if x >= 0:
        s.l_prev[x * n + tid] = p
    else:
        s.q_tail[fi] = p
    s.l_next[li] = -1
    s.l_prev[li] = -1
    if m.f_batching[sc, f] != 0:
        g = lot_step(m, s, sc, li) * n + tid
        s.g_w[g] = s.g_w[g] - s.l_wafers[li]


@wp.func
def setup_time(m: Model, sc: int, cur: int, st: int) -> wp.float64:
    """Seconds to change from setup ``cur`` to the step's setup (model.setup_time)."""
    new = m.s_setup[sc, st]
    if new < 0 or new == cur:
        return ZERO
    ns = m.n_setups[sc, 0]
    v = m.su_mat[sc, (cur + 1) * ns + new]
    if wp.isnan(v):
        v = m.su_mat[sc, new]
    if wp.isnan(v):
        v = m.s_setup_time[sc, st]
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
        s.idle[(base + k) * n + tid] = s.idle[(base + k + 1) * n + tid]


@wp.func
def start(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int, head: int,
          nlots: int, wafers: int, st: int, t: wp.float64):  # fmt: skip
    """Track the lots in: setup, load, process, unload; schedule the end (and readiness)."""
    ti = tool * n + tid
    f = m.t_fam[sc, tool]
    setup = setup_time(m, sc, s.t_setup[ti], st)
    ss = m.s_setup[sc, st]
    if ss >= 0:
        if setup > ZERO and m.su_minrun[sc, ss] >= 0:
            s.t_mr_left[ti] = m.su_minrun[sc, ss]
            s.t_mr_setup[ti] = ss
        s.t_setup[ti] = ss
    if s.t_mr_left[ti] > 0:
        s.t_mr_left[ti] = s.t_mr_left[ti] - nlots
    base = draw(s, 2 + f, n, tid, m.s_kind[sc, st], m.s_lo[sc, st], m.s_hi[sc, st],
                m.s_mean[sc, st])  # fmt: skip
    per = m.s_per[sc, st]
    has_casc = wp.int32(0)
    casc = wp.float64(0.0)
    proc = base
    if per == 2:
        if m.s_has_bint[sc, st] != 0:
            has_casc = 1
            casc = m.s_bint[sc, st]
    elif per == 1:
        if m.s_has_pint[sc, st] != 0:
            pint = m.s_pint[sc, st]
            proc = base + pint * wp.float64(wafers - 1)
            has_casc = 1
            casc = pint * wp.float64(wafers)
        else:
            proc = base * wp.float64(wafers)
    else:
        if m.s_has_bint[sc, st] != 0:
            has_casc = 1
            casc = m.s_bint[sc, st]
    run = m.f_load[sc, f] + proc + m.f_unload[sc, f]
    begin = t + setup
    end = begin + run
    busy_end = end
    if has_casc != 0:
        busy_end = begin + casc
    s.t_ready[ti] = busy_end
    # the job
    job = s.job_free[tid]
    if job < 0:
        s.err[tid] = ERR_JOBS
        return
    ji = job * n + tid
    s.job_free[tid] = s.j_next[ji]
    s.j_tool[ji] = tool
    s.j_gen[ji] = s.j_gen[ji] + 1
    s.j_step[ji] = st
    s.j_start[ji] = t
    s.j_end[ji] = end
    s.j_lots[ji] = head
    s.j_pms[ji] = 0
    tail = s.t_jtail[ti]
    s.j_prev[ji] = tail
    s.j_next[ji] = -1
    if tail >= 0:
        s.j_next[tail * n + tid] = job
    else:
        s.t_jhead[ti] = job
    s.t_jtail[ti] = job
    s.t_inflight[ti] = s.t_inflight[ti] + 1
    push(s, cap, n, tid, end, JOB_END, job, s.j_gen[ji])
    if has_casc != 0:
        push(s, cap, n, tid, s.t_ready[ti], READY, tool, 0)
    fi = f * n + tid
    warm = m.warm[sc, 0]
    if busy_end > warm:
        if t >= warm and busy_end <= m.end[sc, 0]:
            s.fs_busy[fi] = s.fs_busy[fi] + (busy_end - begin)
            s.fs_setup[fi] = s.fs_setup[fi] + setup
        else:
            s.fs_busy[fi] = s.fs_busy[fi] + window(m, sc, begin, busy_end)
            s.fs_setup[fi] = s.fs_setup[fi] + window(m, sc, t, begin)
    w0 = m.t_pmw0[sc, tool]
    for k in range(m.t_npmw[sc, tool]):
        wi = (w0 + k) * n + tid
        left = s.w_left[wi] - wp.float64(wafers)
        if left <= ZERO:
            left = left + m.w_interval[sc, w0 + k]
            s.j_pms[ji] = s.j_pms[ji] | (1 << k)
        s.w_left[wi] = left
    measured = t >= warm
    lot = head
    while lot >= 0:
        li = lot * n + tid
        q = t - s.l_arrived[li]
        s.l_qt[li] = s.l_qt[li] + q
        if measured:
            s.fs_started[fi] = s.fs_started[fi] + 1
            s.fs_qtime[fi] = s.fs_qtime[fi] + q
        ct = s.l_cqt_to[li]
        if ct >= 0 and ct == s.l_idx[li]:
            if measured:
                s.cqt_checks[tid] = s.cqt_checks[tid] + 1
                if t > s.l_cqt_dl[li]:
                    s.cqt_viol[tid] = s.cqt_viol[tid] + 1
            s.l_cqt_to[li] = -1
        lot = s.l_jnext[li]


@wp.func
def dispatch_batch(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int,
                   f: int, t: wp.float64) -> bool:  # fmt: skip
    """Batch families: the best group of the same route step with enough wafers."""
    best = wp.int32(-1)
    bp = wp.int32(0)
    ba = wp.float64(0.0)
    bq = wp.int32(0)
    lot = s.q_head[f * n + tid]
    while lot >= 0:
        li = lot * n + tid
        st = lot_step(m, s, sc, li)
        ok = wp.int32(1)
        if m.s_per[sc, st] == 2:
            if s.g_w[st * n + tid] < m.s_bmin[sc, st]:
                ok = wp.int32(0)
        if ok != 0:
            p = -s.l_prio[li]
            a = s.l_arrived[li]
            q = s.l_seq[li]
            if best < 0 or key_less(p, a, ZERO, ZERO, q, bp, ba, ZERO, ZERO, bq):
                best = lot
                bp = p
                ba = a
                bq = q
        lot = s.l_next[li]
    if best < 0:
        return False
    gst = lot_step(m, s, sc, best * n + tid)
    head = wp.int32(-1)
    tail = wp.int32(-1)
    nl = wp.int32(0)
    w = wp.int32(0)
    if m.s_per[sc, gst] != 2:
        q_remove(m, s, sc, n, tid, f, best)
        s.l_jnext[best * n + tid] = -1
        start(m, s, cap, sc, n, tid, tool, best, 1, s.l_wafers[best * n + tid], gst, t)
        return True
    bmax = m.s_bmax[sc, gst]
    while True:
        # next lot of the group in (-priority, arrived, seq) order
        pick = wp.int32(-1)
        lot = s.q_head[f * n + tid]
        while lot >= 0:
            li = lot * n + tid
            if lot_step(m, s, sc, li) == gst:
                p = -s.l_prio[li]
                a = s.l_arrived[li]
                q = s.l_seq[li]
                if pick < 0 or key_less(p, a, ZERO, ZERO, q, bp, ba, ZERO, ZERO, bq):
                    pick = lot
                    bp = p
                    ba = a
                    bq = q
            lot = s.l_next[li]
        if pick < 0:
            break
        pw = s.l_wafers[pick * n + tid]
        if w + pw > bmax and nl > 0:
            break
        q_remove(m, s, sc, n, tid, f, pick)
        s.l_jnext[pick * n + tid] = -1
        if tail >= 0:
            s.l_jnext[tail * n + tid] = pick
        else:
            head = pick
        tail = pick
        nl += 1
        w += pw
    start(m, s, cap, sc, n, tid, tool, head, nl, w, gst, t)
    return True


@wp.func
def dispatch(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int,
             t: wp.float64) -> bool:  # fmt: skip
    """Start the best waiting lot (or batch) on the tool; False when nothing can start."""
    f = m.t_fam[sc, tool]
    if m.f_batching[sc, f] != 0:
        return dispatch_batch(m, s, cap, sc, n, tid, tool, f, t)
    lot = s.q_head[f * n + tid]
    if lot < 0:
        return False
    ti = tool * n + tid
    rule = m.f_rule[sc, f]
    cur = s.t_setup[ti]
    mr_left = s.t_mr_left[ti]
    mr_setup = s.t_mr_setup[ti]
    best = wp.int32(-1)
    b0 = wp.int32(0)
    b1 = wp.float64(0.0)
    b2 = wp.float64(0.0)
    b3 = wp.float64(0.0)
    b4 = wp.int32(0)
    while lot >= 0:
        li = lot * n + tid
        st = lot_step(m, s, sc, li)
        k0 = wp.int32(0)
        if mr_left > 0 and m.s_setup[sc, st] != mr_setup:
            k0 = 1
        prio = -wp.float64(s.l_prio[li])
        arr = s.l_arrived[li]
        k1 = prio
        k2 = wp.float64(0.0)
        k3 = arr
        if rule == 0:  # hot_first
            k2 = setup_time(m, sc, cur, st)
        elif rule == 1:  # least_setup
            k1 = setup_time(m, sc, cur, st)
            k2 = prio
        elif rule == 2:  # fifo
            k1 = arr
            k3 = wp.float64(0.0)
        else:  # critical ratio
            rpt = m.s_rpt[sc, st]
            cr = wp.float64(0.0)
            if rpt > ZERO:
                cr = (s.l_due[li] - t) / rpt
            k2 = cr
        k4 = s.l_seq[li]
        if best < 0 or key_less(k0, k1, k2, k3, k4, b0, b1, b2, b3, b4):
            best = lot
            b0 = k0
            b1 = k1
            b2 = k2
            b3 = k3
            b4 = k4
        lot = s.l_next[li]
    q_remove(m, s, sc, n, tid, f, best)
    bi = best * n + tid
    s.l_jnext[bi] = -1
    start(m, s, cap, sc, n, tid, tool, best, 1, s.l_wafers[bi], lot_step(m, s, sc, bi), t)
    return True


@wp.func
def idle_push(m: Model, s: State, sc: int, n: int, tid: int, tool: int):
    f = m.t_fam[sc, tool]
    fi = f * n + tid
    k = s.f_nidle[fi]
    s.idle[(m.f_tool0[sc, f] + k) * n + tid] = tool
    s.f_nidle[fi] = k + 1
    s.t_inidle[tool * n + tid] = 1


@wp.func
def check(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int, t: wp.float64):
    """Make the tool work if it is available, else leave it; idle if nothing to do."""
    ti = tool * n + tid
    if s.t_inidle[ti] != 0 or s.t_down[ti] > t or s.t_ready[ti] > t:
        return
    if s.t_inflight[ti] >= m.f_cap[sc, m.t_fam[sc, tool]]:
        return
    if not dispatch(m, s, cap, sc, n, tid, tool, t):
        idle_push(m, s, sc, n, tid, tool)


@wp.func
def wake(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, f: int, st: int,
         t: wp.float64):  # fmt: skip
    """Give the new work to an idle tool (least setup first where the family says so)."""
    fi = f * n + tid
    cnt = s.f_nidle[fi]
    base = m.f_tool0[sc, f]
    pos = cnt - 1
    if m.f_wake_least[sc, f] != 0 and m.f_setups[sc, f] != 0 and cnt > 1:
        pos = wp.int32(0)
        bv = setup_time(m, sc, s.t_setup[s.idle[base * n + tid] * n + tid], st)
        for k in range(1, cnt):
            v = setup_time(m, sc, s.t_setup[s.idle[(base + k) * n + tid] * n + tid], st)
            if v < bv:
                bv = v
                pos = k
    tool = s.idle[(base + pos) * n + tid]
    idle_remove(s, n, tid, base, cnt, pos)
    s.f_nidle[fi] = cnt - 1
    s.t_inidle[tool * n + tid] = 0
    if not dispatch(m, s, cap, sc, n, tid, tool, t):
        idle_push(m, s, sc, n, tid, tool)


@wp.func
def arrive(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, lot: int, t: wp.float64):
    """The lot reaches the queue of its current step."""
    li = lot * n + tid
    last_tt = t - s.l_left[li]
    s.l_tt[li] = s.l_tt[li] + last_tt
    st = lot_step(m, s, sc, li)
    f = m.s_fam[sc, st]
    if m.s_delay[sc, st] != 0:
        d = draw(s, 2 + f, n, tid, m.s_kind[sc, st], m.s_lo[sc, st], m.s_hi[sc, st],
                 m.s_mean[sc, st])  # fmt: skip
        s.l_arrived[li] = t
        push(s, cap, n, tid, t + d, DELAY_END, lot, 0)
        return
    fi = f * n + tid
    fam_area(s, fi, t)
    s.f_n[fi] = s.f_n[fi] + 1
    s.l_arrived[li] = t
    s.l_seq[li] = next_seq(s, tid)
    q_append(m, s, sc, n, tid, f, lot)
    if s.f_nidle[fi] > 0:
        wake(m, s, cap, sc, n, tid, f, st, t)


@wp.func
def down(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int, t: wp.float64,
         duration: wp.float64, pm: int):  # fmt: skip
    """Take the tool down for ``duration`` s (after any down in progress); work waits."""
    ti = tool * n + tid
    f = m.t_fam[sc, tool]
    fi = f * n + tid
    st = t
    if s.t_down[ti] > st:
        st = s.t_down[ti]
    du = st + duration
    s.t_down[ti] = du
    if s.t_inidle[ti] != 0:
        base = m.f_tool0[sc, f]
        cnt = s.f_nidle[fi]
        for k in range(cnt):
            if s.idle[(base + k) * n + tid] == tool:
                idle_remove(s, n, tid, base, cnt, k)
                s.f_nidle[fi] = cnt - 1
                break
        s.t_inidle[ti] = 0
    job = s.t_jhead[ti]
    while job >= 0:
        ji = job * n + tid
        s.j_end[ji] = s.j_end[ji] + duration
        push(s, cap, n, tid, s.j_end[ji], JOB_END, job, s.j_gen[ji])
        job = s.j_next[ji]
    if s.t_ready[ti] > t:
        s.t_ready[ti] = s.t_ready[ti] + duration
        push(s, cap, n, tid, s.t_ready[ti], READY, tool, 0)
    if pm != 0:
        s.fs_pm[fi] = s.fs_pm[fi] + window(m, sc, st, du)
    else:
        s.fs_down[fi] = s.fs_down[fi] + window(m, sc, st, du)
    push(s, cap, n, tid, du, DOWN_END, tool, 0)


@wp.func
def job_end(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, job: int, t: wp.float64):
    ji = job * n + tid
    tool = s.j_tool[ji]
    ti = tool * n + tid
    f = m.t_fam[sc, tool]
    fi = f * n + tid
    # unlink from the tool's jobs
    p = s.j_prev[ji]
    x = s.j_next[ji]
    if p >= 0:
        s.j_next[p * n + tid] = x
    else:
        s.t_jhead[ti] = x
    if x >= 0:
        s.j_prev[x * n + tid] = p
    else:
        s.t_jtail[ti] = p
    s.t_inflight[ti] = s.t_inflight[ti] - 1
    s.j_tool[ji] = -1
    nl = wp.int32(0)
    lot = s.j_lots[ji]
    while lot >= 0:
        nl += 1
        lot = s.l_jnext[lot * n + tid]
    fam_area(s, fi, t)
    s.f_n[fi] = s.f_n[fi] - nl
    measured = t >= m.warm[sc, 0]
    jstart = s.j_start[ji]
    jst = s.j_step[ji]
    # the reference inlines the common after-step path (no rework, no CQT window)
    plain = m.s_rwk_p[sc, jst] == ZERO and m.s_cqt_to[sc, jst] < 0
    lot = s.j_lots[ji]
    while lot >= 0:
        li = lot * n + tid
        nxt = s.l_jnext[li]
        s.l_pt[li] = s.l_pt[li] + (t - jstart)
        if measured:
            s.fs_dep[fi] = s.fs_dep[fi] + 1
            s.fs_sojourn[fi] = s.fs_sojourn[fi] + (t - s.l_arrived[li])
        if plain:
            s.l_nsteps[li] = s.l_nsteps[li] + 1
            next_step(m, s, cap, sc, n, tid, lot, t, 2)
        else:
            step_done(m, s, cap, sc, n, tid, lot, t)
        lot = nxt
    pms = s.j_pms[ji]
    # the job slot is free again (its generation tells stale events apart)
    s.j_next[ji] = s.job_free[tid]
    s.job_free[tid] = job
    if pms != 0:
        w0 = m.t_pmw0[sc, tool]
        ps = m.t_stream[sc, tool] + 1
        for k in range(m.t_npmw[sc, tool]):
            if (pms & (1 << k)) != 0:
                w = w0 + k
                d = draw(s, ps, n, tid, m.w_kind[sc, w], m.w_lo[sc, w], m.w_hi[sc, w],
                         m.w_mean[sc, w])  # fmt: skip
                down(m, s, cap, sc, n, tid, tool, t, d, 1)
    check(m, s, cap, sc, n, tid, tool, t)


@wp.func
def fail(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, tool: int, t: wp.float64):
    c = s.t_failcal[tool * n + tid]
    ts = m.t_stream[sc, tool]
    d = draw(s, ts, n, tid, m.d_rkind[sc, c], m.d_rlo[sc, c], m.d_rhi[sc, c], m.d_rmean[sc, c])
    down(m, s, cap, sc, n, tid, tool, t, d, 0)
    g = draw(s, ts, n, tid, m.d_fkind[sc, c], m.d_flo[sc, c], m.d_fhi[sc, c], m.d_fmean[sc, c])
    push(s, cap, n, tid, s.t_down[tool * n + tid] + g, FAIL, tool, 0)


@wp.func
def warmup(m: Model, s: State, sc: int, n: int, tid: int, t: wp.float64):
    """Start of the measured window: reset the time integrals for Little's law."""
    for f in range(m.n_fam[sc, 0]):
        fi = f * n + tid
        fam_area(s, fi, t)
        s.f_area[fi] = ZERO
    s.fab_area[tid] = ZERO
    s.fab_last[tid] = t


# ---------------------------------------------------------------------------------------------
# set-up of a replication


@wp.func
def init(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, seed: wp.int64, rep: int):
    t0 = m.t0[sc, 0]
    s.now[tid] = t0
    s.fab_last[tid] = t0
    s.next_sample[tid] = t0
    for k in range(m.n_streams[sc, 0]):
        seed_stream(seed, rep, m.str_words, m.str_nwords, sc, k, MAXW, s.rs, 4 * k * n + tid, n)
    # free lists
    for k in range(cap.lots):
        s.l_next[k * n + tid] = k + 1
    s.l_next[(cap.lots - 1) * n + tid] = -1
    s.lot_free[tid] = 0
    for k in range(cap.jobs):
        s.j_next[k * n + tid] = k + 1
        s.j_tool[k * n + tid] = -1
    s.j_next[(cap.jobs - 1) * n + tid] = -1
    s.job_free[tid] = 0
    for f in range(m.n_fam[sc, 0]):
        s.q_head[f * n + tid] = -1
        s.q_tail[f * n + tid] = -1
        s.f_last[f * n + tid] = t0
    for k in range(m.n_tools[sc, 0]):
        ti = k * n + tid
        s.t_setup[ti] = -1
        s.t_mr_setup[ti] = -1
        s.t_failcal[ti] = -1
        s.t_jhead[ti] = -1
        s.t_jtail[ti] = -1
        w0 = m.t_pmw0[sc, k]
        for j in range(m.t_npmw[sc, k]):
            s.w_left[(w0 + j) * n + tid] = m.w_first[sc, w0 + j]
    # calendars, in the reference's order
    for c in range(m.n_cal_ops[sc, 0]):
        tool = m.c_tool[sc, c]
        ts = m.t_stream[sc, tool]
        if m.c_type[sc, c] == 0:
            s.t_failcal[tool * n + tid] = m.c_cal[sc, c]
            d = draw(s, ts, n, tid, m.c_kind[sc, c], m.c_lo[sc, c], m.c_hi[sc, c],
                     m.c_mean[sc, c])  # fmt: skip
            push(s, cap, n, tid, t0 + d, FAIL, tool, 0)
        else:
            p = m.c_cal[sc, c]
            t = draw(s, ts + 1, n, tid, m.c_kind[sc, c], m.c_lo[sc, c], m.c_hi[sc, c],
                     m.c_mean[sc, c])  # fmt: skip
            if t < t0:
                iv = m.p_interval[sc, p]
                t = t + iv * (ONE + wp.floor((t0 - t) / iv))
            push(s, cap, n, tid, t, PM_TIME, tool, p)
    # start-state tools
    for k in range(m.n_init_tools[sc, 0]):
        tool = m.it_tool[sc, k]
        ti = tool * n + tid
        s.t_setup[ti] = m.it_setup[sc, k]
        if m.it_busy[sc, k] > t0:
            s.t_ready[ti] = m.it_busy[sc, k]
            push(s, cap, n, tid, m.it_busy[sc, k], READY, tool, 0)
        if m.it_down[sc, k] > t0:
            s.t_down[ti] = m.it_down[sc, k]
            push(s, cap, n, tid, m.it_down[sc, k], DOWN_END, tool, 0)
    # initial lots (the model's WIP or the start state's lots)
    for k in range(m.n_init_lots[sc, 0]):
        lot = new_lot(s, cap, n, tid, m.il_route[sc, k], m.il_type[sc, k], m.il_prio[sc, k],
                      m.il_wafers[sc, k], m.il_release[sc, k], m.il_due[sc, k], k, 0)  # fmt: skip
        if lot < 0:
            return
        li = lot * n + tid
        s.l_idx[li] = m.il_idx[sc, k]
        s.l_left[li] = t0
        status = m.il_status[sc, k]
        enter_fab(s, tid, t0)
        if status == 0:
            push(s, cap, n, tid, t0, ARRIVE, lot, 0)
        elif status == 1:
            push(s, cap, n, tid, wp.max(m.il_until[sc, k], t0), ARRIVE, lot, 0)
        else:
            tool = m.il_tool[sc, k]
            ti = tool * n + tid
            s.l_arrived[li] = t0
            e = wp.max(m.il_until[sc, k], t0) + wp.max(ZERO, s.t_down[ti] - t0)
            job = s.job_free[tid]
            if job < 0:
                s.err[tid] = ERR_JOBS
                return
            ji = job * n + tid
            s.job_free[tid] = s.j_next[ji]
            s.j_tool[ji] = tool
            s.j_gen[ji] = s.j_gen[ji] + 1
            s.j_step[ji] = lot_step(m, s, sc, li)
            s.j_start[ji] = t0
            s.j_end[ji] = e
            s.j_lots[ji] = lot
            s.j_pms[ji] = 0
            tail = s.t_jtail[ti]
            s.j_prev[ji] = tail
            s.j_next[ji] = -1
            if tail >= 0:
                s.j_next[tail * n + tid] = job
            else:
                s.t_jhead[ti] = job
            s.t_jtail[ti] = job
            s.t_inflight[ti] = s.t_inflight[ti] + 1
            s.t_ready[ti] = wp.max(s.t_ready[ti], e)
            f = m.t_fam[sc, tool]
            s.f_n[f * n + tid] = s.f_n[f * n + tid] + 1
            push(s, cap, n, tid, e, JOB_END, job, s.j_gen[ji])
    # releases
    for r in range(m.n_rel[sc, 0]):
        if m.rel_on[sc, r] == 0:
            continue
        t = m.rel_start[sc, r]
        k = wp.int32(0)
        iv = m.rel_interval[sc, r]
        if t < t0 and m.rel_exp[sc, r] == 0 and iv > ZERO:
            k = int(-wp.floor(-(t0 - t) / iv))
            t = t + wp.float64(k) * iv
        elif t < t0:
            t = t0 - iv * wp.log(ONE - next_u(s.rs, 4 * m.rel_stream[sc, r] * n + tid, n))
        s.rel_k[r * n + tid] = k
        if k < m.rel_count[sc, r]:
            push(s, cap, n, tid, t, RELEASE_EV, r, 0)
    push(s, cap, n, tid, m.warm[sc, 0], WARMUP, 0, 0)
    for k in range(m.n_tools[sc, 0]):
        ti = k * n + tid
        if s.t_ready[ti] <= t0:
            s.t_ready[ti] = t0
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
    end = m.end[sc, 0]
    dt = m.sample_dt[sc, 0]
    while s.hn[tid] > 0 and s.err[tid] == 0:
        t = s.ev_t[tid]
        if t > end:
            break
        kind = s.ev_kind[tid]
        obj = s.ev_obj[tid]
        aux = s.ev_aux[tid]
        pop(s, n, tid)
        ne = s.events[tid]
        if ne < wp.int64(cap.trace):
            e = int(ne) * n + tid
            s.tr_t[e] = t
            s.tr_k[e] = kind
            s.tr_o[e] = obj
        s.events[tid] = ne + wp.int64(1)
        while t >= s.next_sample[tid]:
            k = s.nsamp[tid]
            if k < cap.samples:
                s.samp[k * n + tid] = s.fab_n[tid]
            else:
                s.err_soft[tid] = s.err_soft[tid] | ERR_SAMPLES
            s.nsamp[tid] = k + 1
            s.next_sample[tid] = s.next_sample[tid] + dt
        s.now[tid] = t
        if kind == ARRIVE:
            arrive(m, s, cap, sc, n, tid, obj, t)
        elif kind == JOB_END:
            ji = obj * n + tid
            if s.j_tool[ji] >= 0 and s.j_gen[ji] == aux and s.j_end[ji] == t:
                job_end(m, s, cap, sc, n, tid, obj, t)
        elif kind == READY:
            if s.t_ready[obj * n + tid] == t:
                check(m, s, cap, sc, n, tid, obj, t)
        elif kind == DELAY_END:
            li = obj * n + tid
            s.l_pt[li] = s.l_pt[li] + (t - s.l_arrived[li])
            step_done(m, s, cap, sc, n, tid, obj, t)
        elif kind == DOWN_END:
            if s.t_down[obj * n + tid] == t:
                check(m, s, cap, sc, n, tid, obj, t)
        elif kind == FAIL:
            fail(m, s, cap, sc, n, tid, obj, t)
        elif kind == PM_TIME:
            d = draw(s, m.t_stream[sc, obj] + 1, n, tid, m.p_kind[sc, aux], m.p_lo[sc, aux],
                     m.p_hi[sc, aux], m.p_mean[sc, aux])  # fmt: skip
            down(m, s, cap, sc, n, tid, obj, t, d, 1)
            push(s, cap, n, tid, t + m.p_interval[sc, aux], PM_TIME, obj, aux)
        elif kind == RELEASE_EV:
            release(m, s, cap, sc, n, tid, obj, t)
        else:
            warmup(m, s, sc, n, tid, t)
    # close the time integrals at the horizon
    for f in range(m.n_fam[sc, 0]):
        fi = f * n + tid
        s.f_area[fi] = s.f_area[fi] + wp.float64(s.f_n[fi]) * (end - s.f_last[fi])
    s.fab_area[tid] = s.fab_area[tid] + wp.float64(s.fab_n[tid]) * (end - s.fab_last[tid])
