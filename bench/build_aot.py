"""Compile the what-if kernel ahead of time to a CUBIN (no GPU needed; Warp uses NVRTC).

    .venv/bin/python bench/build_aot.py [--arch 90] [--out bench/aot]

``bench/gpu_check.sh`` uses the CUBIN on GPU machines where Warp cannot be installed
(``twin.whatif.kernel.aot``). Rebuild it after any change to one of the kernel's modules
(``aot.SOURCES``; ``check_cubin`` refuses a stale one): the file name carries no hash, and the
struct layout must match ``layout.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.whatif.kernel.aot import build_cubin  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", type=int, default=90, help="SM architecture (90: H100/H200)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "aot")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    path = build_cubin(a.out, a.arch)
    print(f"{path} ({path.stat().st_size:,} bytes) in {time.perf_counter() - t:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
