"""Univariate time series from CSV files, chronological splits and forecasting windows.

Bundled series: ``"sunspots"`` (yearly sunspot numbers 1700-2008, 309 values),
``"airline"`` (monthly airline passengers 1949-1960, 144 values) and ``"co2"`` (weekly
Mauna Loa CO2 1958-2001, 2,284 values, 59 missing). The sunspots task is to
forecast the last 30 years: ``chronological_split(values, test_size=30, ...)``.

Standardise with :class:`Normalizer` fitted on the training part only.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.data.bundle import DataError
from rnnkit.data.missing import fill_missing
from rnnkit.data.normalizer import Normalizer
from rnnkit.data.seasons import parse_timestamp
from rnnkit.data.textfile import read_text_file, resolve_data_path

__all__ = [
    "BUNDLED_SERIES",
    "ChronologicalSplit",
    "CsvSeries",
    "Normalizer",
    "chronological_split",
    "load_csv_series",
    "make_windows",
]

BUNDLED_SERIES: dict[str, str] = {
    "sunspots": "timeseries/sunspots_yearly.csv",
    "airline": "timeseries/airline_monthly.csv",
    "co2": "timeseries/co2_weekly.csv",
}
"""Names accepted by :func:`load_csv_series`, mapped to their bundled files."""

BUNDLED_SEASONS: dict[str, list[int]] = {"sunspots": [11], "airline": [12], "co2": [52]}
"""The documented season of each bundled series (the sunspot cycle of about 11 years, the
year of monthly and weekly data)."""

DATE_COLUMN_NAMES = (
    "date",
    "time",
    "timestamp",
    "datetime",
    "year",
    "month",
    "week",
    "day",
    "period",
)
"""Column names (any case) taken to be the time index when ``date_column`` is not given."""

_MISSING_TOKENS = {"", "na", "nan", "n/a", "null", "?"}
_FILL_POLICIES = (None, "interpolate")


@dataclass(eq=False)
class CsvSeries:
    """One column of a CSV file as a series.

    * ``values``: float64 array of shape (N,), in file order, without NaN.
    * ``dates``: the date column's text for each value (length N), or None if there is none.
    * ``column``: the name of the value column; ``path``: the file read.
    * ``missing_filled``: how many missing values ``fill="interpolate"`` filled (in the value
      and covariate columns).
    * ``covariates``: float64 (N, K) of the ``covariates`` columns asked for, or None;
      ``covariate_names`` their names.
    * ``date_column``: the name of the date column, or None.
    """

    values: np.ndarray
    dates: list[str] | None
    column: str
    path: str
    missing_filled: int = 0
    covariates: np.ndarray | None = None
    covariate_names: tuple[str, ...] = ()
    date_column: str | None = None

    def position(self, index: int) -> str:
        """How messages name the value at ``index`` (0-based): its date, else its line in
        the file (the header is line 1, blank lines aside)."""
        if self.dates is not None:
            return f"{self.dates[index]} ({self.date_column})"
        return f"row {index + 1} of the data"

    def __len__(self) -> int:
        """Number of values N."""
        return len(self.values)


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a float (``"nan"`` and ``"1e3"`` do)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_csv_series(
    path_or_name: str | os.PathLike[str],
    column: str | None = None,
    date_column: str | None = None,
    fill: str | None = None,
    covariates: Sequence[str] = (),
) -> CsvSeries:
    """Read one numeric column of a CSV file with a header row.

    ``path_or_name`` is a name of :data:`BUNDLED_SERIES` or the path of a UTF-8 CSV file.
    ``column`` names the value column; by default it is the single numeric column that is
    neither the date column nor a covariate. The date column is ``date_column`` or, if None,
    the first column named like one of :data:`DATE_COLUMN_NAMES`, else the first whose first
    value is a date or time (:func:`~rnnkit.data.seasons.parse_timestamp`); a file may have
    none. A column counts as numeric when its first non-empty value is a number.
    ``covariates`` names further numeric columns read beside the value column. Missing values
    (empty, NA, NaN, ?) are an error unless ``fill="interpolate"`` (linear interpolation, ends
    take the nearest value).

    Raises :class:`DataError` naming the file and, where it applies, the line (the header
    is line 1) and column: unknown column (the message lists the columns), no or several
    candidate columns, a row with the wrong number of fields, a non-numeric or infinite
    value, a missing value without ``fill``.
    """
    if fill not in _FILL_POLICIES:
        raise ValueError(f"fill must be None or 'interpolate', got {fill!r}")
    path = resolve_data_path(path_or_name, BUNDLED_SERIES)
    rows = list(csv.reader(io.StringIO(read_text_file(path))))
    # Line numbers: csv rows map to file lines one-to-one (no quoted newlines in series data).
    numbered = [(n, row) for n, row in enumerate(rows, start=1) if any(f.strip() for f in row)]
    header_line, header = numbered[0]
    header = [name.strip() for name in header]
    body = numbered[1:]
    listing = ", ".join(repr(h) for h in header)
    if not body:
        raise DataError(f"{path}: has a header but no data rows; add the values below it")
    for number, row in body:
        if len(row) != len(header):
            raise DataError(
                f"{path}: line {number}: {len(row)} field(s) but the header has "
                f"{len(header)} ({listing}); fix the row"
            )

    def index_of(name: str, role: str) -> int:
        if name not in header:
            raise DataError(f"{path}: no {role} column {name!r}; the columns are {listing}")
        return header.index(name)

    def first_value(i: int) -> str | None:
        return next((row[i].strip() for _, row in body
                     if row[i].strip().lower() not in _MISSING_TOKENS), None)

    if date_column is not None:
        date_index: int | None = index_of(date_column, "date")
    else:
        date_index = next((i for i, h in enumerate(header) if h.lower() in DATE_COLUMN_NAMES), None)
        if date_index is None:
            date_index = next((i for i in range(len(header)) if (first := first_value(i))
                               is not None and parse_timestamp(first) is not None), None)
    covariate_indices = [index_of(name, "covariate") for name in covariates]
    if date_index is not None and date_index in covariate_indices:
        raise DataError(f"{path}: covariate column {header[date_index]!r} is the date column; "
                        f"pick numeric columns among {listing}")
    besides = (f"besides the date column {header[date_index]!r}" if date_index is not None
               else "and no date column")
    if column is not None:
        value_index = index_of(column, "value")
        if value_index == date_index:
            raise DataError(
                f"{path}: column {column!r} is the date column; pick a value column among {listing}"
            )
    else:
        candidates = [i for i in range(len(header))
                      if i != date_index and i not in covariate_indices
                      and (first := first_value(i)) is not None and is_number(first)]
        if len(candidates) != 1:
            found = ("no numeric column" if not candidates else "several numeric columns ("
                     + ", ".join(repr(header[i]) for i in candidates) + ")")
            raise DataError(
                f"{path}: {found} {besides}; choose the value column with --column "
                f"(column= in Python) among {listing}"
            )
        value_index = candidates[0]
    if value_index in covariate_indices:
        raise DataError(f"{path}: column {header[value_index]!r} is both the value column and "
                        "a covariate; name it once")
    name = header[value_index]
    values = _read_column(path, body, value_index, name, fill)
    extra = [_read_column(path, body, i, header[i], fill) for i in covariate_indices]
    n_missing = int(np.isnan(values).sum()) + sum(int(np.isnan(c).sum()) for c in extra)
    values = fill_missing(values)
    extra_values = fill_missing(np.stack(extra, axis=1)) if extra else None
    dates = [row[date_index].strip() for _, row in body] if date_index is not None else None
    return CsvSeries(
        values=values, dates=dates, column=name, path=str(path), missing_filled=n_missing,
        covariates=extra_values, covariate_names=tuple(header[i] for i in covariate_indices),
        date_column=header[date_index] if date_index is not None else None,
    )


def _read_column(path: os.PathLike[str] | str, body: list[tuple[int, list[str]]], index: int,
                 name: str, fill: str | None) -> np.ndarray:
    """Column ``index`` of the data rows as float64, NaN where a value is missing (allowed
    only with a ``fill``); a bad value raises DataError naming the line."""
    values = np.empty(len(body), dtype=np.float64)
    for k, (number, row) in enumerate(body):
        token = row[index].strip()
        if token.lower() in _MISSING_TOKENS:
            if fill is None:
                raise DataError(
                    f"{path}: line {number}: missing value in column {name!r}; "
                    "fill it in (or, in Python, pass fill='interpolate')"
                )
            values[k] = np.nan
            continue
        try:
            value = float(token)
        except ValueError:
            raise DataError(
                f"{path}: line {number}: {token!r} in column {name!r} is not a "
                "number; fix or remove the row"
            ) from None
        if not math.isfinite(value):
            raise DataError(f"{path}: line {number}: {token!r} in column {name!r} is not finite")
        values[k] = value
    if np.isnan(values).all():
        raise DataError(f"{path}: column {name!r} has no values at all; pick another column")
    return values


@dataclass(frozen=True, eq=False)
class ChronologicalSplit:
    """Consecutive (train, val, test) parts of a series; ``test`` is its last points.

    ``val_start`` and ``test_start`` are the indices in the full series where ``val`` and
    ``test`` begin (``val`` is empty when ``val_size`` was 0).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    val_start: int
    test_start: int


