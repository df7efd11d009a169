"""What a scenario file and a what-if run may ask for, checked before anything is built.

Every size that a few bytes of input could multiply (sweep grids, step ranges, tool counts,
factors, sample intervals, days, replications) is counted arithmetically first and refused with
one message naming the field, the value and the accepted range. The numbers are documented in
docs/whatif.md ("Limits"); the API narrows some of them further (runs and days per job).
"""

from __future__ import annotations

import math
from typing import Any

MAX_FILE_BYTES = 1024 * 1024  # a scenario file (or the scenarios of an API request)
MAX_YAML_DEPTH = 32  # nesting levels of a scenario file (a normal one needs 7)
MAX_SCENARIOS = 10_000  # scenarios of one file with the baseline, sweeps counted unexpanded
MAX_CHANGES = 100  # changes of one scenario
MAX_PROBLEMS = 50  # problems listed in one error (then a count of the rest)
MAX_SWEEP_VALUES = 1_000_000  # scenarios of a sweep × YAML values in its changes (expanded size)
MAX_STEPS = 10_000  # step numbers one processing_time change lists, "a-b" ranges counted
MAX_TOOL_CHANGE = 10_000  # |add| and set of a tool_count change
MAX_FAMILY_TOOLS = 1_000  # tools of one family after the changes
MAX_TOOLS = 10_000  # tools of all families of a scenario's model together (HVLM has 1,043)
FACTOR_MIN, FACTOR_MAX = 1e-3, 1e3  # processing time, release rate, product mix, PM, MTTR
MAX_DAYS = 3650.0  # simulated days per replication (ten years)
MAX_REPLICATIONS = 10_000  # replications per scenario
MAX_SEED = 2**63 - 1
MIN_SAMPLE_DAYS = 1 / 24  # wip_sample_days: one simulated hour at least (MAX_DAYS: 87,600)


def is_number(v: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def factor_problem(v: Any, key: str = "factor", zero: bool = False) -> str | None:
    """Why ``v`` is not an accepted factor (None when it is): a finite number in
    FACTOR_MIN..FACTOR_MAX (or 0 where ``zero``: a product mix factor stops a stream)."""
    if is_number(v) and (FACTOR_MIN <= v <= FACTOR_MAX or (zero and v == 0)):
        return None
    also = "0 or " if zero else ""
    return f"'{key}' must be {also}a number in {FACTOR_MIN:g}..{FACTOR_MAX:g}, got {_short(v)}"


def count_steps(items: list[Any]) -> int | None:
    """How many step numbers a ``steps`` list names, "a-b" ranges counted without building
    them (None when an item is not a number or a range; those are reported elsewhere)."""
    total = 0
    for x in items:
        if is_number(x):
            total += 1
        elif isinstance(x, str) and "-" in x:
            lo, _, hi = x.partition("-")
            lo, hi = lo.strip(), hi.strip()
            if not (lo.isascii() and lo.isdigit() and hi.isascii() and hi.isdigit()):
                return None
            if len(lo) > 18 or len(hi) > 18:  # no route has such step numbers; and int()
                return MAX_STEPS + 1  # of thousands of digits is slow or refused
            total += max(0, int(hi) - int(lo) + 1)
        else:
            return None
    return total


def run_problems(
    days: Any,
    warmup_days: Any,
    replications: Any,
    seed: Any,
    options: dict[str, Any] | None = None,
) -> list[str]:
    """Every limit a run's days, replications, seed and engine sampling options break."""
    problems = []
    if not is_number(days) or not 0 < days <= MAX_DAYS:
        problems.append(f"days {_short(days)}: must be a number in (0, {MAX_DAYS:g}]")
    if not is_number(warmup_days) or not math.isfinite(warmup_days):
        problems.append(f"warmup_days {_short(warmup_days)}: must be a finite number")
    if (
        not isinstance(replications, int)
        or isinstance(replications, bool)
        or not 1 <= replications <= MAX_REPLICATIONS
    ):
        problems.append(
            f"replications {_short(replications)}: must be an integer in 1..{MAX_REPLICATIONS}"
        )
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        problems.append(f"seed {_short(seed)}: must be an integer in 0..{MAX_SEED}")
    sample = (options or {}).get("wip_sample_days")
    if sample is not None:
        if not is_number(sample) or not MIN_SAMPLE_DAYS <= sample <= MAX_DAYS:
            problems.append(
                f"options.wip_sample_days {_short(sample)}: must be a number of days in "
                f"{MIN_SAMPLE_DAYS:.6g} (one simulated hour)..{MAX_DAYS:g}"
            )
    return problems


def _short(v: Any) -> str:
    """``repr`` of a value, cut to 60 characters (a hostile value may be huge)."""
    if isinstance(v, int) and v.bit_length() > 100:  # repr of 5,000 digits raises
        return f"an integer of {v.bit_length()} bits"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
