"""The Warp kernel: one thread simulates one replication of one scenario, start to horizon.

It is the reference engine (:mod:`twin.whatif.reference.engine`) transcribed for the device:
the same event kinds and (time, kind, sequence) order, the same sequence counter (consumed by
every push and by every queue arrival), the same random streams (``rng.py``) drawn in the same
order, the same float64 expressions. Python objects become slots of fixed-capacity tables:

- state arrays are 1-D, ``a[o_a + slot * n + tid]``: on a GPU the replication is
  fastest-varying, so that neighbouring threads read neighbouring words (coalesced); on the
  CPU the engine launches each thread alone (n = 1) on its own contiguous block
  (``engine.default_layout``);
- lots, jobs and heap entries live in pools with free lists; a full pool sets the thread's
  error code (``ERR_*``) and stops the thread: never a silent truncation;
- a family's queue is a doubly linked list of lots in arrival order (the reference's list or
  heap: keys end with the unique sequence number, so the best lot is the same);
- a tool's running jobs are a linked list in start order (the reference's ``tool.jobs``).

Model tables are 2-D ``[scenario, index]`` (``compile.py``); thread ``tid`` runs scenario
``scen[tid]`` with replication ``reps[tid]``.

The kernel is split along its sections, one module each (``@wp.func``s call across modules;
Warp compiles them into this module's source), all compiled with the same options
(``options.py``): ``base`` (constants, event kinds, the ``State``/``Model``/``Caps`` structs),
``heap`` (the event heap), ``lots``, ``queues``, ``tools`` (job slots, starting a job, idle
lists), ``dispatch``, ``events`` (what each event does), ``init`` (set-up of a replication)
and this module, the loop.
"""

import warp as wp

from twin.whatif.kernel.base import (
    ARRIVE,
    DELAY_END,
    DOWN_END,
    ERR_DEDIC,
    ERR_HEAP,
    ERR_JOBS,
    ERR_LOTS,
    ERR_RECORDS,
    ERR_SAMPLES,
    FAIL,
    JOB_END,
    LOOK,
    PM_TIME,
    READY,
    RELEASE_EV,
    WARMUP,
    Caps,
    Model,
    State,
    draw,
)
from twin.whatif.kernel.dispatch import check
from twin.whatif.kernel.events import arrive, down, fail, job_end, warmup
from twin.whatif.kernel.heap import pop, push
from twin.whatif.kernel.init import init
from twin.whatif.kernel.lots import release, step_done
from twin.whatif.kernel.options import configure

configure(__name__)

# what the engine, the AOT loader and the tests read from this module
__all__ = [
    "ARRIVE", "DELAY_END", "DOWN_END", "ERR_DEDIC", "ERR_HEAP", "ERR_JOBS", "ERR_LOTS",
    "ERR_RECORDS", "ERR_SAMPLES", "FAIL", "JOB_END", "LOOK", "PM_TIME", "READY", "RELEASE_EV",
    "WARMUP", "Caps", "Model", "State", "simulate_kernel",
]  # fmt: skip


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
        elif kind == READY or kind == LOOK:
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
