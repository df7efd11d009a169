"""Lots: the pool, the fab's WIP integral, completion, moving on to the next step, releases."""

import warp as wp

from twin.whatif.kernel.base import (
    ARRIVE,
    DAY,
    ERR_LOTS,
    ERR_RECORDS,
    ONE,
    RELEASE_EV,
    ZERO,
    Caps,
    Model,
    State,
    draw,
)
from twin.whatif.kernel.heap import push
from twin.whatif.kernel.options import configure
from twin.whatif.kernel.rng import next_u

configure(__name__)


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
    s.i[s.o_l_started + i] = 0
    return lot


@wp.func
def lot_step(m: Model, s: State, sc: int, i: int) -> int:
    """Global step index of the lot at state index i."""
    return m.I[m.o_r_start + sc * m.sI + s.i[s.o_l_route + i]] + s.i[s.o_l_idx + i]


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
    if m.I[m.o_no_delay_tr + sc * m.sI + 0] != 0 and m.I[m.o_s_delay + sc * m.sI + r0 + i] != 0:
        transport = 0  # SimConfig.delay_transport=False: none into a delay step
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
    tr = wp.int32(1)
    if m.I[m.o_no_delay_tr + sc * m.sI + 0] != 0 and m.I[m.o_s_delay + sc * m.sI + st] != 0:
        tr = 0  # SimConfig.delay_transport=False: none out of a delay step
    next_step(m, s, cap, sc, n, tid, lot, t, tr)


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