def chronological_split(
    values: np.ndarray, test_size: int, val_size: int = 0
) -> ChronologicalSplit:
    """Split a series (N,) in time order: train, then ``val_size`` points, then the last
    ``test_size`` points as test. Nothing is shuffled, so no future value leaks backwards."""
    values = np.asarray(values)
    n = len(values)
    if test_size < 1 or val_size < 0 or test_size + val_size >= n:
        raise ValueError(
            f"cannot take test_size={test_size} and val_size={val_size} from a "
            f"series of {n} points and keep a training part"
        )
    test_start = n - test_size
    val_start = test_start - val_size
    return ChronologicalSplit(
        values[:val_start], values[val_start:test_start], values[test_start:], val_start, test_start
    )


def make_windows(
    series: np.ndarray | torch.Tensor,
    input_length: int,
    horizon: int,
    first_target: int | None = None,
    stride: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a series (N,) into multi-step forecasting examples.

    Window k has targets ``series[t : t + horizon]`` and inputs the ``input_length`` values
    just before them, ``series[t - input_length : t]``, where ``t = first_target + k*stride``
    and every target lies inside the series. ``first_target`` defaults to ``input_length``
    (windows start at the beginning). Returns float32 ``inputs`` (W, input_length, 1) and
    ``targets`` (W, horizon).

    To evaluate on a held-out tail without losing history, window the series up to the end
    of that part and set ``first_target`` to where it starts: e.g. test windows are
    ``make_windows(values, L, H, first_target=split.test_start, stride=H)`` -- their inputs
    may reach back into earlier parts (observed history), their targets never do.
    """
    data = torch.as_tensor(
        np.asarray(series, dtype=np.float32) if not isinstance(series, torch.Tensor) else series
    ).float()
    if data.dim() == 2 and data.shape[1] == 1:
        data = data[:, 0]
    if data.dim() != 1:
        raise ValueError(f"make_windows expects a series of shape (N,), got {tuple(data.shape)}")
    if input_length < 1 or horizon < 1 or stride < 1:
        raise ValueError("input_length, horizon and stride must be >= 1")
    first = input_length if first_target is None else first_target
    if first < input_length:
        raise ValueError(
            f"first_target={first} leaves fewer than input_length={input_length} values of history"
        )
    n = data.shape[0]
    count = (n - horizon - first) // stride + 1 if n - horizon >= first else 0
    if count < 1:
        raise ValueError(
            f"a series of {n} values has no window with input_length="
            f"{input_length}, horizon={horizon} and first_target={first}"
        )
    starts = first + stride * torch.arange(count)
    inputs = torch.stack([data[t - input_length : t] for t in starts.tolist()])
    targets = torch.stack([data[t : t + horizon] for t in starts.tolist()])
    return inputs.unsqueeze(-1), targets
