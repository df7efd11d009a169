"""Run the kernel from an ahead-of-time compiled CUBIN, without Warp (CUDA driver via ctypes).

Some GPU machines cannot install Warp (no network, no room to carry its 150 MB wheel). Warp
compiles the same kernel source for any CUDA architecture on a machine without a GPU
(``build_cubin``); this module loads that CUBIN with the CUDA driver API, lays out the
kernel's struct arguments exactly as Warp does (``wp::array_t``, ``launch_bounds_t``, the
Model/State/Caps structs of ``layout.py``), launches it and reads the results back into the
same :class:`KernelRun` objects as the Warp path. Nothing here imports Warp at run time.

    runs = simulate_batch_aot([model], SimConfig(days=30, seed=1), range(1024), "k.cubin")
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from twin.errors import TwinError
from twin.process.model import FabModel
from twin.whatif.kernel.compile import HIST_BINS, compile_model, stack
from twin.whatif.kernel.engine import (
    SIZE_KEY,
    TABLE_NAMES,
    CapacityError,
    KernelRun,
    _read_state,
    pack_model,
    pool_slots,
)
from twin.whatif.kernel.layout import STATE_POOLS, model_fields, state_fields
from twin.whatif.reference.config import SimConfig, StartState

KERNEL_NAME = b"simulate_kernel_cuda_kernel_forward"
# every module whose source the kernel is compiled from
SOURCES = ("kernel.py", "options.py", "base.py", "heap.py", "lots.py", "queues.py", "tools.py",
           "dispatch.py", "events.py", "init.py", "layout.py", "rng.py")  # fmt: skip


def fingerprint() -> str:
    """Hash of what fixes the kernel and its argument layout: its sources and the tables."""
    import hashlib

    from twin.whatif.kernel.compile import TABLES

    h = hashlib.sha256(repr(TABLES).encode())
    for name in SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


def build_cubin(out_dir: str | Path, arch: int = 90) -> Path:
    """Compile the kernel for ``sm_<arch>`` with Warp (no GPU needed); returns the CUBIN."""
    from twin.whatif.kernel.engine import _wp

    wp = _wp()
    import twin.whatif.kernel.kernel as k

    # Warp keeps an existing module of the same (hash-free) name in ``out_dir``: remove the old
    # build, or a stale CUBIN would be kept under a fresh fingerprint
    for old in Path(out_dir).glob("wp_twin.whatif.kernel.kernel.*"):
        old.unlink()
    paths = wp.compile_aot_module(k, arch=arch, module_dir=str(out_dir), use_ptx=False,
                                  strip_hash=True)  # fmt: skip
    cubin = Path(paths[0])
    cubin.with_suffix(".fingerprint").write_text(fingerprint() + "\n")
    return cubin


def check_cubin(cubin: str | Path) -> None:
    """Refuse a CUBIN built from other kernel sources than these (its layout may differ)."""
    fp = Path(cubin).with_suffix(".fingerprint")
    have = fp.read_text().strip() if fp.exists() else "none"
    if have != fingerprint():
        raise TwinError(
            f"{cubin} was built from other kernel sources (fingerprint {have}, sources "
            f"{fingerprint()}); rebuild it: python bench/build_aot.py"
        )


class _ArrayT(ctypes.Structure):
    _fields_ = (
        ("data", ctypes.c_uint64),
        ("grad", ctypes.c_uint64),
        ("shape", ctypes.c_int32 * 4),
        ("strides", ctypes.c_int32 * 4),
        ("ndim", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
    )


class _Bounds(ctypes.Structure):
    _fields_ = (
        ("shape", ctypes.c_uint32 * 1),
        ("size", ctypes.c_size_t),
        ("coord_mult", ctypes.c_size_t),
    )


class _Caps(ctypes.Structure):
    _fields_ = tuple(
        (k, ctypes.c_int32)
        for k in (
            "heap",
            "lots",
            "jobs",
            "records",
            "samples",
            "hist_bins",
            "keep_records",
            "trace",
        )  # fmt: skip
    )


def _struct(name: str, fields) -> type:
    return type(
        name,
        (ctypes.Structure,),
        {"_fields_": [(f, _ArrayT if kind != "int" else ctypes.c_int32) for f, kind, _ in fields]},
    )


_Model = _struct("Model", model_fields())
_State = _struct("State", state_fields())


class Cuda:
    """The few CUDA driver calls the launcher needs, on the primary context of a device."""

    def __init__(self, ordinal: int = 0):
        try:
            self.lib = ctypes.CDLL("libcuda.so.1")
        except OSError as exc:
            raise TwinError(f"no CUDA driver (libcuda.so.1): {exc}") from exc
        self._ok(self.lib.cuInit(0), "cuInit")
        dev = ctypes.c_int()
        self._ok(self.lib.cuDeviceGet(ctypes.byref(dev), ordinal), "cuDeviceGet")
        self.ctx = ctypes.c_void_p()
        self._ok(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), dev), "ctx")
        self._ok(self.lib.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")
        name = ctypes.create_string_buffer(256)
        self.lib.cuDeviceGetName(name, 256, dev)
        self.name = name.value.decode()
        self.lib.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        self.lib.cuMemcpyHtoD_v2.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t]
        self.lib.cuMemcpyDtoH_v2.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t]
        self.lib.cuMemsetD8_v2.argtypes = [ctypes.c_uint64, ctypes.c_ubyte, ctypes.c_size_t]
        self.lib.cuMemFree_v2.argtypes = [ctypes.c_uint64]
        self._allocs: list[int] = []

    def _ok(self, rc: int, what: str) -> None:
        if rc != 0:
            s = ctypes.c_char_p()
            self.lib.cuGetErrorString(rc, ctypes.byref(s))
            raise TwinError(f"CUDA {what} failed: {rc} {s.value.decode() if s.value else ''}")

    def free_memory(self) -> int:
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self._ok(self.lib.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)), "meminfo")
        return free.value

    def upload(self, a: np.ndarray) -> int:
        a = np.ascontiguousarray(a)
        ptr = self.zeros(a.nbytes)
        if a.nbytes:
            self._ok(self.lib.cuMemcpyHtoD_v2(ptr, a.ctypes.data, a.nbytes), "HtoD")
        return ptr

    def zeros(self, nbytes: int) -> int:
        ptr = ctypes.c_uint64()
        self._ok(self.lib.cuMemAlloc_v2(ctypes.byref(ptr), max(nbytes, 8)), "cuMemAlloc")
        self._ok(self.lib.cuMemsetD8_v2(ptr.value, 0, max(nbytes, 8)), "cuMemset")
        self._allocs.append(ptr.value)
        return ptr.value

    def download(self, ptr: int, count: int, dtype) -> np.ndarray:
        out = np.empty(count, dtype=dtype)
        if out.nbytes:
            self._ok(self.lib.cuMemcpyDtoH_v2(out.ctypes.data, ptr, out.nbytes), "DtoH")
        return out

    def free_all(self, keep: int = 0) -> None:
        """Free every allocation after the first ``keep``."""
        for p in self._allocs[keep:]:
            self.lib.cuMemFree_v2(p)
        self._allocs = self._allocs[:keep]

    def load(self, cubin: Path):
        image = Path(cubin).read_bytes()
        mod, fn = ctypes.c_void_p(), ctypes.c_void_p()
        self._image = ctypes.create_string_buffer(image, len(image))
        self._ok(self.lib.cuModuleLoadData(ctypes.byref(mod), self._image), "cuModuleLoadData")
        self._ok(self.lib.cuModuleGetFunction(ctypes.byref(fn), mod, KERNEL_NAME), "GetFunction")
        return fn

    def launch(self, fn, n: int, block: int, args: list) -> None:
        params = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
        grid = (n + block - 1) // block
        self._ok(
            self.lib.cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, 0, None, params, None), "launch"
        )
        self._ok(self.lib.cuCtxSynchronize(), "kernel run")


def _array(ptr: int, count: int, itemsize: int, shape: tuple | None = None) -> _ArrayT:
    a = _ArrayT()
    a.data = ptr
    shape = shape or (count,)
    a.ndim = len(shape)
    stride = itemsize
    strides = []
    for d in reversed(shape):
        strides.insert(0, stride)
        stride *= d
    for i, (d, s) in enumerate(zip(shape, strides, strict=True)):
        a.shape[i] = d
        a.strides[i] = s
    return a


def simulate_batch_aot(
    models: Sequence[FabModel],
    config: SimConfig,
    replications: Sequence[int],
    cubin: str | Path,
    *,
    start: StartState | None = None,
    records: bool = True,
    block: int = 32,
    cuda: Cuda | None = None,
    capacity: dict[str, int] | None = None,
) -> list[list[KernelRun]]:
    """``engine.simulate_batch`` on the CUDA driver with a prebuilt CUBIN (one launch per
    memory-sized chunk; tables that overflow are grown and the chunk rerun)."""
    cu = cuda or Cuda()
    if cuda is None or isinstance(cuda, Cuda):
        check_cubin(cubin)
    fn = cu.load(Path(cubin))
    comps = [compile_model(m, config, start) for m in models]
    tables, sizes = stack(comps)
    sizes["n_pmw"] = max(1, tables["w_first"].shape[1])
    sizes["trace"] = 1
    if capacity:
        sizes.update(capacity)
    reps = list(replications)
    pools, offs, strides = pack_model(tables)
    m = _Model()
    for name, kind, _ in model_fields():
        if kind == "int":
            setattr(m, name, offs[name] if name.startswith("o_") else strides[name])
    for pool, a in pools.items():
        setattr(m, pool, _array(cu.upload(a), a.size, a.itemsize))
    for k in ("str_words", "str_nwords"):
        a = tables[k]
        setattr(m, k, _array(cu.upload(a), a.size, a.itemsize, a.shape))
    pairs = [(s, r) for s in range(len(comps)) for r in range(len(reps))]
    runs: dict[tuple[int, int], KernelRun] = {}
    budget = int(0.6 * cu.free_memory())
    lo = 0
    while lo < len(pairs):
        per = sum(total * np.dtype(dt).itemsize for dt, (_, total) in
                  zip(STATE_POOLS, pool_slots(sizes, records).values(), strict=True))  # fmt: skip
        widest = max(t for _, t in pool_slots(sizes, records).values())
        chunk = max(1, min(budget // per, (2**31 - 1) // widest))
        part = pairs[lo : lo + chunk]
        err = _launch(cu, fn, m, comps, sizes, part, reps, config, records, block, runs)
        if err is None:
            lo += len(part)
            continue
        key, size, need = err
        if key == "dedications":
            raise CapacityError(TABLE_NAMES[key], size, key)
        sizes[key] = max(need, 2 * size)
    cu.free_all()
    return [[runs[(s, r)] for r in range(len(reps))] for s in range(len(comps))]


def _launch(cu, fn, m, comps, sizes, part, reps, config, records, block, runs):
    n = len(part)
    keep = len(cu._allocs)
    st = _State()
    slots = pool_slots(sizes, records)
    ptrs = {}
    for dt, pool in STATE_POOLS.items():
        offs, total = slots[pool]
        size = np.dtype(dt).itemsize
        ptrs[pool] = (cu.zeros(total * n * size), total * n, dt)
        setattr(st, pool, _array(ptrs[pool][0], total * n, size))
        for name, base in offs.items():
            setattr(st, f"o_{name}", base * n)
    cap = _Caps(heap=sizes["heap"], lots=sizes["lots"], jobs=sizes["jobs"],
                records=sizes["records"], samples=sizes["samples"], hist_bins=HIST_BINS,
                keep_records=int(records), trace=0)  # fmt: skip
    scen = np.array([p[0] for p in part], np.int32)
    rr = np.array([reps[p[1]] for p in part], np.int32)
    a_scen = _array(cu.upload(scen), n, 4)
    a_reps = _array(cu.upload(rr), n, 4)
    bounds = _Bounds(size=n, coord_mult=1)
    bounds.shape[0] = n
    seed = ctypes.c_int64(config.seed)
    t0 = time.perf_counter()
    cu.launch(fn, n, block, [bounds, m, st, cap, a_scen, a_reps, seed])
    wall = time.perf_counter() - t0
    host_pools = {p: SimpleNamespace(numpy=lambda v=cu.download(*ptrs[p]): v) for p in ptrs}
    view = SimpleNamespace(**host_pools, **{f"o_{k}": getattr(st, f"o_{k}") for k in
                                            (f[2:] for f, kind, _ in state_fields()
                                             if kind == "int")})  # fmt: skip
    host = _read_state(view, sizes, n, records)
    cu.free_all(keep)
    err = host["err"][0]
    if err.any():
        key = SIZE_KEY[int(err[err != 0][0])]
        return key, sizes[key], 2 * sizes[key]
    soft = host["err_soft"][0]
    if (soft & 4).any():
        return "records", sizes["records"], int(host["ncomp"][0].max()) + 8
    if (soft & 8).any():
        return "samples", sizes["samples"], int(host["nsamp"][0].max()) + 2
    for j, (s, r) in enumerate(part):
        runs[(s, r)] = KernelRun(
            comp=comps[s],
            replication=reps[r],
            seed=config.seed,
            out={name: a[:, j] for name, a in host.items()},
            records=records,
            wall_seconds=wall / n,
            sample_dt=float(comps[s].tables["sample_dt"][0]),
            extra={"launch_seconds": wall, "threads": n, "device": cu.name},
        )
    return None
