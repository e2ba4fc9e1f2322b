"""Write the CSV series that docs/results/forecast.md scores the forecast task's defaults on,
beside the bundled ones (none of them chose a setting).

    python benchmarks/forecast_series.py OUT_DIR

* ``elnino_monthly.csv`` -- monthly sea-surface temperature 1950-2010 (statsmodels ``elnino``);
* ``cpi_quarterly.csv`` -- US consumer price index 1959-2009 (statsmodels ``macrodata``);
* ``demand_halfhourly.csv``, ``demand_hourly.csv`` -- synthetic electricity demand with daily
  and weekly cycles, a yearly temperature effect and AR(1) noise (one and two years);
* with pmdarima installed (``pip install pmdarima``; its wheel carries the data):
  ``taylor_halfhourly.csv`` (half-hourly demand in England and Wales, 5 June - 27 August 2000,
  Taylor 2003), ``wineind_monthly.csv`` (Australian wine sales 1980-1994) and
  ``woolyrnq_quarterly.csv`` (Australian woollen yarn production 1965-1994).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import statsmodels.datasets as datasets


def write(path: Path, header: str, stamps: list[str], values: np.ndarray) -> None:
    """A two-column CSV: time stamps and values."""
    rows = [f"{stamp},{value:g}" for stamp, value in zip(stamps, values, strict=True)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    print(f"{path}: {len(rows)} values")


def months(first_year: int, count: int, step: int = 1) -> list[str]:
    """ISO dates of ``count`` months (or quarters, ``step`` 3) from January of a year."""
    return [f"{first_year + (k * step) // 12}-{(k * step) % 12 + 1:02d}-01" for k in range(count)]


def demand(per_day: int, days: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Synthetic demand: morning and evening peaks, lower weekends, heating and cooling load
    from a yearly temperature cycle with random weather, AR(1) noise, a slight trend."""
    rng = np.random.default_rng(seed)
    steps = np.arange(per_day * days)
    hour, day = (steps % per_day) * 24 / per_day, steps // per_day
    weather = np.repeat(np.cumsum(rng.normal(0, 0.8, days)) * 0.3, per_day)
    temperature = 12 + 9 * np.sin(2 * np.pi * (day - 100) / 365) + weather
    heating = 1.8 * np.maximum(15 - temperature, 0) + 2.5 * np.maximum(temperature - 22, 0)
    shape = (25 * np.exp(-((hour - 18.5) / 2.5) ** 2) + 18 * np.exp(-((hour - 9) / 2.5) ** 2)
             - 15 * np.exp(-((hour - 3.5) / 3) ** 2))
    week = np.where(day % 7 >= 5, 0.8, 1.0) + np.where(day % 7 == 5, 0.05, 0)
    noise, shocks = np.zeros(steps.size), rng.normal(0, 1.5, steps.size)
    for t in range(1, steps.size):
        noise[t] = 0.9 * noise[t - 1] + shocks[t]
    values = (300 + 2 * shape) * week + 3 * heating + noise + 0.002 * steps / per_day * 48
    start = np.datetime64("2019-01-01T00:00")
    stamps = [str(start + k * np.timedelta64(24 * 60 // per_day, "m")).replace("T", " ")
              for k in steps]
    return stamps, np.round(values, 1)


def main(out: Path) -> None:
    """Write every series into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    elnino = datasets.elnino.load_pandas().data
    sst = elnino.iloc[:, 1:].to_numpy().ravel()
    write(out / "elnino_monthly.csv", "month,sst", months(1950, len(sst)), sst)
    macro = datasets.macrodata.load_pandas().data
    write(out / "cpi_quarterly.csv", "quarter,cpi", months(1959, len(macro), 3),
          macro["cpi"].to_numpy())
    write(out / "demand_halfhourly.csv", "datetime,load", *demand(48, 365, 1))
    write(out / "demand_hourly.csv", "datetime,load", *demand(24, 2 * 365, 2))
    try:
        from pmdarima.datasets import load_taylor, load_wineind, load_woolyrnq
    except ImportError:
        print("pmdarima is not installed: Taylor, wineind and woolyrnq left out")
        return
    taylor = load_taylor()
    start = np.datetime64("2000-06-05T00:00")
    write(out / "taylor_halfhourly.csv", "time,demand_mw",
          [str(start + k * np.timedelta64(30, "m")).replace("T", " ")
           for k in range(len(taylor))], taylor)
    wine = load_wineind()
    write(out / "wineind_monthly.csv", "month,sales", months(1980, len(wine)), wine)
    wool = load_woolyrnq()
    write(out / "woolyrnq_quarterly.csv", "quarter,tonnes", months(1965, len(wool), 3), wool)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "forecast_series"))
