"""What the loop's events do to lots and tools: arrival, down, job end, failure, warm-up."""

import warp as wp

from twin.whatif.kernel.base import (
    DELAY_END,
    DOWN_END,
    FAIL,
    JOB_END,
    READY,
    ZERO,
    Caps,
    Model,
    State,
    draw,
    window,
)
from twin.whatif.kernel.dispatch import check, dispatch, wake
from twin.whatif.kernel.heap import next_seq, push
from twin.whatif.kernel.lots import fam_area, lot_step, next_step, step_done
from twin.whatif.kernel.options import configure
from twin.whatif.kernel.queues import q_append
from twin.whatif.kernel.tools import idle_push, idle_take, pop_dedication

configure(__name__)


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
