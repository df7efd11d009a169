"""Forecasts from the twin's state and the backtest that measures them (issue 16, parts 3
and 4; docs/forecast.md, "Forecast" and "Backtest").

``forecast(store, model, at, horizon, reps, engine)`` runs the model forward from the state in
an event store at T and reports per day outs, WIP, cycle time and the bottleneck's utilisation
with prediction intervals, and each lot's completion time (p10/p50/p90). ``backtest`` does
that at rolling origins of the log and compares with what happened next.
"""

from twin.forecast.core import ForecastResult, LotEta, forecast

__all__ = ["ForecastResult", "LotEta", "forecast"]
