"""Kernel tests run on every device Warp sees: ``cpu`` always, ``cuda:0`` when present."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # models.py next to the tests


def _devices() -> list[str]:
    try:
        import warp as wp
    except ImportError:  # pragma: no cover - warp is a dependency of the kernel
        return []
    from twin.whatif.kernel.engine import quiet

    quiet(wp)
    wp.init()
    return ["cpu"] + (["cuda:0"] if wp.get_cuda_device_count() > 0 else [])


DEVICES = _devices()


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each Warp device in turn."""
    return request.param
