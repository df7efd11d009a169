"""Where the public reference datasets live (SMT2020 HVLM, SMAT2022), and how to get them.

They are never shipped with the project. The datasets folder is, in this order:
``$TWIN_DATASETS``; else ``../shared/datasets`` beside a source checkout (where the team keeps
copies); else the user cache (``$XDG_CACHE_HOME/twin/datasets``, default ``~/.cache/...``),
which ``twin datasets fetch NAME`` fills from the pinned upstream files (``catalog.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from twin.datasets.catalog import DATASETS, Dataset
from twin.errors import TwinError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class DatasetMissing(TwinError):
    """A named dataset is not in the datasets folder; says how to fetch it."""


def cache_dir() -> Path:
    """The user cache the datasets are fetched into when nothing else is configured."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "twin" / "datasets"


def datasets_dir() -> Path:
    """The datasets folder: $TWIN_DATASETS, else ../shared/datasets beside a checkout, else the
    user cache."""
    env = os.environ.get("TWIN_DATASETS")
    if env:
        return Path(env)
    shared = PROJECT_ROOT.parent / "shared" / "datasets"
    checkout = (PROJECT_ROOT / "pyproject.toml").is_file()  # not when installed from a wheel
    return shared if checkout and shared.is_dir() else cache_dir()


def dataset(name: str) -> Dataset:
    """The catalog entry NAME; an unknown name is an error listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        shown = repr(name[:60]) + (f" ({len(name)} characters)" if len(name) > 60 else "")
        raise DatasetMissing(f"unknown dataset {shown}; known: {known}") from None


def dataset_path(name: str, *, check: bool = True) -> Path:
    """Where dataset NAME is (its folder, or its file for one-file datasets). With ``check``, a
    missing file is a ``DatasetMissing`` naming ``twin datasets fetch NAME``."""
    entry = dataset(name)
    root = datasets_dir()
    if check:
        missing = [f.local for f in entry.files if not (root / f.local).is_file()]
        if missing:
            raise DatasetMissing(
                f"dataset {name} is not in {root} (missing {missing[0]}"
                f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}): run "
                f"`twin datasets fetch {name}`, or set TWIN_DATASETS to a folder that holds it"
            )
    return root / entry.folder


def hvlm_dir() -> Path:
    """The SMT2020 High-Volume/Low-Mix model folder (it may not exist: see ``dataset_path``)."""
    return dataset_path("smt2020-hvlm", check=False)


def smat2022_workbook() -> Path:
    """The SMAT2022 LVHM_E layout workbook (it may not exist: see ``dataset_path``)."""
    return dataset_path("smat2022", check=False)
