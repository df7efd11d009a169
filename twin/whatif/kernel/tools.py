"""Tools: dedications, job slots, starting a job (setup, load, process, unload), idle lists."""

import warp as wp

from twin.whatif.kernel.base import (
    DED_SLOTS,
    ERR_DEDIC,
    ERR_JOBS,
    JOB_END,
    READY,
    ZERO,
    Caps,
    Model,
    State,
    draw,
    window,
)
from twin.whatif.kernel.heap import push
from twin.whatif.kernel.lots import lot_step
from twin.whatif.kernel.options import configure
from twin.whatif.kernel.queues import setup_time

configure(__name__)


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
def new_job(s: State, n: int, tid: int, tool: int, st: int, t: wp.float64, end: wp.float64,
            lots: int) -> int:  # fmt: skip
    """A job slot for the lots chained from ``lots`` (by l_jnext) at step ``st``, from t to
    end, appended to the tool's running jobs; -1 (ERR_JOBS set) when the pool is full."""
    job = s.i[s.o_job_free + tid]
    if job < 0:
        s.i[s.o_err + tid] = ERR_JOBS
        return -1
    ti = tool * n + tid
    ji = job * n + tid
    s.i[s.o_job_free + tid] = s.i[s.o_j_next + ji]
    s.i[s.o_j_tool + ji] = tool
    s.i[s.o_j_gen + ji] = s.i[s.o_j_gen + ji] + 1
    s.i[s.o_j_step + ji] = st
    s.f[s.o_j_start + ji] = t
    s.f[s.o_j_end + ji] = end
    s.i[s.o_j_lots + ji] = lots
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
    return job


@wp.func
def busy_by(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, f: int, a: wp.float64,
            b: wp.float64):  # fmt: skip
    """Add [a, b] inside the measured window to family f's sample intervals (the
    reference's Engine._busy_by, the same arithmetic)."""
    lo = wp.max(a, m.F[m.o_warm + sc * m.sF + 0])
    hi = wp.min(b, m.F[m.o_end + sc * m.sF + 0])
    if hi > lo:
        t0 = m.F[m.o_t0 + sc * m.sF + 0]
        dt = m.F[m.o_sample_dt + sc * m.sF + 0]
        nb = m.I[m.o_busy_nb + sc * m.sI + 0]
        i = int(wp.floor((lo - t0) / dt))
        while i < nb:
            st = t0 + wp.float64(i) * dt
            e = st + dt
            ov = wp.min(hi, e) - wp.max(lo, st)
            if ov > ZERO:
                k = s.o_fs_bint + (f * cap.samples + i) * n + tid
                s.f[k] = s.f[k] + ov
            if e >= hi:
                i = nb
            else:
                i = i + 1


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
    if m.I[m.o_min_run_hold + sc * m.sI + 0] != 0:  # every run renews a minimum run's debt
        s.i[s.o_t_refused + ti] = 0
        if ss >= 0 and m.I[m.o_su_minrun + sc * m.sI + ss] >= 0:
            s.i[s.o_t_mr_left + ti] = m.I[m.o_su_minrun + sc * m.sI + ss]
            s.i[s.o_t_mr_setup + ti] = ss
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
    job = new_job(s, n, tid, tool, st, t, end, head)
    if job < 0:
        return
    ji = job * n + tid
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
        if m.I[m.o_busy_nb + sc * m.sI + 0] > 0:  # SimConfig.busy_by_interval
            busy_by(m, s, cap, sc, n, tid, f, begin, busy_end)
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
        s.i[s.o_l_started + li] = 1
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
