"""Shared fixtures: where the public reference datasets are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from twin.datasets import hvlm_dir, smat2022_workbook

# CI runs on a loaded 2-core machine: a property test once failed with DeadlineExceeded there
# while passing alone, so time per example is not a property under test.
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
settings.register_profile("dev", deadline=None)
settings.load_profile(
    os.environ.get("TWIN_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(scope="session")
def hvlm() -> Path:
    """The SMT2020 HVLM folder; the tests that need it skip with a reason when it is absent."""
    path = hvlm_dir()
    if not (path / "route_3.txt").exists():
        pytest.skip(f"SMT2020 HVLM not found at {path}: `twin datasets fetch smt2020-hvlm`")
    return path


@pytest.fixture(scope="session")
def smat_xlsx() -> Path:
    """The SMAT2022 workbook; the tests that need it skip with a reason when it is absent."""
    path = smat2022_workbook()
    if not path.exists():
        pytest.skip(f"SMAT2022 workbook not found at {path}: `twin datasets fetch smat2022`")
    return path
