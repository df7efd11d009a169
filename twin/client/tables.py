"""Answers of the twin as pandas DataFrames: one row per item, one column per field, times as
UTC timestamps. pandas is imported here, when a table is asked for, so that the rest of the
client works without it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twin.client.errors import ClientError

# the columns of each table (also those of an empty one); fields the twin adds later follow
COLUMNS: dict[str, tuple[str, ...]] = {
    "equipment": ("id", "kind", "family", "bay", "state", "reason", "since", "lots", "setup",
                  "rev", "time_in"),
    "lots": ("id", "product", "step", "status", "location", "carrier", "hold_reason",
             "released", "updated", "completed", "moves", "rev"),
    "carriers": ("id", "transfer", "status", "source", "dest", "vehicle", "location", "lot",
                 "updated", "rev"),
    "vehicles": ("id", "segment", "offset", "reported", "speed", "position", "state",
                 "carrier", "updated", "rev"),
    "events": ("pos", "id", "source", "seq", "time", "type", "subject", "data"),
    "stream": ("seq", "id", "source", "source_seq", "time", "type", "subject", "data"),
    "jobs": ("id", "status", "progress", "scenarios", "created", "started", "finished",
             "error"),
    "families": ("family", "utilisation", "wip"),
    "sources": (),
}  # fmt: skip
TIMES = ("since", "released", "updated", "completed", "time", "created", "started", "finished",
         "time_in", "clock")  # fmt: skip


def pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ClientError(
            "tables need pandas, which is not installed: pip install pandas (or use the "
            "client's iter_* methods, which give plain dicts)"
        ) from None
    return pd


def frame(rows: Iterable[dict[str, Any]], table: str) -> Any:
    """A DataFrame of ``rows`` with the columns of ``table`` first; time columns parsed."""
    pd = pandas()
    rows = list(rows)
    known = list(COLUMNS.get(table, ()))
    extra: list[str] = []
    for row in rows:
        for k in row:
            if k not in known and k not in extra:
                extra.append(k)
    df = (
        pd.DataFrame.from_records(rows, columns=known + extra)
        if rows
        else pd.DataFrame(columns=known)
    )
    for col in df.columns:
        if col in TIMES and not pd.api.types.is_datetime64_any_dtype(df[col]):
            df[col] = pd.to_datetime(df[col], utc=True, errors="coerce", format="ISO8601")
    return df


def events_frame(items: Iterable[dict[str, Any]], *, position: str = "pos") -> Any:
    """Events (``{"pos"|"seq": N, "event": {...}}``) flattened: the position, then the
    envelope (the source's own ``seq`` as ``seq`` for the history, ``source_seq`` for the
    stream, whose ``seq`` is the stream position)."""
    rows = []
    for item in items:
        ev = item.get("event") or {}
        row = {position: item.get(position)}
        for k, v in ev.items():
            row["source_seq" if (k == "seq" and position == "seq") else k] = v
        rows.append(row)
    return frame(rows, "events" if position == "pos" else "stream")


def families_frame(kpis: dict[str, Any]) -> Any:
    """The per-family KPIs (utilisation, WIP) of a ``/kpis`` answer, one row per family."""
    util = kpis.get("utilisation_by_family") or {}
    wip = kpis.get("wip_by_family") or {}
    names = sorted(set(util) | set(wip))
    rows = [{"family": f, "utilisation": util.get(f), "wip": int(wip.get(f, 0))} for f in names]
    return frame(rows, "families")


def whatif_frame(result: dict[str, Any]) -> Any:
    """A what-if result (docs/whatif.md) as a long table: one row per scenario, group
    (lot_types, families, fab, ...), entity and KPI, with mean, CI bounds, half width and n,
    and the paired difference against the baseline where there is one."""
    rows = []
    for name, scen in (result.get("scenarios") or {}).items():
        diffs = scen.get("difference_vs_baseline") or {}
        for group, kpi_stats, entity in _walk(scen.get("kpis") or {}):
            for kpi, st in kpi_stats.items():
                if not isinstance(st, dict) or "mean" not in st:
                    continue
                d = (((diffs.get(group) or {}).get(entity) or {}) if entity else
                     (diffs.get(group) or {})).get(kpi) or {}  # fmt: skip
                ci, dci = st.get("ci") or [None, None], d.get("ci") or [None, None]
                rows.append({
                    "scenario": name, "group": group, "entity": entity, "kpi": kpi,
                    "mean": st.get("mean"), "ci_low": ci[0], "ci_high": ci[1],
                    "half_width": st.get("half_width"), "n": st.get("n"),
                    "diff_mean": d.get("mean"), "diff_ci_low": dci[0], "diff_ci_high": dci[1],
                })  # fmt: skip
    pd = pandas()
    cols = ["scenario", "group", "entity", "kpi", "mean", "ci_low", "ci_high", "half_width",
            "n", "diff_mean", "diff_ci_low", "diff_ci_high"]  # fmt: skip
    return pd.DataFrame.from_records(rows, columns=cols)


def _walk(kpis: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any], str | None]]:
    """(group, {kpi: stats}, entity) for groups keyed by entity (lot types, families) and
    for flat groups (fab), entity None."""
    for group, body in kpis.items():
        if not isinstance(body, dict):
            continue
        if any(isinstance(v, dict) and "mean" in v for v in body.values()):
            yield group, body, None
        else:
            for entity, stats in body.items():
                if isinstance(stats, dict):
                    yield group, stats, entity
