"""Dispatching: which waiting lot (or batch) a tool starts, and which idle tool gets new work."""

import warp as wp

from twin.whatif.kernel.base import (
    MAX_RANKS,
    ONE,
    RANK_CR,
    RANK_FIFO,
    RANK_HP,
    RANK_SETUP,
    RANK_STARTED,
    ZERO,
    Caps,
    Model,
    State,
    vec6d,
)
from twin.whatif.kernel.lots import lot_step
from twin.whatif.kernel.options import configure
from twin.whatif.kernel.queues import q_remove, setup_time
from twin.whatif.kernel.tools import idle_push, idle_remove, start
from twin.whatif.reference import config

configure(__name__)

MINRUN_REFUSALS = wp.constant(config.MINRUN_REFUSALS)  # SimConfig.min_runs="hold"


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
            mr_left: int, mr_setup: int, t: wp.float64) -> vec6d:  # fmt: skip
    """The family's key of a lot for this tool, less the final sequence number: (minimum-run
    flag, one number per rank of f_ranks), zeros after the last rank (same order as the
    reference's tuples, twin.whatif.reference.dispatch.rank_key)."""
    li = lot * n + tid
    st = lot_step(m, s, sc, li)
    key = vec6d()
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
        elif r == RANK_STARTED:
            if s.i[s.o_l_started + li] == 0:
                v = ONE
        key[k + 1] = v
    return key


@wp.func
def key_before(a: vec6d, da: wp.float64, qa: int, b: vec6d, db: wp.float64, qb: int) -> bool:
    """(key, due, seq) < (key, due, seq); the dues are zero without SimConfig.due_ties."""
    for k in range(6):
        if a[k] != b[k]:
            return a[k] < b[k]
    if da != db:
        return da < db
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
    bk = vec6d()
    bq = wp.int32(0)
    bd = ZERO
    due_ties = m.I[m.o_due_ties + sc * m.sI + 0] != 0  # SimConfig.due_ties
    if m.I[m.o_f_scan + sc * m.sI + f] != 0:
        while lot >= 0:
            li = lot * n + tid
            only = s.i[s.o_l_only + li]
            if only < 0 or only == tool:
                k = lot_key(m, s, sc, n, tid, lot, f, cur, mr_left, mr_setup, t)
                q = s.i[s.o_l_seq + li]
                d = ZERO
                if due_ties:
                    d = s.f[s.o_l_due + li]
                if best < 0 or key_before(k, d, q, bk, bd, bq):
                    best = lot
                    bk = k
                    bq = q
                    bd = d
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
                    d = ZERO
                    if due_ties:
                        d = s.f[s.o_l_due + li]
                    if best < 0 or key_before(k, d, q, bk, bd, bq):
                        best = lot
                        bk = k
                        bq = q
                        bd = d
            lot = s.i[s.o_l_next + li]
    if best < 0:
        return False
    bi = best * n + tid
    if m.I[m.o_min_run_hold + sc * m.sI + 0] != 0 and mr_left > 0:
        # SimConfig.min_runs="hold": a tool that owes lots of its setup refuses another
        # setup's lot (and idles) up to MINRUN_REFUSALS times in a row
        if m.I[m.o_s_setup + sc * m.sI + lot_step(m, s, sc, bi)] != mr_setup:
            if s.i[s.o_t_refused + ti] < MINRUN_REFUSALS:
                s.i[s.o_t_refused + ti] = s.i[s.o_t_refused + ti] + 1
                return False
    q_remove(m, s, sc, n, tid, f, best)
    s.i[s.o_l_jnext + bi] = -1
    start(m, s, cap, sc, n, tid, tool, best, 1, s.i[s.o_l_wafers + bi], lot_step(m, s, sc, bi), t)
    return True


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
def wake_pick(m: Model, s: State, sc: int, n: int, tid: int, f: int, st: int, base: int,
              cnt: int) -> int:  # fmt: skip
    """The position of the idle tool (of the first ``cnt`` in the idle list) that gets new
    work: least setup first where the family says so, else the first tool of the family
    (SimConfig.wake="first") or the last in the list (the one idle most recently)."""
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
    return pos


@wp.func
def wake(m: Model, s: State, cap: Caps, sc: int, n: int, tid: int, f: int, st: int,
         t: wp.float64):  # fmt: skip
    """Give the new work to an idle tool (least setup first where the family says so). With
    SimConfig.min_runs="hold" every idle tool tries in that order until one starts work; one
    that found nothing goes to the end of the list, after those not tried yet."""
    fi = f * n + tid
    base = m.I[m.o_f_tool0 + sc * m.sI + f]
    hold = m.I[m.o_min_run_hold + sc * m.sI + 0] != 0
    untried = s.i[s.o_f_nidle + fi]
    while untried > 0:
        cnt = s.i[s.o_f_nidle + fi]
        pos = wake_pick(m, s, sc, n, tid, f, st, base, untried)
        tool = s.i[s.o_idle + (base + pos) * n + tid]
        idle_remove(s, n, tid, base, cnt, pos)
        s.i[s.o_f_nidle + fi] = cnt - 1
        s.i[s.o_t_inidle + tool * n + tid] = 0
        if dispatch(m, s, cap, sc, n, tid, tool, t):
            return
        idle_push(m, s, sc, n, tid, tool)
        if not hold:
            return
        untried -= 1
