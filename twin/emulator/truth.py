"""The emulated fab's hidden truth: the design model changed by one scenario (``--truth``).

``twin emulate ... --truth FILE`` runs the "real" fab on ``truth_model(model, FILE)``: the
one scenario of FILE (docs/whatif.md format) applied to the design model. Calibration
(``twin calibrate``) must find these changes again from the event stream alone.
"""

from __future__ import annotations

from typing import Any

from twin.errors import InputError


def truth_model(model: Any, path: str) -> Any:
    """The model with the one scenario of the ``--truth`` file applied (checked against it)."""
    from twin.whatif.scenarios import load_scenarios

    found = load_scenarios(path, model)[1:]  # the baseline comes first
    if len(found) != 1:
        raise InputError(
            "twin emulate",
            [f"--truth {path}: {len(found)} scenarios; a truth file holds exactly one"],
        )
    truth = found[0].apply(model)
    moved = [f for f, fam in model.families.items() if truth.families[f].count != fam.count]
    if moved:
        raise InputError(
            "twin emulate",
            [f"--truth {path}: changes the tool count of {', '.join(moved)}; the scene's tools "
             "are fixed (a truth may change times, calendars, rules and releases)"],
        )  # fmt: skip
    return truth
