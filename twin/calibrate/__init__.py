"""Calibration of a fab model from its event log (issue 16; docs/forecast.md).

``calibrate_store(store, model)`` estimates processing times, time to failure and to repair,
PM durations and intervals and setup times per family, transport times, rework and sampling
rates per step, scrap and release rates per product, each with n and a 95 % interval, and flags
the parameters whose interval excludes the design value (drift). ``twin calibrate`` is the
command (``twin.calibrate.commands``).
"""

from twin.calibrate.estimate import (
    MIN_N,
    Calibration,
    CalibrationError,
    Parameter,
    calibrate,
)
from twin.calibrate.source import calibrate_store, parse_when

__all__ = [
    "MIN_N",
    "Calibration",
    "CalibrationError",
    "Parameter",
    "calibrate",
    "calibrate_store",
    "parse_when",
]
