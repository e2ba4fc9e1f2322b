"""Season lengths of a series: from the step between its timestamps, or its autocorrelation.

A season is a period in steps (12 for monthly data with a yearly cycle, 48 and 336 for
half-hourly data with daily and weekly cycles). :func:`detect_seasons` gives them for a
series with or without timestamps; the seasonal-naive forecast and the MASE scale use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

__all__ = ["autocorrelation_season", "detect_seasons", "parse_timestamp", "timestamp_seasons"]

_DAY = 86_400.0
_TIMESTAMP_FORMATS = ("%Y-%m", "%Y/%m", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y/%m/%d %H:%M",
                      "%d/%m/%Y", "%d/%m/%Y %H:%M", "%m/%d/%Y", "%m/%d/%Y %H:%M", "%d.%m.%Y",
                      "%d.%m.%Y %H:%M", "%YM%m", "%Y-Q%m")


def parse_timestamp(text: str) -> datetime | None:
    """The date and time ``text`` writes (ISO 8601 such as ``2012-01-01 00:30:00`` or
    ``1949-01``, and the common day/month/year forms), or None when it is none of them
    (a plain number such as a year ``1700`` is None: it is an index, not a timestamp)."""
    text = text.strip()
    if not text or text.replace(".", "", 1).lstrip("-").isdigit():
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    for form in _TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, form)
        except ValueError:
            continue
    return None


def timestamp_seasons(dates: Sequence[str]) -> list[int]:
    """Seasons implied by the usual step between ``dates``: a step dividing a day gives the
    day and the week (half-hourly: 48 and 336; hourly: 24 and 168), a day gives 7 and 365, a
    week 52, a month 12, a quarter 4; a year or a date that does not parse gives none."""
    stamps = [parse_timestamp(d) for d in dates[:1000]]
    if len(stamps) < 3 or any(s is None for s in stamps):
        return []
    steps = np.diff([s.timestamp() if s.tzinfo else (s - datetime(1970, 1, 1)).total_seconds()
                     for s in stamps])
    step = float(np.median(steps))
    if step <= 0:
        return []
    if step < _DAY and abs(_DAY / step - round(_DAY / step)) < 1e-6:
        per_day = round(_DAY / step)
        return [per_day, 7 * per_day]
    days = step / _DAY
    for low, high, seasons in ((0.99, 1.01, [7, 365]), (6.9, 7.1, [52]), (28, 31.5, [12]),
                               (89, 93, [4])):
        if low <= days <= high:
            return seasons
    return []


def autocorrelation_season(values: np.ndarray, max_lag: int | None = None) -> int | None:
    """The season of ``values`` read from the autocorrelation of its linearly detrended
    values: the shortest lag >= 2 whose autocorrelation is a local peak within 90 % of the
    highest peak, where that peak exceeds 0.2 (and 3 / sqrt(n), what noise reaches); None
    when there is no such peak (noise, a random walk). Lags up to a third of the series."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    max_lag = min(max_lag or n // 3, n // 3)
    if max_lag < 3:
        return None
    time = np.arange(n)
    x = x - np.polyval(np.polyfit(time, x, 1), time)
    variance = float(x @ x)
    if variance <= 0:
        return None
    spectrum = np.fft.rfft(x, 2 * n)
    correlation = np.fft.irfft(spectrum * np.conj(spectrum))[:max_lag + 1] / variance
    floor = max(0.2, 3.0 / np.sqrt(n))
    peaks = [k for k in range(2, max_lag) if correlation[k] > correlation[k - 1]
             and correlation[k] >= correlation[k + 1] and correlation[k] > floor]
    if not peaks:
        return None
    top = max(correlation[k] for k in peaks)
    return min(k for k in peaks if correlation[k] >= 0.9 * top)


def detect_seasons(values: np.ndarray, dates: Sequence[str] | None = None) -> list[int]:
    """The seasons of a series, shortest first: those the timestamps imply (see
    :func:`timestamp_seasons`), else the autocorrelation's (at most one), keeping only those
    that ``values`` (the training part) covers at least twice; [] when there is none."""
    seasons = timestamp_seasons(dates) if dates else []
    if not seasons:
        found = autocorrelation_season(values)
        seasons = [found] if found else []
    return sorted(m for m in seasons if 2 * m <= len(values))
