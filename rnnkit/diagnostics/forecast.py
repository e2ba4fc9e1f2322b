"""A forecast drawn over its series: the history, a held-out forecast against what came, and
the forecast beyond the series' end, each with its prediction interval."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnkit.diagnostics.plots import plt, save_figure


def plot_forecast(values: np.ndarray, path: str | Path, *, backtest_origin: int,
                  backtest: np.ndarray, future: np.ndarray, history: int,
                  dates: Sequence[str] | None = None, title: str = "",
                  interval: str = "80 % interval") -> Path:
    """Draw the last ``history`` values of ``values`` (N,), the quantile forecasts (H, 3)
    (low, median, high) ``backtest`` made at ``backtest_origin`` (inside the series, so the
    values it aimed at show beside it) and ``future`` made at N; write a PNG and return its
    path. ``dates`` (N,) label the time axis when given; else it counts rows."""
    values = np.asarray(values, dtype=np.float64)
    count, horizon = len(values), len(future)
    start = max(0, min(count - history, backtest_origin - 2 * horizon))
    shown = np.arange(start, count)
    figure, axes = plt.subplots(figsize=(9, 4.2), dpi=120)
    axes.plot(shown, values[start:], color="black", linewidth=1.0, label="series")
    for origin, quantiles, colour, name in (
            (backtest_origin, backtest, "tab:blue", "held-out forecast"),
            (count, future, "tab:orange", "forecast")):
        steps = np.arange(origin, origin + len(quantiles))
        axes.fill_between(steps, quantiles[:, 0], quantiles[:, -1], color=colour, alpha=0.25,
                          linewidth=0, label=f"{name}, {interval}")
        axes.plot(steps, quantiles[:, 1], color=colour, linewidth=1.4, label=f"{name}, median")
    axes.axvline(backtest_origin - 0.5, color="tab:blue", linestyle=":", linewidth=0.8)
    axes.axvline(count - 0.5, color="tab:orange", linestyle=":", linewidth=0.8)
    if dates is not None:
        ticks = [int(t) for t in np.linspace(start, count - 1, 6)]
        axes.set_xticks(ticks, [dates[t] for t in ticks], fontsize=8)
    axes.set(title=title, xlabel="time" if dates is not None else "row of the data")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    return save_figure(figure, path)
