"""What every part of the kernel shares: constants, the event kinds, the ``State``, ``Model``
and ``Caps`` structs (``layout.py``) and two small helpers (a random draw, the measured
window)."""

import warp as wp

from twin.whatif.kernel.layout import model_fields, state_fields
from twin.whatif.kernel.options import configure
from twin.whatif.kernel.rng import next_u
from twin.whatif.reference import entities

configure(__name__)


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
LOOK = wp.constant(entities.LOOK)  # a tool's first look for work (SimConfig.start_together)

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
RANK_STARTED = wp.constant(4)  # SimConfig.unstarted_last: the reference's "started" rank
MAX_RANKS = wp.constant(5)
vec6d = wp.types.vector(length=6, dtype=wp.float64)  # a lot's key: min-run flag, 5 ranks


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
