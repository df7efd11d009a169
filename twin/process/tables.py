"""Tab-separated tables with a header line (the AutoSched-AP style of SMT2020), read strictly.

A :class:`Table` keeps, for every data line, its 1-based line number and the text of each named
column, so that converters can report ``file:line:column`` for every bad value. Converters
never raise: they append a problem and return ``None``; the loader raises one InputError at the
end that lists every problem found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

TIME_UNITS = {"sec": 1.0, "s": 1.0, "min": 60.0, "hr": 3600.0, "hour": 3600.0, "day": 86400.0}
DATE_FORMAT = "%m/%d/%y %H:%M:%S"  # 01/01/18 00:00:00


@dataclass
class Row:
    """One data line: its number in the file and its values by column name."""

    file: str
    line: int
    values: dict[str, str]
    columns: dict[str, int]  # column name -> 1-based column number

    def where(self, column: str | None = None) -> str:
        """``file:line`` or ``file:line:column (NAME)`` for messages."""
        if column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.columns.get(column, 0)} ({column})"

    def get(self, column: str) -> str:
        """The stripped text of a column ('' when empty or absent)."""
        return self.values.get(column, "")


@dataclass
class Table:
    """A parsed file: header names and data rows (blank lines skipped)."""

    file: str
    header: list[str]
    rows: list[Row] = field(default_factory=list)


def parse_table(text: str, file: str, required: Iterable[str], problems: list[str]) -> Table | None:
    """Split ``text`` into a Table; missing required columns and extra fields are problems."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        problems.append(f"{file}:1: empty file; expected a tab-separated header line")
        return None
    header = [h.strip() for h in lines[0].split("\t")]
    while header and header[-1] == "":
        header.pop()
    missing = [c for c in required if c not in header]
    if missing:
        problems.append(
            f"{file}:1: missing column(s) {', '.join(missing)}; header has {', '.join(header)}"
        )
        return None
    columns = {name: i + 1 for i, name in enumerate(header) if name}
    table = Table(file=file, header=header)
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("\t")]
        extra = [i + 1 for i, p in enumerate(parts) if i >= len(header) and p]
        if extra:
            problems.append(
                f"{file}:{n}:{extra[0]}: {len(parts)} fields but the header has {len(header)}"
            )
            continue
        values = {name: parts[i] if i < len(parts) else "" for i, name in enumerate(header)}
        table.rows.append(Row(file=file, line=n, values=values, columns=columns))
    return table


def number(row: Row, column: str, problems: list[str], *, required: bool = True) -> float | None:
    """A finite float from a column; '' is None unless required."""
    text = row.get(column)
    if not text:
        if required:
            problems.append(f"{row.where(column)}: empty; expected a number")
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{row.where(column)}: {text!r} is not a number")
        return None
    if value != value or value in (float("inf"), float("-inf")):
        problems.append(f"{row.where(column)}: {text!r} is not a finite number")
        return None
    return value


def integer(row: Row, column: str, problems: list[str], *, required: bool = True) -> int | None:
    """An integer from a column (``10.0`` accepted); '' is None unless required."""
    value = number(row, column, problems, required=required)
    if value is None:
        return None
    if value != int(value):
        problems.append(f"{row.where(column)}: {row.get(column)!r} is not a whole number")
        return None
    return int(value)


def unit_factor(row: Row, column: str, problems: list[str]) -> float | None:
    """Seconds per unit named in a units column (min, hr, day, sec)."""
    text = row.get(column)
    factor = TIME_UNITS.get(text.lower())
    if factor is None:
        problems.append(
            f"{row.where(column)}: time unit {text!r}; accepted: {', '.join(TIME_UNITS)}"
        )
    return factor


def seconds(
    row: Row, column: str, units_column: str, problems: list[str], *, required: bool = True
) -> float | None:
    """A non-negative duration in seconds from a value column and its units column."""
    value = number(row, column, problems, required=required)
    if value is None:
        return None
    factor = unit_factor(row, units_column, problems)
    if factor is None:
        return None
    if value < 0:
        problems.append(f"{row.where(column)}: {value} is negative; expected a duration >= 0")
        return None
    return value * factor


def choice(
    row: Row, column: str, accepted: dict[str, str], problems: list[str], *, default: str = ""
) -> str | None:
    """Map a keyword column through ``accepted`` (case-insensitive); '' gives ``default``."""
    text = row.get(column)
    if not text and default:
        return default
    mapped = accepted.get(text.lower())
    if mapped is None:
        problems.append(f"{row.where(column)}: {text!r}; accepted: {', '.join(accepted)}")
    return mapped


def date(row: Row, column: str, problems: list[str]) -> datetime | None:
    """A timestamp in the SMT2020 format mm/dd/yy HH:MM:SS."""
    text = row.get(column)
    try:
        return datetime.strptime(text, DATE_FORMAT)
    except ValueError:
        problems.append(f"{row.where(column)}: {text!r} is not a date like 01/31/18 07:29:20")
        return None
