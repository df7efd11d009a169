"""What the fab DOES: products, routes, tool families, calendars, dispatch rules.

``load_model(path)`` reads an SMT2020-format folder into a :class:`FabModel` (all times in
seconds); the dataclasses live in :mod:`twin.process.model`.
"""

from __future__ import annotations

from pathlib import Path

from twin.errors import InputError, UnsupportedFormatError
from twin.process.model import (
    DELAY_FAMILY,
    DISPATCH_RULES,
    Attachment,
    Dist,
    DownCalendar,
    FabModel,
    PMCalendar,
    Product,
    Release,
    Route,
    Step,
    ToolFamily,
    WipLot,
)


def load_model(path: str | Path, **options: object) -> FabModel:
    """Load a process model: an SMT2020-format folder, or a scene folder with ``process/``.

    Options go to the format's loader (SMT2020: ``ptime_spread_mode="full"|"half"``).
    """
    from twin.process.smt2020 import load_model as load_smt2020

    folder = Path(path)
    if not folder.exists():
        raise InputError(
            "process model",
            [
                f"{folder}: no such folder; for the public SMT2020 HVLM model run `twin datasets "
                "fetch smt2020-hvlm`, then pass `$(twin datasets path smt2020-hvlm)`"
            ],
        )
    if (folder / "process").is_dir() and not (folder / "part.txt").exists():
        folder = folder / "process"
    if not (folder / "part.txt").exists():
        raise UnsupportedFormatError(
            "process model",
            ["SMT2020 folder (part.txt, route_*.txt, tool.txt.1l or tool.txt, order.txt)"],
            folder,
        )
    return load_smt2020(folder, **options)


__all__ = [
    "load_model",
    "DELAY_FAMILY",
    "DISPATCH_RULES",
    "Attachment",
    "Dist",
    "DownCalendar",
    "FabModel",
    "PMCalendar",
    "Product",
    "Release",
    "Route",
    "Step",
    "ToolFamily",
    "WipLot",
]
