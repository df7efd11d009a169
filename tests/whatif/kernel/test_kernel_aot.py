"""The Warp-free launcher (``aot.py``, for GPU machines without Warp) lays out the kernel's
arguments byte for byte as Warp does: driving the CPU build of the same kernel through that
layout, with host memory standing in for the CUDA driver, reproduces the reference."""

from __future__ import annotations

import ctypes

import numpy as np
from models import toy_fab

from twin.whatif.kernel import aot
from twin.whatif.reference import SimConfig, simulate


class HostDriver:
    """``aot.Cuda`` on host memory, launching the CPU build of the kernel."""

    name = "cpu (emulated driver)"

    def __init__(self):
        self._allocs: list[np.ndarray] = []

    def free_memory(self) -> int:
        return 1 << 30

    def zeros(self, nbytes: int) -> int:
        buf = np.zeros(max(nbytes, 8), dtype=np.uint8)
        self._allocs.append(buf)
        return buf.ctypes.data

    def upload(self, a: np.ndarray) -> int:
        a = np.ascontiguousarray(a)
        ptr = self.zeros(a.nbytes)
        ctypes.memmove(ptr, a.ctypes.data, a.nbytes)
        return ptr

    def download(self, ptr: int, count: int, dtype) -> np.ndarray:
        out = np.empty(count, dtype=dtype)
        ctypes.memmove(out.ctypes.data, ptr, out.nbytes)
        return out

    def free_all(self, keep: int = 0) -> None:
        self._allocs = self._allocs[:keep]

    def load(self, cubin):
        import warp as wp

        from twin.whatif.kernel import kernel as k

        dev = wp.get_device("cpu")
        k.simulate_kernel.module.load(dev)
        return k.simulate_kernel.module.get_kernel_hooks(k.simulate_kernel, dev).forward

    def launch(self, fn, n: int, block: int, args: list) -> None:
        bounds, *rest = args

        class Args(ctypes.Structure):
            _fields_ = [(f"a{i}", type(a)) for i, a in enumerate(rest)]

        fn(ctypes.byref(bounds), ctypes.byref(Args(*rest)))


def test_aot_layout_reproduces_the_reference():
    """Toy fab through the AOT argument layout: identical lots and events to the reference."""
    model = toy_fab()
    cfg = SimConfig(days=6, seed=9)
    runs = aot.simulate_batch_aot([model], cfg, [0, 1], "unused.cubin", cuda=HostDriver())[0]
    for kr in runs:
        ref = simulate(model, SimConfig(days=6, seed=9, replication=kr.replication))
        res = kr.result()
        assert res.lots.id == ref.lots.id and res.lots.completion == ref.lots.completion
        assert kr.events == ref.events
