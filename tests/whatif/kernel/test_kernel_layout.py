"""The kernel state's memory layout (issue 15): the blocked layout (each replication
contiguous, one launch per thread: the CPU's default) and the interleaved one (replication
fastest-varying: CUDA's) give the same results bit for bit; a bad layout name is refused;
on the CPU the kernel's functions take their struct arguments by reference."""

from __future__ import annotations

import numpy as np
import pytest
from models import mixed_batch_fab, toy_fab

from twin.errors import ConfigError, TwinError
from twin.whatif.kernel import simulate_batch
from twin.whatif.kernel.engine import LAYOUTS, default_layout
from twin.whatif.reference import SimConfig, simulate


def _same(a, b) -> None:
    """Every state field of two KernelRuns equal, floats compared by their bits."""
    assert a.out.keys() == b.out.keys()
    for name in a.out:
        x, y = a.out[name], b.out[name]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), name


def test_default_layout_per_device():
    """The CPU runs replications blocked, CUDA interleaved."""
    assert default_layout("cpu") == "blocked"
    assert default_layout("cuda:0") == "interleaved"
    assert default_layout("cuda") == "interleaved"
    assert set(LAYOUTS) == {"blocked", "interleaved"}


@pytest.mark.parametrize("records", [True, False])
def test_layouts_agree_bit_for_bit(device, records):
    """Two scenarios × 5 replications in one launch: every record, statistic and the event
    trace are identical in both layouts, and each equals the replication run alone."""
    model = toy_fab()
    cfg = SimConfig(days=4, seed=3)
    models = [model, mixed_batch_fab()]
    reps = [0, 1, 2, 7, 4]
    runs = {
        lay: simulate_batch(
            models, cfg, reps, device=device, records=records, trace=50, layout=lay
        )  # fmt: skip
        for lay in LAYOUTS
    }
    for s in range(len(models)):
        for i in range(len(reps)):
            a, b = runs["blocked"][s][i], runs["interleaved"][s][i]
            assert a.extra["layout"] == "blocked" and b.extra["layout"] == "interleaved"
            assert a.events > 0
            _same(a, b)
    # the replications differ from one another (the comparison is not of empty runs)
    one, two = runs["blocked"][0][0].out, runs["blocked"][0][1].out
    assert one["fab_area"].tobytes() != two["fab_area"].tobytes()
    if records:
        for i, r in enumerate(reps):
            ref = simulate(model, SimConfig(days=4, seed=3, replication=r))
            got = runs["blocked"][0][i].result()
            assert got.lots.completion == ref.lots.completion
            assert got.lots.fingerprint() == ref.lots.fingerprint()


def test_blocked_layout_grows_a_full_table():
    """A table too small in the blocked layout is grown and rerun as in the interleaved."""
    model = toy_fab()
    cfg = SimConfig(days=3, seed=1)
    cap = {"lots": 8, "heap": 8, "records": 2}
    a = simulate_batch([model], cfg, [0, 1, 2], device="cpu", capacity=cap, layout="blocked")
    b = simulate_batch([model], cfg, [0, 1, 2], device="cpu", layout="interleaved")
    for x, y in zip(a[0], b[0], strict=True):
        assert x.result().lots.completion == y.result().lots.completion
    assert a[0][0].result().lots.completion == simulate(model, cfg).lots.completion


@pytest.mark.parametrize(
    "bad", ["", "BLOCKED", "row", "\ud800", "x" * 10_000, 1, None.__class__, ["blocked"]]
)
def test_bad_layout_is_refused(bad):
    """A layout other than 'blocked' or 'interleaved' is a ConfigError naming the two."""
    with pytest.raises(ConfigError, match="interleaved, blocked") as e:
        simulate_batch([toy_fab()], SimConfig(days=1, seed=1), [0], device="cpu", layout=bad)
    assert isinstance(e.value, TwinError)
    assert len(str(e.value)) < 400


def test_blocked_state_is_contiguous_per_replication():
    """In the blocked layout a replication's whole state is one block of each pool: the
    second replication's lot table starts one pool-size after the first's."""
    from twin.whatif.kernel.compile import compile_model, stack
    from twin.whatif.kernel.engine import _alloc, _block, _wp, pool_slots

    wp = _wp()
    tables, sizes = stack([compile_model(toy_fab(), SimConfig(days=1))])
    sizes["n_pmw"] = max(1, tables["w_first"].shape[1])
    sizes["trace"] = 1
    st, pools = _alloc(wp, sizes, 3, True, "cpu")
    assert pools == pool_slots(sizes, True)
    offs, total = pools["i"]
    _block(st, pools, 0)
    first = st.o_l_route
    _block(st, pools, 2)
    assert st.o_l_route - first == 2 * total
    assert first == offs["l_route"]
    assert np.all(st.i.numpy() == 0)


def test_cpu_functions_take_structs_by_reference():
    """On the CPU the kernel's @wp.funcs take State/Model/Caps by reference (the by-value
    copies cost about a fifth of the CPU time); the CUDA source keeps Warp's by-value ones."""
    from twin.whatif.kernel import kernel as kmod
    from twin.whatif.kernel.base import Caps, Model, State
    from twin.whatif.kernel.engine import _wp
    from twin.whatif.kernel.options import STRUCT_REFS_FLAG, struct_refs

    wp = _wp()
    assert struct_refs() and struct_refs()  # installed once, idempotent
    module = wp.get_module(kmod.__name__)
    opts = module.resolve_options(wp.config)
    assert STRUCT_REFS_FLAG in opts["cpu_compiler_flags"]  # marks the module hash
    cpu = module._run_codegen(opts, True)[0]
    cuda = module._run_codegen(opts, False)[0]
    st, mo, ca = State.native_name, Model.native_name, Caps.native_name
    assert cpu.count(f"{st}& var_s") > 50 and cpu.count(f"{mo}& var_m") > 30
    assert cpu.count(f"{ca}& var_cap") > 20
    assert f"{st}& var_s" not in cuda and f"{mo}& var_m" not in cuda


def test_by_reference_rewrites_only_struct_parameters():
    """_by_reference turns a struct parameter into a reference and leaves scalars, other
    names and the function body alone."""
    from types import SimpleNamespace as NS

    from twin.whatif.kernel.options import _by_reference

    struct = NS(native_name="State_1")
    args = [
        NS(type=struct, ctype=lambda: "State_1", emit=lambda: "var_s"),
        NS(type=int, ctype=lambda: "wp::int32", emit=lambda: "var_n"),
        NS(type=struct, ctype=lambda: "State_1", emit=lambda: "var_z"),
    ]
    src = "void f(\n    State_1 var_s,\n    wp::int32 var_n,\n    State_1 var_z)\n{ g(var_s); }"
    out = _by_reference(src, NS(args=args))
    assert out == (
        "void f(\n    State_1& var_s,\n    wp::int32 var_n,\n    State_1& var_z)\n{ g(var_s); }"
    )
    assert _by_reference(src, NS()) == src
