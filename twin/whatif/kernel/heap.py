"""The thread's binary event heap: (time, kind, sequence) order, the sequence counter."""

import warp as wp

from twin.whatif.kernel.base import ERR_HEAP, Caps, State
from twin.whatif.kernel.options import configure

configure(__name__)


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
