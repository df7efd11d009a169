"""Set-up of a replication: streams, free lists, calendars, the start state, releases."""

import warp as wp

from twin.whatif.kernel.base import (
    ARRIVE,
    DOWN_END,
    FAIL,
    JOB_END,
    LOOK,
    MAXW,
    ONE,
    PM_TIME,
    READY,
    RELEASE_EV,
    WARMUP,
    ZERO,
    Caps,
    Model,
    State,
    draw,
)
from twin.whatif.kernel.heap import push
from twin.whatif.kernel.lots import enter_fab, lot_step, new_lot
from twin.whatif.kernel.options import configure
from twin.whatif.kernel.rng import next_u, seed_stream
from twin.whatif.kernel.tools import new_job

configure(__name__)


@wp.func
def draw_left(m: Model, s: State, sc: int, n: int, tid: int, d0: int, nd: int) -> wp.float64:
    """A time left drawn from the start's stream (reference.start.draw_left): with several
    components, one uniform picks the first whose cumulative share exceeds it (else the
    last), then the offset + that component's draw."""
    stream = m.I[m.o_start_stream + sc * m.sI + 0]
    k = d0 + nd - 1
    if nd > 1:
        u = next_u(s.u, s.o_rs + 4 * stream * n + tid, n)
        for j in range(nd):
            if k == d0 + nd - 1 and u < m.F[m.o_dl_cum + sc * m.sF + d0 + j]:
                k = d0 + j
    off = m.F[m.o_dl_off + sc * m.sF + k]
    return off + draw(s, stream, n, tid, m.I[m.o_dl_kind + sc * m.sI + k],
                      m.F[m.o_dl_lo + sc * m.sF + k], m.F[m.o_dl_hi + sc * m.sF + k],
                      m.F[m.o_dl_mean + sc * m.sF + k])  # fmt: skip


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
        s.i[s.o_t_refused + ti] = 0
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
        down = m.F[m.o_it_down + sc * m.sF + k]
        nd = m.I[m.o_it_dn + sc * m.sI + k]
        if nd > 0:  # ToolState.down_left
            down = t0 + draw_left(m, s, sc, n, tid, m.I[m.o_it_d0 + sc * m.sI + k], nd)
        if down > t0:
            s.f[s.o_t_down + ti] = down
            push(s, cap, n, tid, down, DOWN_END, tool, 0)
    # initial lots (the model's WIP or the start state's lots)
    left = ZERO  # the last processing lot's drawn time left (LotState.until_left)
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
        until = m.F[m.o_il_until + sc * m.sF + k]
        nd = m.I[m.o_il_dn + sc * m.sI + k]
        if nd > 0:  # LotState.until_left, unless it takes the lot before's draw
            if m.I[m.o_il_share + sc * m.sI + k] == 0:
                left = draw_left(m, s, sc, n, tid, m.I[m.o_il_d0 + sc * m.sI + k], nd)
            until = t0 + left
        if status == 0:
            push(s, cap, n, tid, t0, ARRIVE, lot, 0)
        elif status == 1:
            push(s, cap, n, tid, wp.max(until, t0), ARRIVE, lot, 0)
        else:
            tool = m.I[m.o_il_tool + sc * m.sI + k]
            ti = tool * n + tid
            s.f[s.o_l_arrived + li] = t0
            e = wp.max(until, t0) + wp.max(ZERO, s.f[s.o_t_down + ti] - t0)
            job = new_job(s, n, tid, tool, lot_step(m, s, sc, li), t0, e, lot)
            if job < 0:
                return
            ji = job * n + tid
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
    look = READY  # SimConfig.start_together: after every other event of the start instant
    if m.I[m.o_start_together + sc * m.sI + 0] != 0:
        look = LOOK
    for k in range(m.I[m.o_n_tools + sc * m.sI + 0]):
        ti = k * n + tid
        if s.f[s.o_t_ready + ti] <= t0:
            s.f[s.o_t_ready + ti] = t0
            push(s, cap, n, tid, t0, look, k, 0)
