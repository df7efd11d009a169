"""A family's queue: a doubly linked list of lots in the reference's heap order, the
waiting-lot counts per setup class, setup times."""

import warp as wp

from twin.whatif.kernel.base import (
    MAX_RANKS,
    RANK_FIFO,
    RANK_HP,
    RANK_STARTED,
    ZERO,
    Model,
    State,
)
from twin.whatif.kernel.lots import lot_step
from twin.whatif.kernel.options import configure

configure(__name__)


@wp.func
def heap_before(m: Model, s: State, sc: int, n: int, tid: int, f: int, a: int, b: int) -> bool:
    """Order of the reference's per-setup heaps (CFamily.static): the family's ranks that
    depend on neither tool nor clock (hp, fifo, started) in its order, the due date with
    SimConfig.due_ties, then seq."""
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
        elif r == RANK_STARTED:  # a lot that has started a step goes first
            sa = s.i[s.o_l_started + ai]
            sb = s.i[s.o_l_started + bi]
            if sa != sb:
                return sa > sb
    if m.I[m.o_due_ties + sc * m.sI + 0] != 0:  # SimConfig.due_ties: earliest due first
        da = s.f[s.o_l_due + ai]
        db = s.f[s.o_l_due + bi]
        if da != db:
            return da < db
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
