"""Memory layout shared by the Warp kernel and the Warp-free CUDA launcher (``aot.py``).

Warp passes structs by value: every field lives in a few typed pools instead, at an offset
kept in the struct (``s.f[s.o_now + tid]``), so that a call copies offsets, not 200 arrays.
The kernel reads field ``x`` of slot k of thread tid at ``pool[o_x + k * n + tid]``; the
engine picks the layout per device (``engine.default_layout``): interleaved on CUDA (one
launch, ``o_x = base_x * n``: the replication fastest-varying), blocked on the CPU (one launch
per thread, n = 1, ``o_x = j * total + base_x``: each replication's state contiguous). Model tables are per scenario:
``POOL[o_x + scenario * sPOOL + i]``. This module imports no Warp, so the layout can be built
where Warp is not installed.
"""

from __future__ import annotations

from twin.whatif.kernel.compile import TABLES

STATE_POOLS = {"f8": "f", "i4": "i", "i8": "l", "u8": "u"}
MODEL_POOLS = {"f8": "F", "i4": "I"}
MODEL_SEPARATE = ("str_words", "str_nwords")  # read by rng.seed_stream as 2-D arrays

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
    "l_jnext": ("i4", "lots"), "l_only": ("i4", "lots"), "l_nded": ("i4", "lots"),
    "l_started": ("i4", "lots"),  # has the lot started a step in this run (unstarted_last)
    "l_dk": ("i4", "lots4"), "l_dt": ("i4", "lots4"),  # dedications: step index -> tool
    "cls_head": ("i4", "classes"),  # scratch of dispatch: classes seen (stamped)
    "stamp": ("i4", 1), "fc": ("i4", "famcls"),  # waiting lots per family and setup class
    "f_ncls": ("i4", "fams"), "t_nded": ("i4", "tools"),  # non-empty classes; dedicated lots
    # families
    "q_head": ("i4", "fams"), "q_tail": ("i4", "fams"), "f_nidle": ("i4", "fams"),
    "f_n": ("i4", "fams"), "f_area": ("f8", "fams"), "f_last": ("f8", "fams"),
    "fs_busy": ("f8", "fams"), "fs_setup": ("f8", "fams"), "fs_down": ("f8", "fams"),
    "fs_pm": ("f8", "fams"), "fs_started": ("i4", "fams"), "fs_qtime": ("f8", "fams"),
    "fs_dep": ("i4", "fams"), "fs_sojourn": ("f8", "fams"),
    "fs_bint": ("f8", "famsamp"),  # busy per family and sample interval (busy_by_interval)
    # wafers waiting per route step (batch groups)
    "g_w": ("i4", "steps"),
    # tools
    "idle": ("i4", "tools"), "t_setup": ("i4", "tools"), "t_mr_left": ("i4", "tools"),
    "t_mr_setup": ("i4", "tools"), "t_ready": ("f8", "tools"), "t_inflight": ("i4", "tools"),
    "t_down": ("f8", "tools"), "t_inidle": ("i4", "tools"), "t_failcal": ("i4", "tools"),
    "t_jhead": ("i4", "tools"), "t_jtail": ("i4", "tools"),
    "t_refused": ("i4", "tools"),  # other setups refused in a row (SimConfig.min_runs="hold")
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

# Warp passes structs by value: every field lives in a few typed pools instead, at an offset
# kept in the struct (``s.f[s.o_now + tid]``), so that a call copies offsets, not 200 arrays.
STATE_POOLS = {"f8": "f", "i4": "i", "i8": "l", "u8": "u"}
MODEL_POOLS = {"f8": "F", "i4": "I"}
MODEL_SEPARATE = ("str_words", "str_nwords")  # read by rng.seed_stream as 2-D arrays


def state_fields() -> list[tuple[str, str, str]]:
    """The State struct's fields in order: (name, kind, dtype); kind pool or int."""
    out = [(p, "pool", dt) for dt, p in STATE_POOLS.items()]
    out += [(f"o_{k}", "int", "i4") for k in STATE]
    return out


def model_fields() -> list[tuple[str, str, str]]:
    """The Model struct's fields in order: (name, kind, dtype)."""
    out = [(p, "pool", dt) for dt, p in MODEL_POOLS.items()]
    out += [(f"s{p}", "int", "i4") for p in MODEL_POOLS.values()]
    out += [("str_words", "u4_2d", "u4"), ("str_nwords", "i4_2d", "i4")]
    out += [(f"o_{k}", "int", "i4") for k in TABLES if k not in MODEL_SEPARATE]
    return out
