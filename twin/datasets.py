"""Where the public reference datasets live (SMT2020, SMAT2022).

They are never shipped with the project; tests and benchmarks find them through the
``TWIN_DATASETS`` environment variable, which defaults to ``../shared/datasets`` relative to
the project root.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def datasets_dir() -> Path:
    """The datasets folder: $TWIN_DATASETS, else ../shared/datasets beside the project."""
    env = os.environ.get("TWIN_DATASETS")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "datasets"


def hvlm_dir() -> Path:
    """The SMT2020 High-Volume/Low-Mix model folder."""
    return datasets_dir() / "smt2020" / "HVLM"


def smat2022_workbook() -> Path:
    """The SMAT2022 LVHM_E layout workbook."""
    return datasets_dir() / "smat2022" / "SMAT_2022_Model_Data_-_LVHM_E.xlsx"
